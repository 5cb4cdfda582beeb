// Factory for envoy.filters.network.echo.
#include "envoy/extensions/filters/network/echo/v3/echo.pb.h"
#include "extensions/filters/network/echo/echo.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/common/config/registry.h"
#include "source/server/filter_config.h"

namespace tern {
namespace extensions {
namespace echo {

using ProtoConfig = envoy::extensions::filters::network::echo::v3::Echo;

class EchoConfigFactory : public server::NetworkFilterFactory {
public:
  std::string name() const override { return "envoy.filters.network.echo"; }
  std::string configType() const override { return ProtoConfig::descriptor()->full_name(); }
  bool isTerminal() const override { return true; }
  absl::StatusOr<server::NetworkFilterFactoryCb>
  createFilterFactory(const google::protobuf::Any& any, const std::string& at,
                      server::FactoryContext&) override {
    ProtoConfig proto;
    auto st = config::unpackTo(any, proto, at);
    if (!st.ok()) return st;
    return server::NetworkFilterFactoryCb([](network::Connection& conn) {
      conn.addReadFilter(std::make_shared<EchoFilter>());
    });
  }
};

static config::RegisterFactory<EchoConfigFactory, server::NetworkFilterFactory> registered;

} // namespace echo
} // namespace extensions
} // namespace tern
