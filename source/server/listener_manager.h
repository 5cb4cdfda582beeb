#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "envoy/config/listener/v3/listener.pb.h"
#include "source/common/network/connection_impl.h"
#include "source/common/network/listener_impl.h"
#include "source/common/stats/stats.h"
#include "source/server/filter_config.h"

namespace tern {
namespace server {

#define TERN_LISTENER_STATS(COUNTER, GAUGE)                                                  \
  COUNTER(downstream_cx_total)                                                               \
  COUNTER(downstream_cx_destroy)                                                             \
  COUNTER(downstream_cx_rx_bytes_total)                                                      \
  COUNTER(downstream_cx_tx_bytes_total)                                                      \
  COUNTER(no_filter_chain_match)                                                             \
  GAUGE(downstream_cx_active)
TERN_STATS_STRUCT(ListenerStats, TERN_LISTENER_STATS);

// A listener as configured: address, filter chain factories, stats. Its sockets and
// connections live on the shards (ShardListener), one listen socket per shard.
class ListenerConfig {
public:
  static absl::StatusOr<std::unique_ptr<ListenerConfig>>
  create(const envoy::config::listener::v3::Listener& config, const std::string& field_path,
         FactoryContext& context, uint32_t default_buffer_limit);

  const std::string& name() const { return name_; }
  const network::Address& address() const { return address_; }
  void setAddress(const network::Address& a) { address_ = a; } // after binding port 0
  ListenerStats& stats() { return stats_; }
  const std::vector<NetworkFilterFactoryCb>& filterFactories() const { return factories_; }
  uint32_t bufferLimit() const { return buffer_limit_; }

private:
  ListenerConfig(std::string name, network::Address address, ListenerStats stats,
                 uint32_t buffer_limit)
      : name_(std::move(name)), address_(address), stats_(stats), buffer_limit_(buffer_limit) {}

  std::string name_;
  network::Address address_;
  ListenerStats stats_;
  std::vector<NetworkFilterFactoryCb> factories_;
  uint32_t buffer_limit_;
};

// One shard's listen socket for a listener and the connections it accepted.
class ShardListener {
public:
  ShardListener(ListenerConfig& config, event::Dispatcher& dispatcher, int listen_fd);
  ~ShardListener();
  // Readable from any thread (shutdown polls it).
  size_t activeConnections() const { return count_.load(std::memory_order_relaxed); }
  event::Dispatcher& dispatcher() { return dispatcher_; }
  // Graceful shutdown: stop accepting and ask every connection to drain. On the shard.
  void drain();

private:
  // An accepted connection, linked into its listener's list (intrusive: no list node
  // allocation per connection).
  struct ActiveConnection : public network::ConnectionCallbacks, public event::DeferredDeletable {
    ActiveConnection(ShardListener& l, std::unique_ptr<network::ConnectionImpl> c)
        : listener(l), connection(std::move(c)) {}
    void onEvent(network::ConnectionEvent event) override;
    ShardListener& listener;
    std::unique_ptr<network::ConnectionImpl> connection;
    ActiveConnection* prev{nullptr};
    ActiveConnection* next{nullptr};
  };

  void onAccept(int fd, const network::Address& remote);
  void removeConnection(ActiveConnection& ac);

  ListenerConfig& config_;
  event::Dispatcher& dispatcher_;
  network::ListenerImpl listener_;
  ActiveConnection* head_{nullptr};
  std::atomic<size_t> count_{0};
};

} // namespace server
} // namespace tern
