#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "source/common/event/dispatcher.h"
#include "source/common/network/listener_impl.h"
#include "source/common/stats/stats.h"

namespace tern {
namespace upstream {
class ClusterManager;
}
namespace server {

class ListenerConfig;

// What the admin endpoints read and change; the server provides it.
struct AdminContext {
  stats::Store* stats{nullptr};
  upstream::ClusterManager* cm{nullptr};
  std::function<std::string()> config_dump;   // JSON of the running bootstrap
  std::function<std::string()> listeners;     // one line per listener
  std::function<void()> quit;                 // begin shutdown
  std::atomic<bool>* healthcheck_failed{nullptr};
};

// Envoy's admin interface on its own listener: /stats, /stats/prometheus, /config_dump,
// /clusters, /listeners, /ready, /healthcheck/fail|ok, /logging, /quitquitquit. Runs on
// one shard; each request is answered at once and the answer is small.
class AdminServer {
public:
  AdminServer(AdminContext context, event::Dispatcher& dispatcher, int listen_fd);
  ~AdminServer();

  // Handles one request: returns status and body, and sets the content type.
  static int handle(const AdminContext& ctx, absl::string_view method, absl::string_view path,
                    std::string& body, std::string& content_type);

private:
  class Connection;
  void onAccept(int fd, const network::Address& remote);

  AdminContext context_;
  event::Dispatcher& dispatcher_;
  network::ListenerImpl listener_;
  std::vector<std::unique_ptr<Connection>> connections_;
  friend class Connection;
};

} // namespace server
} // namespace tern
