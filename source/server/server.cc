#include "source/server/server.h"

#include <signal.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "source/common/common/logger.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/common/config/registry.h"
#include "source/common/network/socket.h"

namespace tern {
namespace server {

using tern::bootstrap::v1::Settings_IoModel;

absl::StatusOr<Settings> resolveSettings(const envoy::config::bootstrap::v3::Bootstrap& bootstrap,
                                         const Options& options) {
  tern::bootstrap::v1::Settings proto;
  bool seen = false;
  std::string at_settings = "bootstrap_extensions[].typed_config";
  for (int i = 0; i < bootstrap.bootstrap_extensions_size(); i++) {
    const auto& ext = bootstrap.bootstrap_extensions(i);
    std::string at = absl::StrCat("bootstrap_extensions[", i, "].typed_config");
    if (config::typeNameOf(ext.typed_config().type_url()) != proto.GetDescriptor()->full_name()) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, ": no bootstrap extension in this build takes ",
                       config::typeNameOf(ext.typed_config().type_url())));
    }
    if (seen) return absl::InvalidArgumentError(absl::StrCat(at, ": Tern settings given twice"));
    seen = true;
    at_settings = at;
    auto st = config::unpackTo(ext.typed_config(), proto, at);
    if (!st.ok()) return st;
  }
  Settings s;
  s.io_model = proto.io_model();
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  s.concurrency = proto.concurrency() ? proto.concurrency() : hw;
  if (options.concurrency > 0) s.concurrency = options.concurrency;
  if (options.concurrency == 0) s.concurrency = hw;
  s.shards = proto.raw_epoll_shards() ? proto.raw_epoll_shards() : 4 * s.concurrency;
  s.block_size = proto.has_buffer_block_size() ? proto.buffer_block_size().value() : 16384;
  if (s.block_size < 1024 || s.block_size > (1u << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat(at_settings, ".buffer_block_size: must be within [1024, 1048576]"));
  }
  s.buffer_limit = proto.has_per_connection_buffer_limit_bytes()
                       ? proto.per_connection_buffer_limit_bytes().value()
                       : 1024 * 1024;
  s.backlog = proto.has_listen_backlog() ? proto.listen_backlog().value() : 1024;
  s.splice = proto.has_tcp_splice() ? proto.tcp_splice().value() : true;
  s.log_level = options.log_level.empty() ? proto.log_level() : options.log_level;
  if (!s.log_level.empty()) {
    log::Level l;
    if (!log::parseLevel(s.log_level, &l)) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.log_level.empty() ? at_settings + ".log_level: " : "--log-level: ", "'",
          s.log_level, "' is not one of trace, debug, info, warn, error, off"));
    }
  }
  return s;
}

absl::StatusOr<std::unique_ptr<Server>>
Server::create(const envoy::config::bootstrap::v3::Bootstrap& bootstrap, const Options& options,
               bool bind) {
  auto settings = resolveSettings(bootstrap, options);
  if (!settings.ok()) return settings.status();
  if (!settings->log_level.empty()) {
    log::Level l;
    log::parseLevel(settings->log_level, &l);
    log::setLevel(l);
  }
  std::unique_ptr<Server> server(new Server(*settings));
  if (bootstrap.has_admin() && bootstrap.admin().has_address()) {
    const auto& sa = bootstrap.admin().address().socket_address();
    auto a = network::Address::fromIpPort(sa.address(), sa.port_value());
    if (!a.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin.address.socket_address: ", a.status().message()));
    }
    server->admin_address_ = *a;
  }
  {
    google::protobuf::util::JsonPrintOptions jo;
    jo.add_whitespace = true;
    jo.preserve_proto_field_names = true;
    auto st = google::protobuf::util::MessageToJsonString(bootstrap, &server->config_json_, jo);
    if (!st.ok()) server->config_json_ = "{}";
  }
  const auto& sr = bootstrap.static_resources();
  auto st = server->cm_.addClusters(sr.clusters(), "static_resources.clusters");
  if (!st.ok()) return st;
  std::set<std::string> names;
  for (int i = 0; i < sr.listeners_size(); i++) {
    std::string at = absl::StrCat("static_resources.listeners[", i, "]");
    auto lc = ListenerConfig::create(sr.listeners(i), at, *server, server->settings_.buffer_limit);
    if (!lc.ok()) return lc.status();
    if (!names.insert((*lc)->name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, ".name: duplicate listener name '", (*lc)->name(), "'"));
    }
    server->listeners_.push_back(std::move(*lc));
  }
  if (!bind) return server;

  if (server->settings_.io_model == tern::bootstrap::v1::Settings::RAW_EPOLL) {
    server->runtime_ = std::make_unique<RawEpollIoRuntime>(
        server->settings_.shards, server->settings_.concurrency, server->settings_.block_size);
  } else {
    server->runtime_ = std::make_unique<WorkerLoopsRuntime>(server->settings_.concurrency,
                                                            server->settings_.block_size);
  }
  server->cm_.initShards(server->runtime_->dispatchers());
  st = server->bindListeners();
  if (!st.ok()) return st;
  return server;
}

absl::Status Server::bindListeners() {
  auto dispatchers = runtime_->dispatchers();
  for (size_t i = 0; i < listeners_.size(); i++) {
    auto& lc = listeners_[i];
    // One SO_REUSEPORT socket per shard; the first learns the port when config says 0.
    std::vector<int> fds;
    for (size_t s = 0; s < dispatchers.size(); s++) {
      auto fd = network::createListenSocket(lc->address(), settings_.backlog, true);
      if (!fd.ok()) {
        for (int f : fds) close(f);
        return absl::UnavailableError(absl::StrCat("static_resources.listeners[", i, "] (",
                                                   lc->name(), "): ", fd.status().message()));
      }
      if (s == 0 && lc->address().port() == 0) {
        auto bound = network::localAddressOf(*fd);
        if (bound.ok()) lc->setAddress(*bound);
      }
      fds.push_back(*fd);
    }
    for (size_t s = 0; s < dispatchers.size(); s++) {
      shard_listeners_.push_back(std::make_unique<ShardListener>(*lc, *dispatchers[s], fds[s]));
    }
    TERN_LOG(Info, "listener %s on %s (%zu shards)", lc->name(), lc->address().toString(),
             dispatchers.size());
  }
  if (admin_address_.valid()) {
    auto fd = network::createListenSocket(admin_address_, 128, false);
    if (!fd.ok()) return absl::UnavailableError(absl::StrCat("admin.address: ", fd.status().message()));
    auto bound = network::localAddressOf(*fd);
    if (bound.ok()) admin_address_ = *bound;
    AdminContext ctx;
    ctx.stats = &stats_;
    ctx.cm = &cm_;
    ctx.config_dump = [this] { return config_json_; };
    ctx.listeners = [this] {
      std::string out;
      for (const auto& l : listeners_) absl::StrAppend(&out, l->name(), "::", l->address().toString(), "\n");
      return out;
    };
    ctx.quit = [] { kill(getpid(), SIGTERM); };
    ctx.healthcheck_failed = &healthcheck_failed_;
    admin_ = std::make_unique<AdminServer>(std::move(ctx), *dispatchers[0], *fd);
    TERN_LOG(Info, "admin on %s", admin_address_.toString());
  }
  return absl::OkStatus();
}

absl::StatusOr<network::Address> Server::listenerAddress(absl::string_view name) const {
  for (const auto& l : listeners_) {
    if (l->name() == name) return l->address();
  }
  return absl::NotFoundError(absl::StrCat("no listener named ", name));
}

void Server::start() {
  started_ = true;
  cm_.startDnsRefresh();
  runtime_->start();
  TERN_LOG(Info, "tern started: %s, %u threads",
           settings_.io_model == tern::bootstrap::v1::Settings::RAW_EPOLL ? "raw_epoll"
                                                                          : "worker_loops",
           settings_.concurrency);
}

size_t Server::drain(std::chrono::milliseconds timeout) {
  if (!started_ || stopped_) return 0;
  for (auto& sl : shard_listeners_) {
    ShardListener* l = sl.get();
    l->dispatcher().post([l] { l->drain(); });
  }
  auto open = [this] {
    size_t n = 0;
    for (auto& sl : shard_listeners_) n += sl->activeConnections();
    return n;
  };
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t n = open();
  while (n > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    n = open();
  }
  return n;
}

void Server::stop() {
  if (stopped_) return;
  stopped_ = true;
  cm_.stop();
  if (runtime_ && started_) runtime_->stop();
  // Shards no longer run: tear down their objects from here.
  shard_listeners_.clear();
  admin_.reset();
  cm_.clearShardLocals();
}

Server::~Server() {
  stop();
  runtime_.reset();
}

} // namespace server
} // namespace tern
