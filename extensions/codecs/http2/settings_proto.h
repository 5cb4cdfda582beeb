#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "envoy/config/core/v3/protocol.pb.h"
#include "extensions/codecs/http2/codec_impl.h"

namespace tern {
namespace http2 {

// Settings from Envoy's Http2ProtocolOptions (listener or cluster side). `at` is the
// field path for errors; unsupported fields that would change behaviour are refused.
absl::StatusOr<Settings> settingsFromProto(const envoy::config::core::v3::Http2ProtocolOptions& proto,
                                           const std::string& at);

} // namespace http2
} // namespace tern
