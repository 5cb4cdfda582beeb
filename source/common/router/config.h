#pragma once

#include <chrono>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "envoy/config/route/v3/route.pb.h"
#include "re2/re2.h"
#include "source/common/http/header_map.h"

namespace tern {
namespace upstream {
class ClusterManager;
}
namespace router {

// Envoy's StringMatcher: exact, prefix, suffix, contains or RE2 (full match).
class StringMatcher {
public:
  static absl::StatusOr<StringMatcher> create(const envoy::type::matcher::v3::StringMatcher& m,
                                              const std::string& at);
  bool matches(absl::string_view value) const;

private:
  enum class Kind { Exact, Prefix, Suffix, Contains, Regex };
  Kind kind_{Kind::Exact};
  std::string value_;
  bool ignore_case_{false};
  std::shared_ptr<RE2> re_;
};

struct HeaderMatcher {
  // Envoy's HeaderMatcher. `http_name`: lower-case the name and map host to :authority
  // (RPC headers are matched by their name as sent).
  static absl::StatusOr<HeaderMatcher> create(const envoy::config::route::v3::HeaderMatcher& proto,
                                              const std::string& at, bool http_name);
  std::string name;
  enum class Kind { Value, Present, Range } kind{Kind::Value};
  StringMatcher value;
  bool present{true};
  int64_t range_start{0}, range_end{0};
  bool invert{false};
  bool matches(const http::HeaderMap& headers) const;
};

struct QueryParameterMatcher {
  std::string name;
  bool present_only{false};
  StringMatcher value;
};

struct HeaderValueOption {
  std::string name;
  std::string value;
  bool append{true};
};

struct HeaderEdits {
  std::vector<HeaderValueOption> add;
  std::vector<std::string> remove;
  void apply(http::HeaderMap& headers) const;
};

struct RetryPolicy {
  bool on_5xx{false};
  bool on_gateway_error{false};
  bool on_reset{false};
  bool on_connect_failure{false};
  bool on_retriable_status_codes{false};
  std::vector<uint32_t> retriable_status_codes;
  uint32_t num_retries{1};
  std::chrono::milliseconds per_try_timeout{0};
  bool enabled() const {
    return on_5xx || on_gateway_error || on_reset || on_connect_failure || on_retriable_status_codes;
  }
};

struct WeightedCluster {
  std::string name;
  uint32_t weight;
};

class Route {
public:
  enum class Kind { Cluster, DirectResponse, Redirect };

  bool matches(const http::HeaderMap& headers) const;

  std::string name;
  Kind kind{Kind::Cluster};
  // Match.
  enum class PathKind { Prefix, Path, Regex } path_kind{PathKind::Prefix};
  std::string path_value;
  std::shared_ptr<RE2> path_re;
  bool case_sensitive{true};
  std::vector<HeaderMatcher> headers;
  std::vector<QueryParameterMatcher> query_parameters;
  // Cluster action.
  std::string cluster;
  std::string cluster_header;
  std::vector<WeightedCluster> weighted_clusters;
  uint64_t total_weight{0};
  bool has_prefix_rewrite{false};
  std::string prefix_rewrite;
  std::string host_rewrite_literal;
  std::chrono::milliseconds timeout{15000};
  // gRPC: the request's grpc-timeout becomes the timeout, capped by this (0: no cap),
  // when set (max_stream_duration.grpc_timeout_header_max or max_grpc_timeout).
  std::optional<std::chrono::milliseconds> grpc_timeout_header_max;
  RetryPolicy retry_policy;
  // Direct response.
  uint32_t direct_status{200};
  std::string direct_body;
  // Redirect.
  std::string redirect_scheme;
  std::string redirect_host;
  uint32_t redirect_port{0};
  std::string redirect_path;
  std::string redirect_prefix;
  bool redirect_strip_query{false};
  uint32_t redirect_code{301};
  // Header edits: route-level (the virtual host's and config's are applied too).
  HeaderEdits request_headers;
  HeaderEdits response_headers;
  const class VirtualHost* vhost{nullptr};

  // The route's, virtual host's and table's edits, in the order Envoy applies them.
  void applyRequestEdits(http::HeaderMap& h) const;
  void applyResponseEdits(http::HeaderMap& h) const;
};

class RouteConfig;

class VirtualHost {
public:
  std::string name;
  const RouteConfig* config{nullptr}; // the table this host belongs to
  std::vector<std::string> domains;
  std::vector<Route> routes;
  HeaderEdits request_headers;
  HeaderEdits response_headers;
  RetryPolicy retry_policy;
  bool has_retry_policy{false};
};

// A route table: virtual hosts chosen by Host (exact, then the longest "*.suffix", then
// the longest "prefix*", then "*"), then the first matching route of that host.
class RouteConfig {
public:
  // Builds and checks the table; clusters named by routes must exist in `cm` (when given).
  static absl::StatusOr<std::shared_ptr<const RouteConfig>>
  create(const envoy::config::route::v3::RouteConfiguration& proto, const std::string& at,
         upstream::ClusterManager* cm);

  const Route* route(const http::HeaderMap& headers) const;
  const VirtualHost* virtualHost(absl::string_view host) const;

  std::string name;
  HeaderEdits request_headers;
  HeaderEdits response_headers;
  // Envoy's most_specific_header_mutations_wins: by default (false) the route's edits are
  // applied first and the route table's last, so the least specific level wins.
  bool most_specific_wins{false};

private:
  std::vector<std::unique_ptr<VirtualHost>> vhosts_;
  std::map<std::string, const VirtualHost*, std::less<>> exact_;
  std::vector<std::pair<std::string, const VirtualHost*>> suffix_; // longest first
  std::vector<std::pair<std::string, const VirtualHost*>> prefix_; // longest first
  const VirtualHost* default_{nullptr};
};

// Query string value of `name` in `path`, if present.
bool queryParam(absl::string_view path, absl::string_view name, std::string* value);

} // namespace router
} // namespace tern
