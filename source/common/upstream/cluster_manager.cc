#include "source/common/upstream/cluster_manager.h"

#include <netdb.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "extensions/codecs/http2/settings_proto.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/common/logger.h"
#include "source/common/network/socket.h"

namespace tern {
namespace upstream {

using envoy::config::cluster::v3::Cluster_DiscoveryType;
using ClusterProto = envoy::config::cluster::v3::Cluster;
using google::protobuf::util::TimeUtil;

namespace {

std::chrono::milliseconds toMs(const google::protobuf::Duration& d, std::chrono::milliseconds def,
                               bool has) {
  if (!has) return def;
  return std::chrono::milliseconds(google::protobuf::util::TimeUtil::DurationToMilliseconds(d));
}

// getaddrinfo for one name, honouring the cluster's dns_lookup_family.
absl::StatusOr<std::vector<network::Address>> resolve(const std::string& name, uint32_t port,
                                                      ClusterProto::DnsLookupFamily family) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_family = AF_UNSPEC;
  if (family == ClusterProto::V4_ONLY) hints.ai_family = AF_INET;
  if (family == ClusterProto::V6_ONLY) hints.ai_family = AF_INET6;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0) return absl::UnavailableError(absl::StrCat("cannot resolve ", name, ": ", gai_strerror(rc)));
  std::vector<network::Address> v4, v6;
  for (addrinfo* p = res; p; p = p->ai_next) {
    network::Address a = network::Address::fromSockaddr(p->ai_addr, p->ai_addrlen);
    auto withPort = network::Address::fromIpPort(a.ip(), port);
    if (!withPort.ok()) continue;
    bool dup = false;
    auto& bucket = a.family() == AF_INET ? v4 : v6;
    for (const auto& x : bucket) dup |= x.toString() == withPort->toString();
    if (!dup) bucket.push_back(*withPort);
  }
  freeaddrinfo(res);
  std::vector<network::Address> out;
  switch (family) {
  case ClusterProto::V4_PREFERRED:
    out = v4.empty() ? v6 : v4;
    break;
  case ClusterProto::ALL:
    out = v4;
    out.insert(out.end(), v6.begin(), v6.end());
    break;
  case ClusterProto::AUTO:
    out = v6.empty() ? v4 : v6;
    break;
  default:
    out = hints.ai_family == AF_INET ? v4 : v6;
  }
  if (out.empty()) return absl::UnavailableError(absl::StrCat("no address for ", name));
  return out;
}

} // namespace

absl::StatusOr<PrioritySetConstSharedPtr> buildHosts(const ClusterProto& c, bool resolve_names) {
  auto set = std::make_shared<PrioritySet>();
  const auto& la = c.load_assignment();
  for (int i = 0; i < la.endpoints_size(); i++) {
    const auto& locality = la.endpoints(i);
    uint32_t prio = locality.priority();
    if (prio > 127) {
      return absl::InvalidArgumentError(
          absl::StrCat("load_assignment.endpoints[", i, "].priority: ", prio, " is too large"));
    }
    if (set->levels.size() <= prio) set->levels.resize(prio + 1);
    for (int j = 0; j < locality.lb_endpoints_size(); j++) {
      const auto& lbe = locality.lb_endpoints(j);
      std::string path = absl::StrCat("load_assignment.endpoints[", i, "].lb_endpoints[", j,
                                      "].endpoint.address.socket_address");
      if (!lbe.endpoint().address().has_socket_address()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": missing"));
      }
      const auto& sa = lbe.endpoint().address().socket_address();
      uint32_t weight = lbe.has_load_balancing_weight() ? lbe.load_balancing_weight().value() : 1;
      if (lbe.has_load_balancing_weight() && weight == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("load_assignment.endpoints[", i, "].lb_endpoints[", j,
                         "].load_balancing_weight: must be at least 1"));
      }
      if (sa.port_value() == 0 || sa.port_value() > 65535) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ".port_value: ", sa.port_value(), " is not a valid port"));
      }
      if (c.type() == ClusterProto::STATIC) {
        auto addr = network::Address::fromIpPort(sa.address(), sa.port_value());
        if (!addr.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              path, ".address: ", addr.status().message(), " (a STATIC cluster needs IPs)"));
        }
        set->levels[prio].push_back(std::make_shared<Host>(*addr, sa.address(), weight, prio));
      } else if (resolve_names) {
        auto addrs = resolve(sa.address(), sa.port_value(), c.dns_lookup_family());
        if (!addrs.ok()) return addrs.status();
        for (const auto& a : *addrs) {
          set->levels[prio].push_back(std::make_shared<Host>(a, sa.address(), weight, prio));
        }
      }
    }
  }
  return PrioritySetConstSharedPtr(std::move(set));
}

Cluster::Cluster(const ClusterProto& config, stats::Store& store)
    : config_(config), name_(config.name()),
      connect_timeout_(toMs(config.connect_timeout(), std::chrono::milliseconds(5000),
                            config.has_connect_timeout())),
      lb_policy_(config.lb_policy()),
      buffer_limit_(config.has_per_connection_buffer_limit_bytes()
                        ? config.per_connection_buffer_limit_bytes().value()
                        : 1024 * 1024),
      stats_(ClusterStats::create(store, absl::StrCat("cluster.", config.name(), "."))),
      rq_time_(store.histogram(absl::StrCat("cluster.", config.name(), ".upstream_rq_time"))) {
  hosts_ = std::make_shared<PrioritySet>();
  for (const auto& t : config.circuit_breakers().thresholds()) {
    if (t.priority() != envoy::config::core::v3::DEFAULT) continue;
    if (t.has_max_connections()) max_connections_ = t.max_connections().value();
    if (t.has_max_pending_requests()) max_pending_ = t.max_pending_requests().value();
    if (t.has_max_requests()) max_requests_ = t.max_requests().value();
    if (t.has_max_retries()) max_retries_ = t.max_retries().value();
  }
  auto it = config.typed_extension_protocol_options().find(
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
  if (it != config.typed_extension_protocol_options().end()) {
    envoy::extensions::upstreams::http::v3::HttpProtocolOptions opts;
    if (it->second.UnpackTo(&opts)) {
      if (opts.common_http_protocol_options().has_idle_timeout()) {
        http_idle_timeout_ = std::chrono::milliseconds(
            TimeUtil::DurationToMilliseconds(opts.common_http_protocol_options().idle_timeout()));
      }
    }
  }
  parseHttpProtocol(config, http_protocol_, http2_options_);
}

void Cluster::parseHttpProtocol(const envoy::config::cluster::v3::Cluster& config, HttpProtocol& protocol,
                                envoy::config::core::v3::Http2ProtocolOptions& http2) {
  protocol = HttpProtocol::Http1;
  auto it = config.typed_extension_protocol_options().find(
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
  envoy::extensions::upstreams::http::v3::HttpProtocolOptions opts;
  if (it != config.typed_extension_protocol_options().end() && it->second.UnpackTo(&opts)) {
    if (opts.has_explicit_http_config() && opts.explicit_http_config().has_http2_protocol_options()) {
      protocol = HttpProtocol::Http2;
      http2 = opts.explicit_http_config().http2_protocol_options();
    } else if (opts.has_use_downstream_protocol_config()) {
      protocol = HttpProtocol::UseDownstream;
      http2 = opts.use_downstream_protocol_config().http2_protocol_options();
    }
  } else if (config.has_http2_protocol_options()) {
    // The deprecated Cluster field, still common in configs.
    protocol = HttpProtocol::Http2;
    http2 = config.http2_protocol_options();
  }
}

bool Cluster::isStrictDns() const { return config_.type() == ClusterProto::STRICT_DNS; }

PrioritySetConstSharedPtr Cluster::hosts() const {
  absl::MutexLock lock(&mu_);
  return hosts_;
}

uint64_t Cluster::setHosts(PrioritySetConstSharedPtr hosts) {
  int64_t total = hosts->size();
  absl::MutexLock lock(&mu_);
  hosts_ = std::move(hosts);
  stats_.membership_total.set(total);
  stats_.membership_healthy.set(total);
  return version_.fetch_add(1, std::memory_order_acq_rel) + 1;
}


ShardClusterManager::ShardClusterManager(ClusterManager& cm, event::Dispatcher& dispatcher,
                                         uint64_t seed)
    : cm_(cm), dispatcher_(dispatcher), seed_(seed) {}

HostSharedPtr ShardClusterManager::chooseHost(Cluster& cluster, absl::Span<Host* const> exclude) {
  Lbs& lbs = lbs_[&cluster];
  uint64_t v = cluster.version();
  if (lbs.version != v) {
    // Membership changed (or first use on this shard): rebuild from the new snapshot.
    lbs.hosts = cluster.hosts();
    lbs.version = v;
    lbs.levels.clear();
    for (const auto& level : lbs.hosts->levels) {
      lbs.levels.push_back(createLoadBalancer(cluster.lbPolicy(), level, seed_));
    }
  }
  for (size_t p = 0; p < lbs.levels.size(); p++) {
    size_t n = lbs.hosts->levels[p].size();
    // Each host of the level gets one chance before we fall through to the next level.
    for (size_t tries = 0; tries < n; tries++) {
      HostSharedPtr h = lbs.levels[p]->choose();
      if (!h) break;
      bool excluded = false;
      for (Host* x : exclude) excluded |= x == h.get();
      if (!excluded) return h;
    }
    // n draws need not visit every host (weighted or random balancers repeat hosts), so
    // before leaving the level look for any healthy host that is not excluded.
    if (!exclude.empty()) {
      for (const auto& h : lbs.hosts->levels[p]) {
        if (!h->healthy.load(std::memory_order_relaxed)) continue;
        bool excluded = false;
        for (Host* x : exclude) excluded |= x == h.get();
        if (!excluded) return h;
      }
    }
  }
  cluster.stats().upstream_cx_none_healthy.inc();
  return nullptr;
}

std::unique_ptr<network::ConnectionImpl>
ShardClusterManager::createConnection(Cluster& cluster, const HostSharedPtr& host) {
  auto fd = network::createClientSocket(host->address);
  if (!fd.ok()) return nullptr;
  auto conn = std::make_unique<network::ConnectionImpl>(
      dispatcher_, *fd, network::Address(), host->address,
      nullptr /* plain TCP */, false);
  conn->setBufferLimits(cluster.bufferLimit());
  auto& s = cluster.stats();
  conn->setConnectionStats({&s.upstream_cx_rx_bytes_total, &s.upstream_cx_tx_bytes_total});
  s.upstream_cx_total.inc();
  return conn;
}

ClusterManager::~ClusterManager() { stop(); }

absl::Status ClusterManager::addClusters(
    const google::protobuf::RepeatedPtrField<ClusterProto>& clusters, absl::string_view path) {
  for (int i = 0; i < clusters.size(); i++) {
    const auto& c = clusters[i];
    std::string at = absl::StrCat(path, "[", i, "]");
    if (c.name().empty()) return absl::InvalidArgumentError(absl::StrCat(at, ".name: must be set"));
    if (clusters_.count(c.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, ".name: duplicate cluster name '", c.name(), "'"));
    }
    if (c.type() != ClusterProto::STATIC && c.type() != ClusterProto::STRICT_DNS) {
      return absl::InvalidArgumentError(absl::StrCat(
          at, ".type: ", ClusterProto::DiscoveryType_Name(c.type()),
          " is not supported (STATIC and STRICT_DNS are)"));
    }
    switch (c.lb_policy()) {
    case ClusterProto::ROUND_ROBIN:
    case ClusterProto::RANDOM:
    case ClusterProto::LEAST_REQUEST:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          at, ".lb_policy: ", ClusterProto::LbPolicy_Name(c.lb_policy()),
          " is not supported (ROUND_ROBIN, RANDOM and LEAST_REQUEST are)"));
    }
    auto proto_opts = c.typed_extension_protocol_options().find(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    if (proto_opts != c.typed_extension_protocol_options().end()) {
      envoy::extensions::upstreams::http::v3::HttpProtocolOptions opts;
      std::string oat = absl::StrCat(
          at, ".typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']");
      if (!proto_opts->second.UnpackTo(&opts)) {
        return absl::InvalidArgumentError(absl::StrCat(oat, ": not an HttpProtocolOptions"));
      }
      if (opts.has_auto_config()) {
        return absl::InvalidArgumentError(
            absl::StrCat(oat, ".auto_config: not supported (ALPN needs TLS upstreams); use "
                              "explicit_http_config or use_downstream_protocol_config"));
      }
      if (opts.has_explicit_http_config() && opts.explicit_http_config().has_http3_protocol_options()) {
        return absl::InvalidArgumentError(
            absl::StrCat(oat, ".explicit_http_config.http3_protocol_options: HTTP/3 is not supported"));
      }
    }
    {
      // The HTTP/2 options, wherever they came from, checked now rather than at first use.
      Cluster::HttpProtocol protocol;
      envoy::config::core::v3::Http2ProtocolOptions h2_options;
      Cluster::parseHttpProtocol(c, protocol, h2_options);
      if (protocol != Cluster::HttpProtocol::Http1) {
        auto h2 = http2::settingsFromProto(h2_options, at + ".http2_protocol_options");
        if (!h2.ok()) return h2.status();
      }
    }
    // Validate the endpoints without resolving; then resolve once now.
    auto shape = buildHosts(c, false);
    if (!shape.ok()) return absl::InvalidArgumentError(absl::StrCat(at, ".", shape.status().message()));
    auto cluster = std::make_unique<Cluster>(c, store_);
    cluster->stats().update_attempt.inc();
    auto hosts = buildHosts(c, true);
    if (hosts.ok()) {
      cluster->setHosts(*hosts);
      cluster->stats().update_success.inc();
    } else {
      // A name that does not resolve yet is not a config error: retry on refresh.
      TERN_LOG(Warn, "cluster %s: %s", c.name(), hosts.status().message());
      cluster->stats().update_failure.inc();
    }
    clusters_.emplace(c.name(), std::move(cluster));
  }
  return absl::OkStatus();
}

Cluster* ClusterManager::get(absl::string_view name) {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second.get();
}

std::vector<Cluster*> ClusterManager::all() {
  std::vector<Cluster*> out;
  for (auto& [n, c] : clusters_) out.push_back(c.get());
  return out;
}

void ClusterManager::initShards(const std::vector<event::Dispatcher*>& dispatchers) {
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (auto* d : dispatchers) {
    shards_[d] = std::make_unique<ShardClusterManager>(*this, *d, seed);
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
  }
}

ShardClusterManager& ClusterManager::shard(event::Dispatcher& dispatcher) {
  return *shards_.at(&dispatcher);
}

void ClusterManager::startDnsRefresh() {
  bool any = false;
  for (auto& [n, c] : clusters_) any |= c->isStrictDns();
  if (any) dns_thread_ = std::thread([this] { dnsLoop(); });
}

void ClusterManager::stop() {
  {
    std::lock_guard<std::mutex> lock(dns_mu_);
    stopping_ = true;
  }
  dns_cv_.notify_all();
  if (dns_thread_.joinable()) dns_thread_.join();
}

void ClusterManager::dnsLoop() {
  // Each cluster refreshes on its own dns_refresh_rate (default 5 s).
  std::map<Cluster*, std::chrono::steady_clock::time_point> due;
  for (auto& [n, c] : clusters_) {
    if (!c->isStrictDns()) continue;
    auto rate = toMs(c->config().dns_refresh_rate(), std::chrono::milliseconds(5000),
                     c->config().has_dns_refresh_rate());
    due[c.get()] = std::chrono::steady_clock::now() + rate;
  }
  std::unique_lock<std::mutex> lock(dns_mu_);
  while (!stopping_) {
    auto next = std::chrono::steady_clock::time_point::max();
    for (auto& [c, t] : due) next = std::min(next, t);
    dns_cv_.wait_until(lock, next, [this] { return stopping_; });
    if (stopping_) break;
    auto now = std::chrono::steady_clock::now();
    for (auto& [c, t] : due) {
      if (t > now) continue;
      lock.unlock();
      c->stats().update_attempt.inc();
      auto hosts = buildHosts(c->config(), true);
      if (hosts.ok()) {
        // Only swap when membership really changed, so shards keep their LB state.
        auto cur = c->hosts();
        std::string a, b;
        for (const auto& l : cur->levels) for (const auto& h : l) absl::StrAppend(&a, h->address.toString(), "/", h->weight, ",");
        for (const auto& l : (*hosts)->levels) for (const auto& h : l) absl::StrAppend(&b, h->address.toString(), "/", h->weight, ",");
        if (a != b) c->setHosts(*hosts);
        c->stats().update_success.inc();
      } else {
        c->stats().update_failure.inc();
        TERN_LOG(Debug, "cluster %s: %s", c->name(), hosts.status().message());
      }
      lock.lock();
      auto rate = toMs(c->config().dns_refresh_rate(), std::chrono::milliseconds(5000),
                       c->config().has_dns_refresh_rate());
      t = std::chrono::steady_clock::now() + rate;
    }
  }
}

} // namespace upstream
} // namespace tern
