// Factory for tern.filters.network.rpc_proxy: the only code that reads the RpcProxy proto.
#include "absl/strings/str_cat.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "extensions/filters/network/rpc_proxy/rpc_proxy.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/common/config/registry.h"
#include "source/server/filter_config.h"
#include "tern/filters/network/rpc_proxy/v1/rpc_proxy.pb.h"

namespace tern {
namespace rpc_proxy {
namespace {

using ProtoConfig = tern::filters::network::rpc_proxy::v1::RpcProxy;
using google::protobuf::util::TimeUtil;

const char* codecName(ProtoConfig::Protocol p) {
  switch (p) {
  case ProtoConfig::BOLT:
  case ProtoConfig::BOLTV2: return "bolt";
  case ProtoConfig::DUBBO: return "dubbo";
  default: return "";
  }
}

class RpcProxyFactory : public server::NetworkFilterFactory {
public:
  std::string name() const override { return "tern.filters.network.rpc_proxy"; }
  std::string configType() const override { return ProtoConfig::descriptor()->full_name(); }
  bool isTerminal() const override { return true; }

  absl::StatusOr<server::NetworkFilterFactoryCb>
  createFilterFactory(const google::protobuf::Any& any, const std::string& at,
                      server::FactoryContext& ctx) override {
    ProtoConfig proto;
    auto st = config::unpackTo(any, proto, at);
    if (!st.ok()) return st;
    auto bad = [&](absl::string_view field, absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(at, field, ": ", why));
    };
    if (proto.stat_prefix().empty()) return bad(".stat_prefix", "must be set");
    auto cfg = std::make_shared<RpcProxyConfig>();
    cfg->stat_prefix = proto.stat_prefix();
    cfg->cm = &ctx.clusterManager();

    rpc::CodecLimits limits;
    if (proto.has_max_frame_bytes()) {
      if (proto.max_frame_bytes().value() < 64) return bad(".max_frame_bytes", "must be at least 64");
      limits.max_frame_bytes = proto.max_frame_bytes().value();
    }
    auto makeCodec = [&](const char* name) -> absl::StatusOr<const rpc::Codec*> {
      auto* factory = config::Registry<rpc::CodecFactory>::getByName(name);
      if (factory == nullptr) {
        return bad(".downstream_protocol", absl::StrCat("no ", name, " codec in this build"));
      }
      cfg->owned_codecs.push_back(factory->create(limits));
      return cfg->owned_codecs.back().get();
    };
    const auto down = proto.downstream_protocol();
    if (proto.upstream_protocol() != ProtoConfig::AUTO && proto.upstream_protocol() != down) {
      return bad(".upstream_protocol",
                 absl::StrCat(ProtoConfig::Protocol_Name(proto.upstream_protocol()),
                              " differs from downstream_protocol ", ProtoConfig::Protocol_Name(down),
                              ": Tern forwards RPC frames and does not convert between protocols"));
    }
    if (down == ProtoConfig::AUTO) {
      for (const char* name : {"bolt", "dubbo"}) {
        if (config::Registry<rpc::CodecFactory>::getByName(name) == nullptr) continue;
        auto c = makeCodec(name);
        if (!c.ok()) return c.status();
        cfg->auto_codecs.push_back(*c);
      }
      if (cfg->auto_codecs.empty()) return bad(".downstream_protocol", "no RPC codec in this build");
    } else if (*codecName(down) != '\0') {
      auto c = makeCodec(codecName(down));
      if (!c.ok()) return c.status();
      cfg->codec = *c;
      cfg->bolt_v2_only = down == ProtoConfig::BOLTV2;
    } else {
      return bad(".downstream_protocol", "unknown protocol");
    }
    if (proto.has_http()) {
      if (down != ProtoConfig::AUTO) return bad(".http", "only with downstream_protocol AUTO");
      auto* hcm = config::Registry<server::NetworkFilterFactory>::getByName(
          "envoy.filters.network.http_connection_manager");
      if (hcm == nullptr) return bad(".http", "no HTTP connection manager in this build");
      google::protobuf::Any packed;
      packed.PackFrom(proto.http());
      auto cb = hcm->createFilterFactory(packed, at + ".http", ctx);
      if (!cb.ok()) return cb.status();
      cfg->http = std::move(*cb);
    }

    if (!proto.has_route_config()) return bad(".route_config", "must be set");
    auto routes = rpc::RouteConfig::create(proto.route_config(), at + ".route_config", ctx.clusterManager());
    if (!routes.ok()) return routes.status();
    cfg->routes = *routes;

    for (int i = 0; i < proto.rpc_filters_size(); i++) {
      const auto& f = proto.rpc_filters(i);
      const std::string fat = absl::StrCat(at, ".rpc_filters[", i, "]");
      server::HttpFilterFactory* factory =
          f.has_typed_config()
              ? config::Registry<server::HttpFilterFactory>::getByType(config::typeNameOf(f.typed_config().type_url()))
              : config::Registry<server::HttpFilterFactory>::getByName(f.name());
      if (factory == nullptr) {
        return absl::InvalidArgumentError(
            f.has_typed_config()
                ? absl::StrCat(fat, ".typed_config: no stream filter in this build takes ",
                               config::typeNameOf(f.typed_config().type_url()))
                : absl::StrCat(fat, ".name: no stream filter named '", f.name(), "' in this build"));
      }
      if (factory->isTerminal()) {
        return absl::InvalidArgumentError(absl::StrCat(
            fat, ": ", factory->name(), " is a terminal HTTP filter; the RPC proxy routes by its own route_config"));
      }
      auto cb = factory->createFilterFactory(f.typed_config(), fat + ".typed_config", ctx);
      if (!cb.ok()) return cb.status();
      cfg->filter_factories.push_back(std::move(*cb));
    }

    switch (proto.pool_mode()) {
    case ProtoConfig::MULTIPLEX: cfg->pool_mode = RpcProxyConfig::PoolMode::Multiplex; break;
    case ProtoConfig::PING_PONG: cfg->pool_mode = RpcProxyConfig::PoolMode::PingPong; break;
    case ProtoConfig::BOUND: cfg->pool_mode = RpcProxyConfig::PoolMode::Bound; break;
    default: return bad(".pool_mode", "unknown mode");
    }
    if (proto.has_connections_per_host()) {
      if (proto.connections_per_host().value() == 0) return bad(".connections_per_host", "must be at least 1");
      cfg->connections_per_host = proto.connections_per_host().value();
    }
    if (proto.has_idle_timeout()) {
      int64_t ms = TimeUtil::DurationToMilliseconds(proto.idle_timeout());
      if (ms < 0) return bad(".idle_timeout", "must not be negative");
      cfg->idle_timeout = std::chrono::milliseconds(ms);
    }
    stats_.push_back(std::make_unique<RpcProxyStats>(
        RpcProxyStats::create(ctx.stats(), absl::StrCat("rpc.", proto.stat_prefix(), "."))));
    cfg->stats = stats_.back().get();
    RpcProxyConfigSharedPtr shared = cfg;
    return server::NetworkFilterFactoryCb([shared](network::Connection& conn) {
      conn.addReadFilter(std::make_shared<RpcProxyFilter>(shared));
    });
  }

private:
  std::vector<std::unique_ptr<RpcProxyStats>> stats_;
};

config::RegisterFactory<RpcProxyFactory, server::NetworkFilterFactory> registered;

} // namespace
} // namespace rpc_proxy
} // namespace tern
