// Factory for envoy.filters.http.router, the terminal HTTP filter.
#include "absl/strings/str_cat.h"
#include "envoy/extensions/filters/http/router/v3/router.pb.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/common/config/registry.h"
#include "source/common/router/router.h"
#include "source/server/filter_config.h"

namespace tern {
namespace extensions {
namespace router_filter {

using ProtoConfig = envoy::extensions::filters::http::router::v3::Router;

class RouterFactory : public server::HttpFilterFactory {
public:
  std::string name() const override { return "envoy.filters.http.router"; }
  std::string configType() const override { return ProtoConfig::descriptor()->full_name(); }
  bool isTerminal() const override { return true; }
  absl::StatusOr<http::FilterFactoryCb> createFilterFactory(const google::protobuf::Any& any,
                                                            const std::string& at,
                                                            server::FactoryContext& ctx) override {
    ProtoConfig proto;
    if (!any.type_url().empty()) {
      auto st = config::unpackTo(any, proto, at);
      if (!st.ok()) return st;
    }
    auto cfg = std::make_shared<router::RouterConfig>();
    cfg->cm = &ctx.clusterManager();
    stats_.push_back(std::make_unique<router::RouterStats>(
        router::RouterStats::create(ctx.stats(), "http.router.")));
    cfg->stats = stats_.back().get();
    router::RouterConfigSharedPtr shared = cfg;
    return http::FilterFactoryCb([shared](http::FilterChainFactoryCallbacks& cb) {
      cb.addStreamDecoderFilter(std::allocate_shared<router::RouterFilter>(
          common::RecyclingAllocator<router::RouterFilter>(), shared));
    });
  }

private:
  std::vector<std::unique_ptr<router::RouterStats>> stats_;
};

static config::RegisterFactory<RouterFactory, server::HttpFilterFactory> registered;

} // namespace router_filter
} // namespace extensions
} // namespace tern
