#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/any.pb.h"
#include "source/common/http/filter.h"
#include "source/common/network/connection.h"
#include "source/common/stats/stats.h"

namespace tern {
namespace upstream {
class ClusterManager;
}
namespace server {

// What an extension's factory may use while it turns config into a runtime object.
class FactoryContext {
public:
  virtual ~FactoryContext() = default;
  virtual stats::Store& stats() = 0;
  virtual upstream::ClusterManager& clusterManager() = 0;
  // Whether raw sockets may be spliced (Tern settings: tcp_splice).
  virtual bool spliceAllowed() const = 0;
};

// Installs a network filter's instance on a new connection (runs on the connection's shard).
using NetworkFilterFactoryCb = std::function<void(network::Connection& connection)>;

// A network filter extension. `configType()` is its config message's full name;
// `name()` the well-known name (envoy.filters.network.tcp_proxy).
class NetworkFilterFactory {
public:
  virtual ~NetworkFilterFactory() = default;
  virtual std::string name() const = 0;
  virtual std::string configType() const = 0;
  // Validates and compiles `config`. Errors name fields relative to `field_path`.
  virtual absl::StatusOr<NetworkFilterFactoryCb>
  createFilterFactory(const google::protobuf::Any& config, const std::string& field_path,
                      FactoryContext& context) = 0;
  // Terminal filters (proxies) must be last in a chain.
  virtual bool isTerminal() const { return false; }
};

// An HTTP stream filter extension (HCM http_filters), also usable on RPC streams.
class HttpFilterFactory {
public:
  virtual ~HttpFilterFactory() = default;
  virtual std::string name() const = 0;
  virtual std::string configType() const = 0;
  virtual absl::StatusOr<http::FilterFactoryCb>
  createFilterFactory(const google::protobuf::Any& config, const std::string& field_path,
                      FactoryContext& context) = 0;
  virtual bool isTerminal() const { return false; }
};

// An access logger extension (envoy.access_loggers.*).
class AccessLogFactory {
public:
  virtual ~AccessLogFactory() = default;
  virtual std::string name() const = 0;
  virtual std::string configType() const = 0;
  virtual absl::StatusOr<http::AccessLogSharedPtr>
  createAccessLog(const google::protobuf::Any& config, const std::string& field_path,
                  FactoryContext& context) = 0;
};

} // namespace server
} // namespace tern
