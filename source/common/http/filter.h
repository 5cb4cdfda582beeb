#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "source/common/buffer/buffer.h"
#include "source/common/event/dispatcher.h"
#include "source/common/http/codec.h"
#include "source/common/http/header_map.h"
#include "source/common/network/address.h"

namespace tern {
namespace router {
class Route;
}
namespace upstream {
struct Host;
}
namespace http {

// The protocol-independent stream filter API: HTTP/1, HTTP/2 and the RPC codecs all
// present requests as headers, data and trailers, so one filter works on every protocol.

enum class FilterHeadersStatus { Continue, StopIteration };
enum class FilterDataStatus {
  Continue,
  StopIterationAndBuffer, // keep the data; the chain resumes with all of it buffered
  StopIterationNoBuffer,  // the filter took the data
};
enum class FilterTrailersStatus { Continue, StopIteration };

// Facts about one request, for access logs and stats.
struct StreamInfo {
  std::chrono::system_clock::time_point start_time;
  std::chrono::steady_clock::time_point start_mono;
  std::chrono::steady_clock::time_point end_mono;
  int response_code{0};
  uint64_t bytes_received{0};
  uint64_t bytes_sent{0};
  std::string upstream_host;
  std::string upstream_cluster;
  std::string route_name;
  std::string response_flags; // Envoy's short codes: NR, UH, UF, UT, URX, UO, LR, DC
  std::string response_code_details;
  network::Address downstream_remote;
  network::Address downstream_local;
  std::string protocol; // HTTP/1.1, HTTP/1.0, HTTP/2
  Protocol downstream_protocol{Protocol::Http11};
  void addFlag(absl::string_view f) {
    if (response_flags.find(std::string(f)) != std::string::npos) return;
    if (!response_flags.empty()) response_flags += ",";
    response_flags += std::string(f);
  }
};

// Writes one line (or record) per finished stream.
class AccessLog {
public:
  virtual ~AccessLog() = default;
  virtual void log(const HeaderMap* request, const HeaderMap* response, const StreamInfo& info) = 0;
};
using AccessLogSharedPtr = std::shared_ptr<AccessLog>;

class StreamFilterCallbacks {
public:
  virtual ~StreamFilterCallbacks() = default;
  virtual event::Dispatcher& dispatcher() = 0;
  // The route picked for this request (nullptr: none matched). Computed lazily.
  virtual const router::Route* route() = 0;
  // Headers changed in a way that may change the route: pick again on next route().
  virtual void clearRouteCache() = 0;
  virtual StreamInfo& streamInfo() = 0;
  virtual uint64_t streamId() const = 0;
};

class StreamDecoderFilterCallbacks : public StreamFilterCallbacks {
public:
  // Resume the request after a filter stopped.
  virtual void continueDecoding() = 0;
  // Request data buffered so far (StopIterationAndBuffer), or nullptr.
  virtual const buffer::Buffer* decodingBuffer() = 0;
  virtual HeaderMap* requestHeaders() = 0;
  // Answer the request from here: the response runs through the encoder filters.
  virtual void sendLocalReply(int code, absl::string_view body,
                              const std::function<void(HeaderMap&)>& modify_headers,
                              absl::string_view details) = 0;
  // The response, from the terminal filter (router) on.
  virtual void encode1xxHeaders(HeaderMapPtr headers) = 0;
  virtual void encodeHeaders(HeaderMapPtr headers, bool end_stream) = 0;
  virtual void encodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(HeaderMapPtr trailers) = 0;
  virtual void resetStream() = 0;
  virtual uint32_t bufferLimit() const = 0;
  // Flow control between the downstream connection and the upstream request.
  virtual void onDecoderFilterAboveWriteBufferHighWatermark() = 0;
  virtual void onDecoderFilterBelowWriteBufferLowWatermark() = 0;
};

class StreamEncoderFilterCallbacks : public StreamFilterCallbacks {
public:
  virtual void continueEncoding() = 0;
  virtual const buffer::Buffer* encodingBuffer() = 0;
};

class StreamDecoderFilter {
public:
  virtual ~StreamDecoderFilter() = default;
  virtual FilterHeadersStatus decodeHeaders(HeaderMap& headers, bool end_stream) = 0;
  virtual FilterDataStatus decodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual FilterTrailersStatus decodeTrailers(HeaderMap& trailers) = 0;
  virtual void setDecoderFilterCallbacks(StreamDecoderFilterCallbacks& callbacks) = 0;
  // The stream is going away (complete or reset): stop timers, release upstreams.
  virtual void onDestroy() {}
  // Downstream flow control reached the filter that is feeding the response.
  virtual void onDownstreamAboveWriteBufferHighWatermark() {}
  virtual void onDownstreamBelowWriteBufferLowWatermark() {}
};
using StreamDecoderFilterSharedPtr = std::shared_ptr<StreamDecoderFilter>;

class StreamEncoderFilter {
public:
  virtual ~StreamEncoderFilter() = default;
  virtual FilterHeadersStatus encodeHeaders(HeaderMap& headers, bool end_stream) = 0;
  virtual FilterDataStatus encodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual FilterTrailersStatus encodeTrailers(HeaderMap& trailers) = 0;
  virtual void setEncoderFilterCallbacks(StreamEncoderFilterCallbacks& callbacks) = 0;
  virtual void onDestroy() {}
};
using StreamEncoderFilterSharedPtr = std::shared_ptr<StreamEncoderFilter>;

// Adds one filter instance (or a pair) to a new stream's chain.
class FilterChainFactoryCallbacks {
public:
  virtual ~FilterChainFactoryCallbacks() = default;
  virtual void addStreamDecoderFilter(StreamDecoderFilterSharedPtr filter) = 0;
  virtual void addStreamEncoderFilter(StreamEncoderFilterSharedPtr filter) = 0;
};
using FilterFactoryCb = std::function<void(FilterChainFactoryCallbacks&)>;

} // namespace http
} // namespace tern
