#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "google/protobuf/message.h"

namespace tern {
namespace config {

// Parses YAML (or JSON: a YAML subset) into `msg`, rejecting unknown fields, wrong types
// and unknown `@type`s. Errors read "FIELD_PATH: reason".
absl::Status parseYamlInto(absl::string_view text, google::protobuf::Message& msg);

// Reads Envoy's v3 Bootstrap from a .yaml/.yml/.json file. Every error names the file.
absl::StatusOr<envoy::config::bootstrap::v3::Bootstrap> loadBootstrapFile(const std::string& path);

// Unpacks an Any into `out` after checking its type; errors name `field_path`.
absl::Status unpackTo(const google::protobuf::Any& any, google::protobuf::Message& out,
                      absl::string_view field_path);

} // namespace config
} // namespace tern
