#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tern {
namespace config {

// YAML -> JSON text for protobuf's JSON parser. Plain scalars that read as numbers,
// booleans or null become JSON literals; quoted scalars stay strings (as in Envoy).
absl::StatusOr<std::string> yamlToJson(absl::string_view yaml);

} // namespace config
} // namespace tern
