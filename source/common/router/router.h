#pragma once

#include <memory>

#include "absl/container/inlined_vector.h"
#include "source/common/common/recycler.h"
#include "source/common/http/filter.h"
#include "source/common/router/config.h"
#include "source/common/stream/conn_pools.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace router {

#define TERN_ROUTER_STATS(COUNTER, GAUGE)                                                    \
  COUNTER(no_route)                                                                          \
  COUNTER(no_cluster)                                                                        \
  COUNTER(rq_direct_response)                                                                \
  COUNTER(rq_redirect)                                                                       \
  COUNTER(rq_retry_skipped_request_not_complete)
TERN_STATS_STRUCT(RouterStats, TERN_ROUTER_STATS);

struct RouterConfig {
  upstream::ClusterManager* cm{nullptr};
  RouterStats* stats{nullptr};
};
using RouterConfigSharedPtr = std::shared_ptr<const RouterConfig>;

// The terminal stream filter: picks the cluster and host for the route, sends the request
// upstream through the shard's connection pool, retries and times out per the route, and
// hands the response back to the encoder chain.
class RouterFilter : public http::StreamDecoderFilter {
public:
  explicit RouterFilter(RouterConfigSharedPtr config);
  ~RouterFilter() override;

  // http::StreamDecoderFilter
  http::FilterHeadersStatus decodeHeaders(http::HeaderMap& headers, bool end_stream) override;
  http::FilterDataStatus decodeData(buffer::Buffer& data, bool end_stream) override;
  http::FilterTrailersStatus decodeTrailers(http::HeaderMap& trailers) override;
  void setDecoderFilterCallbacks(http::StreamDecoderFilterCallbacks& cb) override { callbacks_ = &cb; }
  void onDestroy() override;
  void onDownstreamAboveWriteBufferHighWatermark() override;
  void onDownstreamBelowWriteBufferLowWatermark() override;

private:
  class UpstreamRequest;
  friend class UpstreamRequest;

  void startUpstream();
  void onUpstreamHeaders(http::HeaderMapPtr headers, bool end_stream);
  void onUpstreamData(buffer::Buffer& data, bool end_stream);
  void onUpstreamTrailers(http::HeaderMapPtr trailers);
  // A failure before any response byte went downstream: retry or answer locally.
  void onUpstreamFailure(const char* reset_reason, const char* flag, bool connect_failure,
                         bool reset, bool safe_to_retry, bool refused = false);
  bool retryAllowed();
  void scheduleRetry();
  void onGlobalTimeout();
  void onPerTryTimeout();
  void cleanupUpstream();
  void recordRqTime();
  std::string redirectLocation(const http::HeaderMap& h) const;

  RouterConfigSharedPtr config_;
  http::StreamDecoderFilterCallbacks* callbacks_{nullptr};
  const Route* route_{nullptr};
  upstream::Cluster* cluster_{nullptr};
  http::HeaderMap* request_headers_{nullptr};
  http::HeaderMapPtr request_trailers_;
  std::unique_ptr<UpstreamRequest> upstream_;
  std::unique_ptr<buffer::Buffer> body_; // request body kept for retries
  absl::InlinedVector<upstream::Host*, 2> tried_;
  event::TimerPtr global_timer_;
  std::chrono::steady_clock::time_point upstream_start_;
  event::TimerPtr retry_timer_;
  uint32_t retries_left_{0};
  uint32_t attempts_{0};
  bool request_complete_{false};
  bool body_too_big_for_retry_{false};
  bool downstream_response_started_{false};
  // Retries of requests the upstream never processed (see onUpstreamFailure).
  static constexpr uint32_t kMaxRefusedRetries = 10;
  uint32_t safe_retries_{0};
  bool had_body_{false};
  bool retry_counted_{false};
};

} // namespace router
} // namespace tern
