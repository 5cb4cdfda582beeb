#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "extensions/codecs/http1/codec_impl.h"
#include "extensions/codecs/http2/codec_impl.h"
#include "source/common/http/filter.h"
#include "source/common/network/connection.h"
#include "source/common/router/config.h"
#include "source/common/stats/stats.h"

namespace tern {
namespace http {

#define TERN_HCM_STATS(COUNTER, GAUGE)                                                       \
  COUNTER(downstream_cx_total)                                                               \
  COUNTER(downstream_cx_protocol_error)                                                      \
  COUNTER(downstream_cx_idle_timeout)                                                        \
  COUNTER(downstream_rq_total)                                                               \
  COUNTER(downstream_rq_1xx)                                                                 \
  COUNTER(downstream_rq_2xx)                                                                 \
  COUNTER(downstream_rq_3xx)                                                                 \
  COUNTER(downstream_rq_4xx)                                                                 \
  COUNTER(downstream_rq_5xx)                                                                 \
  COUNTER(downstream_rq_timeout)                                                             \
  COUNTER(downstream_rq_idle_timeout)                                                        \
  COUNTER(downstream_rq_too_large)                                                           \
  COUNTER(downstream_rq_rx_reset)                                                            \
  COUNTER(downstream_rq_tx_reset)                                                            \
  COUNTER(no_route)                                                                          \
  GAUGE(downstream_cx_active)                                                                \
  GAUGE(downstream_rq_active)
TERN_STATS_STRUCT(HcmStats, TERN_HCM_STATS);

// The HTTP connection manager's plain config (built by its extension's factory).
struct ConnectionManagerConfig {
  std::string stat_prefix;
  HcmStats* stats{nullptr};
  stats::Histogram* rq_time{nullptr}; // downstream request time (ms)
  std::shared_ptr<const router::RouteConfig> route_config;
  std::vector<FilterFactoryCb> filter_factories;
  http1::Limits limits;
  // Which codec serves the listener: AUTO tells HTTP/2 by its connection preface.
  enum class CodecType { Auto, Http1, Http2 } codec_type{CodecType::Auto};
  http2::Settings http2_settings;
  std::chrono::milliseconds idle_timeout{3600 * 1000}; // connection without streams
  std::chrono::milliseconds request_timeout{0};        // whole request, 0: none
  std::chrono::milliseconds stream_idle_timeout{300 * 1000}; // no activity either way
  uint32_t buffer_limit{1024 * 1024};                   // per stream, for buffering filters
  bool use_remote_address{false};
  uint32_t xff_num_trusted_hops{0};
  bool generate_request_id{true};
  bool preserve_external_request_id{false};
  bool always_set_request_id_in_response{false};
  std::string via;
  std::string default_host_for_http_10; // :authority for HTTP/1.0 requests without Host
  std::string server_name{"tern"};
  enum class ServerHeader { Overwrite, AppendIfAbsent, PassThrough } server_header{ServerHeader::Overwrite};
  std::vector<AccessLogSharedPtr> access_logs;
};
using ConnectionManagerConfigSharedPtr = std::shared_ptr<const ConnectionManagerConfig>;

// The L7 network filter: a server codec on the connection, a stream per request, each
// with its decoder and encoder filter chains ending in the router.
class ConnectionManager : public network::ReadFilter,
                          public network::ConnectionCallbacks,
                          public ServerConnectionCallbacks {
public:
  explicit ConnectionManager(ConnectionManagerConfigSharedPtr config);
  ~ConnectionManager() override;

  // network::ReadFilter
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) override;
  void onDrain() override;
  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;
  // ServerConnectionCallbacks
  StreamDecoder& newStream(StreamEncoder& response) override;

private:
  class ActiveStream;
  void removeStream(ActiveStream& s);
  void armIdleTimer();
  // Makes the codec for this connection; false while AUTO still needs preface bytes.
  bool createCodec(buffer::Buffer& data);
  absl::Status upgradeToHttp2();
  void releaseIdleHttp1Codec();
  void onIdleTimer();

  ConnectionManagerConfigSharedPtr config_;
  network::Connection* connection_{nullptr};
  // The codec as its own type (nullptr when it is not that one, or there is none).
  http1::ServerConnection* http1() const {
    return codec_ && protocol_ != Protocol::Http2 ? static_cast<http1::ServerConnection*>(codec_.get())
                                                  : nullptr;
  }
  http2::ServerConnection* http2() const {
    return codec_ && protocol_ == Protocol::Http2 ? static_cast<http2::ServerConnection*>(codec_.get())
                                                  : nullptr;
  }

  // HTTP/1: exists only while a request is under way (see removeStream). HTTP/2: for the
  // connection's life. protocol_ says which.
  std::unique_ptr<CodecConnection> codec_;
  Protocol protocol_{Protocol::Http11};
  bool protocol_known_{false};
  bool draining_{false}; // graceful shutdown: close once the streams in flight are done
  std::unique_ptr<buffer::Buffer> preface_; // AUTO: the first bytes, until they tell the protocol
  using StreamList = std::list<std::unique_ptr<ActiveStream>,
                               common::RecyclingAllocator<std::unique_ptr<ActiveStream>>>;
  StreamList streams_;
  event::TimerPtr idle_timer_;
  event::MonotonicTime idle_since_{};
  uint64_t next_stream_id_{1};
};

} // namespace http
} // namespace tern
