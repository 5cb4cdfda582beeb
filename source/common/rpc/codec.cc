#include "source/common/rpc/codec.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tern {
namespace rpc {

const char* frameKindName(FrameKind kind) {
  switch (kind) {
  case FrameKind::Request: return "request";
  case FrameKind::Oneway: return "oneway";
  case FrameKind::Response: return "response";
  case FrameKind::HeartbeatRequest: return "heartbeat_request";
  case FrameKind::HeartbeatResponse: return "heartbeat_response";
  }
  return "unknown";
}

const char* localReplyErrorName(LocalReplyError error) {
  switch (error) {
  case LocalReplyError::NoRoute: return "no_route";
  case LocalReplyError::NoHealthyUpstream: return "no_healthy_upstream";
  case LocalReplyError::Timeout: return "timeout";
  case LocalReplyError::Overflow: return "overflow";
  case LocalReplyError::CodecError: return "codec_error";
  case LocalReplyError::UpstreamReset: return "upstream_reset";
  case LocalReplyError::Rejected: return "rejected";
  }
  return "unknown";
}

std::string describe(const Frame& frame) {
  std::string out = absl::StrCat(frameKindName(frame.kind), " id=", frame.request_id);
  if (frame.kind == FrameKind::Response || frame.kind == FrameKind::HeartbeatResponse) {
    absl::StrAppend(&out, " status=", frame.status);
  }
  if (frame.timeout_ms != 0) absl::StrAppend(&out, " timeout=", frame.timeout_ms);
  absl::StrAppend(&out, " headers{");
  for (const auto& [k, v] : frame.headers.entries()) {
    absl::StrAppend(&out, absl::CEscape(k), "=", absl::CEscape(v), "|");
  }
  absl::StrAppend(&out, "}", frame.headers_complete ? "" : "+", " bytes=", frame.raw.length());
  if (!frame.error.ok()) absl::StrAppend(&out, " error=", frame.error.ToString());
  return out;
}

} // namespace rpc
} // namespace tern
