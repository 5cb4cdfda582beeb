#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "source/common/http/filter.h"

namespace tern {
namespace access_log {

// Envoy's access log format strings: literal text and %COMMAND% operators
// (%START_TIME%, %REQ(:PATH)%, %RESP(X)%, %RESPONSE_CODE%, %DURATION%, %UPSTREAM_HOST%,
// %BYTES_RECEIVED%, ...), compiled once, then rendered per stream.
class Formatter {
public:
  static absl::StatusOr<Formatter> parse(absl::string_view format);
  // Envoy's default format.
  static const char* defaultFormat();
  std::string format(const http::HeaderMap* request, const http::HeaderMap* response,
                     const http::StreamInfo& info) const;

private:
  enum class Op {
    Literal, StartTime, Req, Resp, ResponseCode, ResponseFlags, ResponseCodeDetails, Duration,
    BytesReceived, BytesSent, Protocol, UpstreamHost, UpstreamCluster, RouteName,
    DownstreamRemoteAddress, DownstreamRemoteAddressNoPort, DownstreamLocalAddress
  };
  struct Part {
    Op op;
    std::string text;     // literal, or header name
    std::string fallback; // REQ(A?B)
    size_t max_len{0};
  };
  std::vector<Part> parts_;
};

} // namespace access_log
} // namespace tern
