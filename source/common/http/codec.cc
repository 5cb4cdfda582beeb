#include "source/common/http/codec.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"

namespace tern {
namespace http {

const char* resetReasonName(StreamResetReason r) {
  switch (r) {
  case StreamResetReason::ConnectionFailure: return "connection failure";
  case StreamResetReason::ConnectionTermination: return "connection termination";
  case StreamResetReason::LocalReset: return "local reset";
  case StreamResetReason::RemoteReset: return "remote reset";
  case StreamResetReason::Overflow: return "overflow";
  case StreamResetReason::ProtocolError: return "protocol error";
  case StreamResetReason::RefusedStream: return "refused stream";
  }
  return "unknown";
}

bool decodeHttp2Settings(absl::string_view value, std::string* payload) {
  while (!value.empty() && value.back() == '=') value.remove_suffix(1);
  // Checked here: absl's decoder would skip whitespace.
  for (char c : value) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  std::string out;
  if (!absl::WebSafeBase64Unescape(value, &out) || out.size() % 6 != 0) return false;
  if (payload != nullptr) *payload = std::move(out);
  return true;
}

} // namespace http
} // namespace tern
