#include "source/server/listener_manager.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "source/common/common/logger.h"
#include "source/common/config/registry.h"
#include "source/common/network/socket.h"

namespace tern {
namespace server {

absl::StatusOr<std::unique_ptr<ListenerConfig>>
ListenerConfig::create(const envoy::config::listener::v3::Listener& config,
                       const std::string& at, FactoryContext& context,
                       uint32_t default_buffer_limit) {
  if (!config.address().has_socket_address()) {
    return absl::InvalidArgumentError(absl::StrCat(at, ".address.socket_address: must be set"));
  }
  const auto& sa = config.address().socket_address();
  auto addr = network::Address::fromIpPort(sa.address(), sa.port_value());
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(at, ".address.socket_address: ", addr.status().message()));
  }
  if (config.filter_chains_size() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(at, ".filter_chains: at least one is needed"));
  }
  if (config.filter_chains_size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        at, ".filter_chains: only one filter chain per listener is supported so far"));
  }
  if (config.filter_chains(0).has_filter_chain_match()) {
    return absl::InvalidArgumentError(
        absl::StrCat(at, ".filter_chains[0].filter_chain_match: not supported yet"));
  }
  std::string name = config.name().empty() ? addr->toString() : config.name();
  std::string stat_name = config.stat_prefix().empty()
                              ? absl::StrReplaceAll(addr->toString(), {{":", "_"}, {"[", ""}, {"]", ""}})
                              : config.stat_prefix();
  uint32_t limit = config.has_per_connection_buffer_limit_bytes()
                       ? config.per_connection_buffer_limit_bytes().value()
                       : default_buffer_limit;
  std::unique_ptr<ListenerConfig> lc(new ListenerConfig(
      name, *addr, ListenerStats::create(context.stats(), absl::StrCat("listener.", stat_name, ".")),
      limit));

  const auto& filters = config.filter_chains(0).filters();
  if (filters.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(at, ".filter_chains[0].filters: empty"));
  }
  for (int i = 0; i < filters.size(); i++) {
    std::string fat = absl::StrCat(at, ".filter_chains[0].filters[", i, "]");
    const auto& f = filters[i];
    NetworkFilterFactory* factory = nullptr;
    if (f.has_typed_config()) {
      factory = config::Registry<NetworkFilterFactory>::getByType(
          config::typeNameOf(f.typed_config().type_url()));
      if (factory == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            fat, ".typed_config: no network filter in this build takes ",
            config::typeNameOf(f.typed_config().type_url())));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(fat, ".typed_config: must be set"));
    }
    if (factory->isTerminal() && i != filters.size() - 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(fat, ": ", factory->name(), " is terminal and must be the last filter"));
    }
    auto cb = factory->createFilterFactory(f.typed_config(), fat + ".typed_config", context);
    if (!cb.ok()) return cb.status();
    lc->factories_.push_back(std::move(*cb));
  }
  return lc;
}

ShardListener::ShardListener(ListenerConfig& config, event::Dispatcher& dispatcher, int listen_fd)
    : config_(config), dispatcher_(dispatcher),
      listener_(dispatcher, listen_fd,
                [this](int fd, const network::Address& remote) { onAccept(fd, remote); }) {}

ShardListener::~ShardListener() {
  // Shutdown: close what is left without callbacks into a half-destroyed listener.
  while (head_ != nullptr) {
    ActiveConnection* ac = head_;
    head_ = ac->next;
    ac->connection->removeConnectionCallbacks(*ac);
    ac->connection->close(network::ConnectionCloseType::NoFlush);
    delete ac;
  }
  config_.stats().downstream_cx_active.sub(count_.load());
  count_ = 0;
}

void ShardListener::onAccept(int fd, const network::Address& remote) {
  auto local = network::localAddressOf(fd);
  auto conn = std::make_unique<network::ConnectionImpl>(
      dispatcher_, fd, local.ok() ? *local : config_.address(), remote,
      nullptr /* plain TCP */, true);
  conn->setBufferLimits(config_.bufferLimit());
  auto& s = config_.stats();
  conn->setConnectionStats({&s.downstream_cx_rx_bytes_total, &s.downstream_cx_tx_bytes_total});
  s.downstream_cx_total.inc();
  s.downstream_cx_active.inc();
  auto* raw = new ActiveConnection(*this, std::move(conn));
  raw->next = head_;
  if (head_) head_->prev = raw;
  head_ = raw;
  count_++;
  raw->connection->addConnectionCallbacks(*raw);
  for (const auto& factory : config_.filterFactories()) factory(*raw->connection);
  if (!raw->connection->initializeReadFilters()) {
    s.no_filter_chain_match.inc();
    raw->connection->close(network::ConnectionCloseType::NoFlush);
  }
}

void ShardListener::drain() {
  listener_.enable(false);
  // drain() may close a connection, which unlinks it: step first.
  for (ActiveConnection* ac = head_; ac != nullptr;) {
    ActiveConnection* next = ac->next;
    ac->connection->startDrain();
    ac = next;
  }
}

void ShardListener::ActiveConnection::onEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::RemoteClose ||
      event == network::ConnectionEvent::LocalClose) {
    listener.removeConnection(*this);
  }
}

void ShardListener::removeConnection(ActiveConnection& ac) {
  config_.stats().downstream_cx_active.dec();
  config_.stats().downstream_cx_destroy.inc();
  if (ac.prev) ac.prev->next = ac.next;
  if (ac.next) ac.next->prev = ac.prev;
  if (head_ == &ac) head_ = ac.next;
  count_--;
  // The connection is still on the stack of whoever closed it: delete it later.
  dispatcher_.deferredDelete(std::unique_ptr<event::DeferredDeletable>(&ac));
}

} // namespace server
} // namespace tern
