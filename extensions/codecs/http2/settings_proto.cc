#include "extensions/codecs/http2/settings_proto.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace tern {
namespace http2 {

absl::StatusOr<Settings> settingsFromProto(const envoy::config::core::v3::Http2ProtocolOptions& p,
                                           const std::string& at) {
  using google::protobuf::util::TimeUtil;
  auto bad = [&](absl::string_view field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(at, ".", field, ": ", why));
  };
  Settings s;
  if (p.has_hpack_table_size()) s.hpack_table_size = p.hpack_table_size().value();
  if (p.has_max_concurrent_streams()) {
    if (p.max_concurrent_streams().value() == 0) return bad("max_concurrent_streams", "must be at least 1");
    s.max_concurrent_streams = p.max_concurrent_streams().value();
  }
  // RFC 9113 6.5.2: windows from 65535 (the default) up to 2^31-1.
  auto window = [&](const google::protobuf::UInt32Value& v, absl::string_view field,
                    uint32_t& out) -> absl::Status {
    if (v.value() < 65535 || v.value() > 2147483647u) {
      return bad(field, absl::StrCat(v.value(), " is outside [65535, 2147483647]"));
    }
    out = v.value();
    return absl::OkStatus();
  };
  if (p.has_initial_stream_window_size()) {
    auto st = window(p.initial_stream_window_size(), "initial_stream_window_size", s.initial_stream_window_size);
    if (!st.ok()) return st;
  }
  if (p.has_initial_connection_window_size()) {
    auto st = window(p.initial_connection_window_size(), "initial_connection_window_size",
                     s.initial_connection_window_size);
    if (!st.ok()) return st;
  }
  if (p.has_max_outbound_frames()) s.max_outbound_frames = p.max_outbound_frames().value();
  if (p.has_max_outbound_control_frames()) s.max_outbound_control_frames = p.max_outbound_control_frames().value();
  if (p.has_max_consecutive_inbound_frames_with_empty_payload()) {
    s.max_consecutive_inbound_frames_with_empty_payload =
        p.max_consecutive_inbound_frames_with_empty_payload().value();
  }
  if (p.has_max_inbound_priority_frames_per_stream()) {
    s.max_inbound_priority_frames_per_stream = p.max_inbound_priority_frames_per_stream().value();
  }
  if (p.has_max_inbound_window_update_frames_per_data_frame_sent()) {
    s.max_inbound_window_update_frames_per_data_frame_sent =
        p.max_inbound_window_update_frames_per_data_frame_sent().value();
  }
  s.stream_error_on_invalid_http_messaging = p.stream_error_on_invalid_http_messaging();
  if (p.has_override_stream_error_on_invalid_http_message()) {
    s.stream_error_on_invalid_http_messaging = p.override_stream_error_on_invalid_http_message().value();
  }
  if (p.has_connection_keepalive()) {
    const auto& k = p.connection_keepalive();
    if (!k.has_interval()) return bad("connection_keepalive.interval", "must be set");
    s.connection_keepalive_interval_ms = static_cast<uint32_t>(TimeUtil::DurationToMilliseconds(k.interval()));
    if (k.has_timeout()) {
      s.connection_keepalive_timeout_ms = static_cast<uint32_t>(TimeUtil::DurationToMilliseconds(k.timeout()));
    }
  }
  if (p.allow_connect()) return bad("allow_connect", "extended CONNECT over HTTP/2 is not supported");
  if (p.allow_metadata()) return bad("allow_metadata", "METADATA frames are not supported");
  return s;
}

} // namespace http2
} // namespace tern
