#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "envoy/config/cluster/v3/cluster.pb.h"
#include "source/common/event/dispatcher.h"
#include "source/common/network/connection_impl.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/host.h"
#include "source/common/upstream/load_balancer.h"

namespace tern {
namespace upstream {

#define TERN_CLUSTER_STATS(COUNTER, GAUGE)                                                   \
  COUNTER(upstream_cx_total)                                                                 \
  COUNTER(upstream_cx_connect_fail)                                                          \
  COUNTER(upstream_cx_connect_timeout)                                                       \
  COUNTER(upstream_cx_destroy)                                                               \
  COUNTER(upstream_cx_destroy_local)                                                         \
  COUNTER(upstream_cx_destroy_remote)                                                        \
  COUNTER(upstream_cx_rx_bytes_total)                                                        \
  COUNTER(upstream_cx_tx_bytes_total)                                                        \
  COUNTER(upstream_cx_none_healthy)                                                          \
  COUNTER(upstream_flow_control_paused_reading_total)                                        \
  COUNTER(upstream_cx_overflow)                                                              \
  COUNTER(upstream_cx_idle_timeout)                                                          \
  COUNTER(upstream_rq_total)                                                                 \
  COUNTER(upstream_rq_pending_total)                                                         \
  COUNTER(upstream_rq_pending_overflow)                                                      \
  COUNTER(upstream_rq_retry)                                                                 \
  COUNTER(upstream_rq_retry_overflow)                                                        \
  COUNTER(upstream_rq_timeout)                                                               \
  COUNTER(upstream_rq_per_try_timeout)                                                       \
  COUNTER(upstream_rq_2xx)                                                                   \
  COUNTER(upstream_rq_3xx)                                                                   \
  COUNTER(upstream_rq_4xx)                                                                   \
  COUNTER(upstream_rq_5xx)                                                                   \
  GAUGE(upstream_rq_active)                                                                  \
  GAUGE(upstream_rq_pending_active)                                                          \
  COUNTER(upstream_flow_control_resumed_reading_total)                                       \
  COUNTER(update_attempt)                                                                    \
  COUNTER(update_success)                                                                    \
  COUNTER(update_failure)                                                                    \
  GAUGE(upstream_cx_active)                                                                  \
  GAUGE(membership_total)                                                                    \
  GAUGE(membership_healthy)
TERN_STATS_STRUCT(ClusterStats, TERN_CLUSTER_STATS);

// A cluster as configured: what hosts exist, how to pick one, how to connect. Shared by
// all shards; membership is a snapshot swapped whole (STRICT_DNS re-resolution).
class Cluster {
public:
  Cluster(const envoy::config::cluster::v3::Cluster& config, stats::Store& store);

  const std::string& name() const { return name_; }
  std::chrono::milliseconds connectTimeout() const { return connect_timeout_; }
  LbPolicy lbPolicy() const { return lb_policy_; }
  uint32_t bufferLimit() const { return buffer_limit_; }
  // Circuit breakers (default priority thresholds; Envoy's defaults when unset).
  uint32_t maxConnections() const { return max_connections_; }
  uint32_t maxPendingRequests() const { return max_pending_; }
  uint32_t maxRequests() const { return max_requests_; }
  uint32_t maxRetries() const { return max_retries_; }
  // Idle upstream HTTP connections close after this (0: never).
  std::chrono::milliseconds httpIdleTimeout() const { return http_idle_timeout_; }
  // Which HTTP the upstream speaks (HttpProtocolOptions: explicit_http_config, or
  // use_downstream_protocol_config), and its HTTP/2 options.
  enum class HttpProtocol { Http1, Http2, UseDownstream };
  HttpProtocol httpProtocol() const { return http_protocol_; }
  const envoy::config::core::v3::Http2ProtocolOptions& http2Options() const { return http2_options_; }
  static void parseHttpProtocol(const envoy::config::cluster::v3::Cluster& config, HttpProtocol& protocol,
                                envoy::config::core::v3::Http2ProtocolOptions& http2);
  std::atomic<int64_t>& retriesActive() { return retries_active_; }
  // Upstream request time, request sent to response complete (ms).
  stats::Histogram& rqTime() { return rq_time_; }
  ClusterStats& stats() { return stats_; }
  const envoy::config::cluster::v3::Cluster& config() const { return config_; }
  bool isStrictDns() const;

  PrioritySetConstSharedPtr hosts() const;
  // Replaces membership; returns the version number shards compare against.
  uint64_t setHosts(PrioritySetConstSharedPtr hosts);
  // Lock-free: read on every host pick to see whether membership changed.
  uint64_t version() const { return version_.load(std::memory_order_acquire); }

private:
  const envoy::config::cluster::v3::Cluster config_;
  const std::string name_;
  const std::chrono::milliseconds connect_timeout_;
  const LbPolicy lb_policy_;
  const uint32_t buffer_limit_;
  uint32_t max_connections_{1024};
  uint32_t max_pending_{1024};
  uint32_t max_requests_{1024};
  uint32_t max_retries_{3};
  std::chrono::milliseconds http_idle_timeout_{3600 * 1000};
  HttpProtocol http_protocol_{HttpProtocol::Http1};
  envoy::config::core::v3::Http2ProtocolOptions http2_options_;
  std::atomic<int64_t> retries_active_{0};
  ClusterStats stats_;
  stats::Histogram& rq_time_;
  mutable absl::Mutex mu_;
  PrioritySetConstSharedPtr hosts_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> version_{0}; // bumped under mu_ after hosts_ changes
};

class ClusterManager;

// One shard's view of every cluster: its own load balancers over the current snapshot.
class ShardClusterManager {
public:
  ShardClusterManager(ClusterManager& cm, event::Dispatcher& dispatcher, uint64_t seed);

  // A healthy host of `cluster` (lowest priority level that has one), not in `exclude`,
  // or nullptr (counted as upstream_cx_none_healthy).
  HostSharedPtr chooseHost(Cluster& cluster, absl::Span<Host* const> exclude = {});
  // A client connection to `host`, not yet connecting; stats and buffer limit set.
  std::unique_ptr<network::ConnectionImpl> createConnection(Cluster& cluster,
                                                            const HostSharedPtr& host);
  event::Dispatcher& dispatcher() { return dispatcher_; }

  // Per-shard state of components above the cluster manager (HTTP connection pools),
  // found by a key the component owns. Lives until clearLocals().
  class Local {
  public:
    virtual ~Local() = default;
  };
  template <class T> T& local(const void* key) {
    auto& slot = locals_[key];
    if (!slot) slot = std::make_unique<T>(*this);
    return static_cast<T&>(*slot);
  }
  void clearLocals() { locals_.clear(); }

private:
  struct Lbs {
    uint64_t version{~0ull};
    PrioritySetConstSharedPtr hosts;
    std::vector<LoadBalancerPtr> levels;
  };
  ClusterManager& cm_;
  event::Dispatcher& dispatcher_;
  const uint64_t seed_;
  absl::flat_hash_map<const Cluster*, Lbs> lbs_;
  absl::flat_hash_map<const void*, std::unique_ptr<Local>> locals_;
};

// Owns the clusters; resolves STRICT_DNS clusters on a background thread.
class ClusterManager {
public:
  explicit ClusterManager(stats::Store& store) : store_(store) {}
  ~ClusterManager();

  // Builds every cluster (first DNS resolution included). Errors name the field.
  absl::Status addClusters(
      const google::protobuf::RepeatedPtrField<envoy::config::cluster::v3::Cluster>& clusters,
      absl::string_view field_path);
  Cluster* get(absl::string_view name);
  std::vector<Cluster*> all();
  // Creates the per-shard view for each dispatcher.
  void initShards(const std::vector<event::Dispatcher*>& dispatchers);
  ShardClusterManager& shard(event::Dispatcher& dispatcher);
  // Starts periodic DNS refresh (after the server is up).
  void startDnsRefresh();
  // Destroys per-shard state (pools and their connections) once the shards have stopped.
  void clearShardLocals() {
    for (auto& [d, s] : shards_) s->clearLocals();
  }
  void stop();

private:
  void dnsLoop();

  stats::Store& store_;
  std::map<std::string, std::unique_ptr<Cluster>, std::less<>> clusters_;
  absl::flat_hash_map<const event::Dispatcher*, std::unique_ptr<ShardClusterManager>> shards_;
  std::thread dns_thread_;
  std::mutex dns_mu_;
  std::condition_variable dns_cv_;
  bool stopping_{false};
};

// Resolves every endpoint of a STRICT_DNS cluster (or builds a STATIC one's hosts).
absl::StatusOr<PrioritySetConstSharedPtr> buildHosts(const envoy::config::cluster::v3::Cluster& c,
                                                     bool resolve);

} // namespace upstream
} // namespace tern
