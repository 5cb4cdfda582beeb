// Factory for envoy.filters.network.tcp_proxy: the only code that reads the proto.
#include "absl/strings/str_cat.h"
#include "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.pb.h"
#include "extensions/filters/network/tcp_proxy/tcp_proxy.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/common/config/registry.h"
#include "source/server/filter_config.h"

namespace tern {
namespace extensions {
namespace tcp_proxy {

using ProtoConfig = envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
using google::protobuf::util::TimeUtil;

class TcpProxyConfigFactory : public server::NetworkFilterFactory {
public:
  std::string name() const override { return "envoy.filters.network.tcp_proxy"; }
  std::string configType() const override { return ProtoConfig::descriptor()->full_name(); }
  bool isTerminal() const override { return true; }

  absl::StatusOr<server::NetworkFilterFactoryCb>
  createFilterFactory(const google::protobuf::Any& any, const std::string& at,
                      server::FactoryContext& context) override {
    ProtoConfig proto;
    auto st = config::unpackTo(any, proto, at);
    if (!st.ok()) return st;
    if (proto.stat_prefix().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(at, ".stat_prefix: must be set"));
    }
    auto cfg = std::make_shared<TcpProxyConfig>();
    cfg->cm = &context.clusterManager();
    auto lookup = [&](const std::string& name,
                      const std::string& field) -> absl::StatusOr<upstream::Cluster*> {
      upstream::Cluster* c = context.clusterManager().get(name);
      if (c == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, field, ": unknown cluster '", name, "'"));
      }
      return c;
    };
    if (proto.has_weighted_clusters()) {
      const auto& wc = proto.weighted_clusters().clusters();
      if (wc.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, ".weighted_clusters.clusters: at least one is needed"));
      }
      for (int i = 0; i < wc.size(); i++) {
        auto c = lookup(wc[i].name(), absl::StrCat(".weighted_clusters.clusters[", i, "].name"));
        if (!c.ok()) return c.status();
        if (wc[i].weight() == 0) continue; // weight 0: never picked
        cfg->clusters.push_back({*c, wc[i].weight()});
        cfg->total_weight += wc[i].weight();
      }
      if (cfg->total_weight == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, ".weighted_clusters.clusters: all weights are 0"));
      }
    } else if (!proto.cluster().empty()) {
      auto c = lookup(proto.cluster(), ".cluster");
      if (!c.ok()) return c.status();
      cfg->clusters.push_back({*c, 1});
      cfg->total_weight = 1;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(at, ": one of cluster or weighted_clusters must be set"));
    }
    if (proto.has_idle_timeout()) {
      cfg->idle_timeout =
          std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(proto.idle_timeout()));
    }
    if (proto.has_max_connect_attempts()) {
      if (proto.max_connect_attempts().value() < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, ".max_connect_attempts: must be at least 1"));
      }
      cfg->max_connect_attempts = proto.max_connect_attempts().value();
    }
    cfg->splice = context.spliceAllowed();
    // Stats live as long as the store; the config refers to them.
    stats_.push_back(std::make_unique<TcpProxyStats>(
        TcpProxyStats::create(context.stats(), absl::StrCat("tcp.", proto.stat_prefix(), "."))));
    cfg->stats = stats_.back().get();
    TcpProxyConfigSharedPtr shared = cfg;
    return server::NetworkFilterFactoryCb([shared](network::Connection& conn) {
      conn.addReadFilter(std::make_shared<TcpProxyFilter>(shared));
    });
  }

private:
  std::vector<std::unique_ptr<TcpProxyStats>> stats_;
};

static config::RegisterFactory<TcpProxyConfigFactory, server::NetworkFilterFactory> registered;

} // namespace tcp_proxy
} // namespace extensions
} // namespace tern
