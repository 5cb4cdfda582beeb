#include "source/common/rpc/route.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace rpc {

namespace pb = tern::filters::network::rpc_proxy::v1;

bool Route::matches(const Frame& request, const RouteKeys& keys) const {
  if (service && !service->matches(keys.service)) return false;
  if (method && !method->matches(keys.method)) return false;
  if (version && !version->matches(keys.version)) return false;
  if (group && !group->matches(keys.group)) return false;
  for (const auto& h : headers) {
    if (!h.matches(request.headers)) return false;
  }
  return true;
}

upstream::Cluster& Route::pickCluster(uint64_t random) const {
  if (clusters.size() == 1) return *clusters[0].cluster;
  uint64_t r = random % total_weight;
  for (const auto& t : clusters) {
    if (r < t.weight) return *t.cluster;
    r -= t.weight;
  }
  return *clusters.back().cluster;
}

const Route* RouteConfig::route(const Frame& request, const RouteKeys& keys) const {
  for (const auto& r : routes_) {
    if (r.matches(request, keys)) return &r;
  }
  return nullptr;
}

absl::StatusOr<std::shared_ptr<const RouteConfig>>
RouteConfig::create(const pb::RouteConfiguration& proto, const std::string& at,
                    upstream::ClusterManager& cm) {
  auto bad = [](const std::string& field, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
  };
  auto config = std::make_shared<RouteConfig>();
  config->name = proto.name();
  if (proto.routes_size() == 0) return bad(at + ".routes", "at least one route is needed");
  for (int i = 0; i < proto.routes_size(); i++) {
    const pb::Route& rp = proto.routes(i);
    const std::string rat = absl::StrCat(at, ".routes[", i, "]");
    Route route;
    route.name = rp.name();
    const pb::RouteMatch& m = rp.match();
    struct Key {
      bool has;
      const envoy::type::matcher::v3::StringMatcher& proto;
      std::optional<router::StringMatcher>& out;
      const char* field;
    };
    for (Key k : {Key{m.has_service(), m.service(), route.service, "service"},
                  Key{m.has_method(), m.method(), route.method, "method"},
                  Key{m.has_version(), m.version(), route.version, "version"},
                  Key{m.has_group(), m.group(), route.group, "group"}}) {
      if (!k.has) continue;
      auto sm = router::StringMatcher::create(k.proto, absl::StrCat(rat, ".match.", k.field));
      if (!sm.ok()) return sm.status();
      k.out = *sm;
    }
    if (route.group || m.headers_size() > 0) config->needs_all_headers_ = true;
    for (int k = 0; k < m.headers_size(); k++) {
      const std::string hat = absl::StrCat(rat, ".match.headers[", k, "]");
      if (m.headers(k).name().empty()) return bad(hat + ".name", "must be set");
      auto hm = router::HeaderMatcher::create(m.headers(k), hat, /*http_name=*/false);
      if (!hm.ok()) return hm.status();
      route.headers.push_back(std::move(*hm));
    }

    if (!rp.has_route()) return bad(rat + ".route", "must be set");
    const pb::RouteAction& a = rp.route();
    auto lookup = [&](const std::string& name, const std::string& field) -> upstream::Cluster* {
      return name.empty() ? nullptr : cm.get(name);
    };
    switch (a.cluster_specifier_case()) {
    case pb::RouteAction::kCluster: {
      upstream::Cluster* c = lookup(a.cluster(), rat + ".route.cluster");
      if (c == nullptr) {
        return bad(rat + ".route.cluster", absl::StrCat("unknown cluster '", a.cluster(), "'"));
      }
      route.clusters.push_back({c, 1});
      route.total_weight = 1;
      break;
    }
    case pb::RouteAction::kWeightedClusters: {
      const auto& wc = a.weighted_clusters().clusters();
      if (wc.empty()) return bad(rat + ".route.weighted_clusters.clusters", "at least one is needed");
      for (int k = 0; k < wc.size(); k++) {
        const std::string cat = absl::StrCat(rat, ".route.weighted_clusters.clusters[", k, "]");
        upstream::Cluster* c = lookup(wc[k].name(), cat + ".name");
        if (c == nullptr) return bad(cat + ".name", absl::StrCat("unknown cluster '", wc[k].name(), "'"));
        uint32_t w = wc[k].has_weight() ? wc[k].weight().value() : 1;
        if (w == 0) continue; // never picked
        route.clusters.push_back({c, w});
        route.total_weight += w;
      }
      if (route.total_weight == 0) {
        return bad(rat + ".route.weighted_clusters.clusters", "all weights are 0");
      }
      break;
    }
    default:
      return bad(rat + ".route", "one of cluster or weighted_clusters must be set");
    }
    if (a.has_timeout()) {
      int64_t ms = google::protobuf::util::TimeUtil::DurationToMilliseconds(a.timeout());
      if (ms < 0) return bad(rat + ".route.timeout", "must not be negative");
      route.timeout = std::chrono::milliseconds(ms);
    }
    if (a.has_retry_policy()) {
      const pb::RetryPolicy& rp2 = a.retry_policy();
      for (absl::string_view on : absl::StrSplit(rp2.retry_on(), ',', absl::SkipWhitespace())) {
        on = absl::StripAsciiWhitespace(on);
        if (on == "connect-failure") {
          route.retry_policy.on_connect_failure = true;
        } else if (on == "reset") {
          route.retry_policy.on_reset = true;
        } else if (on == "overflow") {
          route.retry_policy.on_overflow = true;
        } else {
          return bad(rat + ".route.retry_policy.retry_on",
                     absl::StrCat("unknown condition '", on,
                                  "' (connect-failure, reset and overflow are supported)"));
        }
      }
      if (rp2.has_num_retries()) route.retry_policy.num_retries = rp2.num_retries().value();
    }
    config->routes_.push_back(std::move(route));
  }
  return std::shared_ptr<const RouteConfig>(std::move(config));
}

} // namespace rpc
} // namespace tern
