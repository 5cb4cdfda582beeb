#pragma once

// The RPC proxy network filter (tern.filters.network.rpc_proxy): decodes a downstream
// connection's RPC frames, runs each request through the stream filters and the route
// table, and forwards its bytes, request id rewritten, over an upstream pool; responses
// come back the same way with the downstream id restored. Heartbeats are answered here.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "source/common/event/idle_timer.h"
#include "source/common/http/filter.h"
#include "source/common/network/connection.h"
#include "source/common/rpc/codec.h"
#include "source/common/rpc/route.h"
#include "source/common/stats/stats.h"
#include "source/common/stream/rpc_conn_pool.h"
#include "source/server/filter_config.h"

namespace tern {
namespace rpc_proxy {

#define TERN_RPC_PROXY_STATS(COUNTER, GAUGE)                                                 \
  COUNTER(downstream_cx_total)                                                               \
  GAUGE(downstream_cx_active)                                                                \
  COUNTER(downstream_cx_protocol_error)                                                      \
  COUNTER(downstream_cx_http)                                                                \
  COUNTER(downstream_cx_idle_timeout)                                                        \
  COUNTER(downstream_rq_total)                                                               \
  GAUGE(downstream_rq_active)                                                                \
  COUNTER(downstream_rq_oneway)                                                              \
  COUNTER(downstream_rq_heartbeat)                                                           \
  COUNTER(downstream_rq_decode_error)                                                        \
  COUNTER(downstream_rq_duplicate_id)                                                        \
  COUNTER(downstream_rq_rejected)                                                            \
  COUNTER(downstream_rq_drain_goaway)                                                        \
  COUNTER(rq_no_route)                                                                       \
  COUNTER(rq_no_healthy_upstream)                                                            \
  COUNTER(rq_timeout)                                                                        \
  COUNTER(rq_overflow)                                                                       \
  COUNTER(rq_upstream_reset)                                                                 \
  COUNTER(rq_retry)                                                                          \
  COUNTER(rq_response_success)                                                               \
  COUNTER(rq_response_error)
TERN_STATS_STRUCT(RpcProxyStats, TERN_RPC_PROXY_STATS);

struct RpcProxyConfig {
  enum class PoolMode { Multiplex, PingPong, Bound };

  std::string stat_prefix;
  // The codec every connection uses, or (AUTO) nullptr and the candidates below.
  const rpc::Codec* codec{nullptr};
  std::vector<const rpc::Codec*> auto_codecs;
  bool bolt_v2_only{false};
  std::vector<rpc::CodecPtr> owned_codecs;
  std::shared_ptr<const rpc::RouteConfig> routes;
  std::vector<http::FilterFactoryCb> filter_factories;
  PoolMode pool_mode{PoolMode::Multiplex};
  uint32_t connections_per_host{1};
  std::chrono::milliseconds idle_timeout{3600 * 1000};
  // AUTO: installs the HTTP connection manager on a connection that is not RPC.
  server::NetworkFilterFactoryCb http;
  upstream::ClusterManager* cm{nullptr};
  RpcProxyStats* stats{nullptr};
};
using RpcProxyConfigSharedPtr = std::shared_ptr<const RpcProxyConfig>;

class RpcProxyFilter : public network::ReadFilter, public network::ConnectionCallbacks {
public:
  explicit RpcProxyFilter(RpcProxyConfigSharedPtr config);
  ~RpcProxyFilter() override;

  // network::ReadFilter
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& callbacks) override;
  void onDrain() override;

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override;

private:
  class ActiveRequest;
  friend class ActiveRequest;

  bool chooseCodec(buffer::Buffer& data);
  void onFrame(rpc::FramePtr frame);
  void onRequest(rpc::FramePtr frame);
  void sendLocalReply(const rpc::Frame& request, rpc::LocalReplyError error,
                      absl::string_view message);
  void write(buffer::Buffer& out);
  // Deadlines: active requests sit in one list ordered by deadline, under one timer.
  void insertByDeadline(ActiveRequest& request);
  void unlink(ActiveRequest& request);
  void armDeadlineTimer();
  void onDeadlineTimer();
  void finish(ActiveRequest& request);
  void closeIfDrained();
  stream::RpcConnPool& pool(upstream::Cluster& cluster, const upstream::HostSharedPtr& host);
  uint64_t random();

  const RpcProxyConfigSharedPtr config_;
  RpcProxyStats& stats_;
  network::ReadFilterCallbacks* callbacks_{nullptr};
  network::Connection* conn_{nullptr};
  upstream::ShardClusterManager* shard_cm_{nullptr};
  const rpc::Codec* codec_{nullptr};
  bool handed_to_http_{false};
  bool draining_{false};
  bool closed_{false};
  // Two-way requests in flight, by downstream id.
  absl::flat_hash_map<uint64_t, ActiveRequest*> by_id_;
  ActiveRequest* head_{nullptr}; // earliest deadline
  ActiveRequest* tail_{nullptr};
  size_t active_{0};
  event::TimerPtr deadline_timer_;
  event::MonotonicTime timer_at_{};
  std::unique_ptr<event::IdleTimer> idle_timer_;
  // BOUND mode: this connection's own pools, by host.
  absl::flat_hash_map<const upstream::Host*, std::unique_ptr<stream::RpcConnPool>> bound_pools_;
  uint64_t rng_;
};

} // namespace rpc_proxy
} // namespace tern
