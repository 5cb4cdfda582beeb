#pragma once

// The RPC proxy's route table (tern.filters.network.rpc_proxy.v1.RouteConfiguration):
// an ordered list of routes, each matching a request's service, method, version, group
// and headers, and naming the cluster(s) to send it to.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "source/common/router/config.h"
#include "source/common/rpc/codec.h"
#include "tern/filters/network/rpc_proxy/v1/rpc_proxy.pb.h"

namespace tern {
namespace upstream {
class Cluster;
class ClusterManager;
} // namespace upstream
namespace rpc {

struct RetryPolicy {
  bool on_connect_failure{false};
  bool on_reset{false};
  bool on_overflow{false};
  uint32_t num_retries{1};
  bool enabled() const { return on_connect_failure || on_reset || on_overflow; }
};

class Route {
public:
  bool matches(const Frame& request, const RouteKeys& keys) const;
  // The cluster for one request (weighted clusters: drawn with `random`).
  upstream::Cluster& pickCluster(uint64_t random) const;

  std::string name;
  std::optional<router::StringMatcher> service, method, version, group;
  std::vector<router::HeaderMatcher> headers;
  struct Target {
    upstream::Cluster* cluster;
    uint32_t weight;
  };
  std::vector<Target> clusters;
  uint64_t total_weight{0};
  // Unset: the request's own timeout, else kDefaultTimeout. Zero: none.
  std::optional<std::chrono::milliseconds> timeout;
  RetryPolicy retry_policy;
};

class RouteConfig {
public:
  static constexpr std::chrono::milliseconds kDefaultTimeout{15000};

  // Builds and checks the table; clusters must exist in `cm`. Errors name the field
  // below `at`.
  static absl::StatusOr<std::shared_ptr<const RouteConfig>>
  create(const tern::filters::network::rpc_proxy::v1::RouteConfiguration& proto,
         const std::string& at, upstream::ClusterManager& cm);

  // The first route matching, or nullptr.
  const Route* route(const Frame& request, const RouteKeys& keys) const;
  // Whether some route matches on what Dubbo reads only with loadAllHeaders (its
  // attachments: the group and any header beyond the eager ones).
  bool needsAllHeaders() const { return needs_all_headers_; }

  std::string name;

private:
  std::vector<Route> routes_;
  bool needs_all_headers_{false};
};

} // namespace rpc
} // namespace tern
