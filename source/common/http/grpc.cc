#include "source/common/http/grpc.h"

#include "absl/strings/match.h"

namespace tern {
namespace http {
namespace grpc {

bool isGrpcRequest(const HeaderMap& request) {
  absl::string_view ct = request.getView("content-type");
  if (!absl::StartsWithIgnoreCase(ct, "application/grpc")) return false;
  return ct.size() == 16 || ct[16] == '+' || ct[16] == '-' || ct[16] == ';';
}

int statusFromHttp(int http_status) {
  switch (http_status) {
  case 400: return 13; // INTERNAL
  case 401: return 16; // UNAUTHENTICATED
  case 403: return 7;  // PERMISSION_DENIED
  case 404: return 12; // UNIMPLEMENTED
  case 429:
  case 502:
  case 503:
  case 504: return 14; // UNAVAILABLE
  default: return 2;   // UNKNOWN
  }
}

std::string encodeMessage(absl::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<std::chrono::milliseconds> parseTimeout(const HeaderMap& request) {
  absl::string_view v = request.getView("grpc-timeout");
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  uint64_t n = 0;
  for (char c : v.substr(0, v.size() - 1)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  using namespace std::chrono;
  switch (v.back()) {
  case 'H': return duration_cast<milliseconds>(hours(n));
  case 'M': return duration_cast<milliseconds>(minutes(n));
  case 'S': return duration_cast<milliseconds>(seconds(n));
  case 'm': return milliseconds(n);
  // Below a millisecond rounds up: a deadline never turns into "no timeout".
  case 'u': return milliseconds((n + 999) / 1000);
  case 'n': return milliseconds((n + 999999) / 1000000);
  default: return std::nullopt;
  }
}

} // namespace grpc
} // namespace http
} // namespace tern
