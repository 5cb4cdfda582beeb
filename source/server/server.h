#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "envoy/config/bootstrap/v3/bootstrap.pb.h"
#include "source/common/stats/stats.h"
#include "source/common/upstream/cluster_manager.h"
#include "source/server/admin.h"
#include "source/server/filter_config.h"
#include "source/server/io_runtime.h"
#include "source/server/listener_manager.h"
#include "tern/bootstrap/v1/settings.pb.h"

namespace tern {
namespace server {

// Command-line settings that override the bootstrap where Envoy has the same flag.
struct Options {
  std::string config_path;
  std::string mode = "serve"; // serve | validate
  int concurrency = -1;       // -1: from config
  std::string log_level;      // empty: from config
  int drain_time_s = 5;       // graceful shutdown: longest wait for in-flight requests
};

// Tern's settings as used at run time, defaults applied.
struct Settings {
  tern::bootstrap::v1::Settings::IoModel io_model;
  uint32_t concurrency;
  uint32_t shards; // raw_epoll
  uint32_t block_size;
  uint32_t buffer_limit;
  uint32_t backlog;
  bool splice;
  std::string log_level;
};

// Reads the Tern Settings extension out of a bootstrap and applies defaults and flags.
absl::StatusOr<Settings> resolveSettings(const envoy::config::bootstrap::v3::Bootstrap& bootstrap,
                                         const Options& options);

// The whole proxy: clusters, listeners on every shard, the IO runtime.
class Server : public FactoryContext {
public:
  // Validates and builds everything; with `bind` false nothing touches the network
  // (validate mode). Errors name the field path; the caller adds the file name.
  static absl::StatusOr<std::unique_ptr<Server>>
  create(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, const Options& options,
         bool bind = true);
  ~Server() override;

  void start();
  // Graceful shutdown, before stop(): stops accepting, asks every connection to finish
  // what it has in flight (HTTP/2 GOAWAY, HTTP/1 "connection: close") and waits until
  // they have closed or `timeout` passed. Returns the connections still open.
  size_t drain(std::chrono::milliseconds timeout);
  // Stops every shard and closes every connection. Idempotent.
  void stop();

  // FactoryContext
  stats::Store& stats() override { return stats_; }
  upstream::ClusterManager& clusterManager() override { return cm_; }
  bool spliceAllowed() const override { return settings_.splice; }

  const Settings& settings() const { return settings_; }
  // The bound address of a listener (port 0 in config resolves to the real port).
  absl::StatusOr<network::Address> listenerAddress(absl::string_view name) const;
  std::vector<event::Dispatcher*> dispatchers() { return runtime_->dispatchers(); }
  // The admin listener's bound address (invalid when the bootstrap has no admin).
  const network::Address& adminAddress() const { return admin_address_; }
  bool healthcheckFailed() const { return healthcheck_failed_.load(); }

private:
  Server(Settings settings) : settings_(std::move(settings)), cm_(stats_) {}
  absl::Status bindListeners();

  const Settings settings_;
  stats::Store stats_;
  upstream::ClusterManager cm_;
  std::unique_ptr<IoRuntime> runtime_;
  std::vector<std::unique_ptr<ListenerConfig>> listeners_;
  std::vector<std::unique_ptr<ShardListener>> shard_listeners_;
  std::string config_json_;
  network::Address admin_address_;
  std::unique_ptr<AdminServer> admin_;
  std::atomic<bool> healthcheck_failed_{false};
  bool started_{false};
  bool stopped_{false};
};

} // namespace server
} // namespace tern
