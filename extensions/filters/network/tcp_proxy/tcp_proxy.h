#pragma once

#include <chrono>
#include <memory>
#include <random>
#include <vector>

#include "absl/container/inlined_vector.h"

#include "source/common/event/idle_timer.h"
#include "source/common/network/connection_impl.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace extensions {
namespace tcp_proxy {

#define TERN_TCP_PROXY_STATS(COUNTER, GAUGE)                                                 \
  COUNTER(downstream_cx_total)                                                               \
  COUNTER(downstream_cx_no_route)                                                            \
  COUNTER(downstream_cx_rx_bytes_total)                                                      \
  COUNTER(downstream_cx_tx_bytes_total)                                                      \
  COUNTER(downstream_flow_control_paused_reading_total)                                      \
  COUNTER(downstream_flow_control_resumed_reading_total)                                     \
  COUNTER(idle_timeout)                                                                      \
  COUNTER(upstream_connect_attempts_exceeded)                                                \
  COUNTER(upstream_flush_total)                                                              \
  COUNTER(splice_sessions_total)                                                             \
  GAUGE(upstream_flush_active)
TERN_STATS_STRUCT(TcpProxyStats, TERN_TCP_PROXY_STATS);

// The filter's plain config, built once by the factory from the proto.
struct TcpProxyConfig {
  struct WeightedCluster {
    upstream::Cluster* cluster;
    uint32_t weight;
  };
  std::vector<WeightedCluster> clusters;
  uint64_t total_weight{0};
  std::chrono::milliseconds idle_timeout{std::chrono::hours(1)}; // 0: none
  uint32_t max_connect_attempts{1};
  bool splice{true};
  upstream::ClusterManager* cm{nullptr};
  TcpProxyStats* stats{nullptr};

  upstream::Cluster* pickCluster() const;
};
using TcpProxyConfigSharedPtr = std::shared_ptr<const TcpProxyConfig>;

// L4 proxy: one upstream connection per downstream one. The downstream is not read until
// the upstream has connected; each side's write buffer above its high watermark pauses
// reading on the other; a FIN from either side is passed on as a half-close. When both
// sockets are plain TCP the bytes move by splice(2) through a pipe leased only while data
// is in flight, so they never enter user space.
class TcpProxyFilter : public network::ReadFilter, public network::ConnectionCallbacks {
public:
  explicit TcpProxyFilter(TcpProxyConfigSharedPtr config);
  ~TcpProxyFilter() override;

  // network::ReadFilter
  network::FilterStatus onNewConnection() override;
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override;
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) override;

  // network::ConnectionCallbacks (downstream)
  void onEvent(network::ConnectionEvent event) override;
  void onAboveWriteBufferHighWatermark() override;
  void onBelowWriteBufferLowWatermark() override;

private:
  class Upstream;
  class Splicer;

  void connectUpstream();
  void onUpstreamEvent(network::ConnectionEvent event);
  void onUpstreamData(buffer::Buffer& data, bool end_stream);
  void releaseUpstream(bool flush);
  void onIdleTimeout();
  void touch() {
    if (idle_timer_) idle_timer_->touch();
  }
  // dir 0: reading the downstream paused/resumed; dir 1: reading the upstream.
  void countPause(int dir, bool paused);

  TcpProxyConfigSharedPtr config_;
  network::ReadFilterCallbacks* callbacks_{nullptr};
  network::ConnectionImpl* downstream_{nullptr};
  upstream::Cluster* cluster_{nullptr};
  upstream::HostSharedPtr host_;
  absl::InlinedVector<upstream::Host*, 2> tried_; // hosts that failed to connect
  std::unique_ptr<network::ConnectionImpl> upstream_;
  std::shared_ptr<Upstream> upstream_callbacks_;
  std::unique_ptr<Splicer> splicer_;
  std::unique_ptr<event::IdleTimer> idle_timer_;
  uint32_t attempts_{0};
  bool connected_{false};
  bool downstream_closed_{false};
};

} // namespace tcp_proxy
} // namespace extensions
} // namespace tern
