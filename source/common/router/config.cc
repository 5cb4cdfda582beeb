#include "source/common/router/config.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace router {

using google::protobuf::util::TimeUtil;
namespace rv3 = envoy::config::route::v3;

namespace {

absl::Status invalid(const std::string& at, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(at, ": ", why));
}

absl::StatusOr<std::shared_ptr<RE2>> compileRegex(const std::string& pattern, const std::string& at) {
  auto re = std::make_shared<RE2>(pattern, RE2::Quiet);
  if (!re->ok()) return invalid(at, absl::StrCat("bad regex: ", re->error()));
  return re;
}

HeaderEdits headerEdits(
    const google::protobuf::RepeatedPtrField<envoy::config::core::v3::HeaderValueOption>& add,
    const google::protobuf::RepeatedPtrField<std::string>& remove) {
  HeaderEdits e;
  for (const auto& h : add) {
    HeaderValueOption o;
    o.name = h.header().key();
    http::toLower(o.name);
    o.value = h.header().value();
    // append_action wins over the deprecated append flag (default: append).
    if (h.has_append()) o.append = h.append().value();
    if (h.append_action() == envoy::config::core::v3::HeaderValueOption::OVERWRITE_IF_EXISTS_OR_ADD) {
      o.append = false;
    }
    e.add.push_back(std::move(o));
  }
  for (const auto& r : remove) {
    std::string n = r;
    http::toLower(n);
    e.remove.push_back(n);
  }
  return e;
}

absl::StatusOr<RetryPolicy> retryPolicy(const rv3::RetryPolicy& p, const std::string& at) {
  RetryPolicy r;
  for (absl::string_view on : absl::StrSplit(p.retry_on(), ',', absl::SkipWhitespace())) {
    on = absl::StripAsciiWhitespace(on);
    if (on == "5xx") {
      r.on_5xx = true;
    } else if (on == "gateway-error") {
      r.on_gateway_error = true;
    } else if (on == "reset") {
      r.on_reset = true;
    } else if (on == "connect-failure") {
      r.on_connect_failure = true;
    } else if (on == "retriable-status-codes") {
      r.on_retriable_status_codes = true;
    } else {
      return invalid(at + ".retry_on", absl::StrCat("'", on, "' is not supported (5xx, gateway-error, reset, connect-failure, retriable-status-codes are)"));
    }
  }
  for (uint32_t c : p.retriable_status_codes()) r.retriable_status_codes.push_back(c);
  r.num_retries = p.has_num_retries() ? p.num_retries().value() : 1;
  if (p.has_per_try_timeout()) {
    r.per_try_timeout = std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(p.per_try_timeout()));
  }
  return r;
}

} // namespace

absl::StatusOr<StringMatcher> StringMatcher::create(const envoy::type::matcher::v3::StringMatcher& m,
                                                    const std::string& at) {
  StringMatcher s;
  s.ignore_case_ = m.ignore_case();
  switch (m.match_pattern_case()) {
  case envoy::type::matcher::v3::StringMatcher::kExact:
    s.kind_ = Kind::Exact;
    s.value_ = m.exact();
    break;
  case envoy::type::matcher::v3::StringMatcher::kPrefix:
    s.kind_ = Kind::Prefix;
    s.value_ = m.prefix();
    break;
  case envoy::type::matcher::v3::StringMatcher::kSuffix:
    s.kind_ = Kind::Suffix;
    s.value_ = m.suffix();
    break;
  case envoy::type::matcher::v3::StringMatcher::kContains:
    s.kind_ = Kind::Contains;
    s.value_ = m.contains();
    break;
  case envoy::type::matcher::v3::StringMatcher::kSafeRegex: {
    s.kind_ = Kind::Regex;
    auto re = compileRegex(m.safe_regex().regex(), at + ".safe_regex.regex");
    if (!re.ok()) return re.status();
    s.re_ = *re;
    break;
  }
  default:
    return invalid(at, "a match pattern (exact, prefix, suffix, contains, safe_regex) is required");
  }
  if (s.ignore_case_) absl::AsciiStrToLower(&s.value_);
  return s;
}

bool StringMatcher::matches(absl::string_view value) const {
  std::string lowered;
  if (ignore_case_ && kind_ != Kind::Regex) {
    lowered = absl::AsciiStrToLower(value);
    value = lowered;
  }
  switch (kind_) {
  case Kind::Exact: return value == value_;
  case Kind::Prefix: return absl::StartsWith(value, value_);
  case Kind::Suffix: return absl::EndsWith(value, value_);
  case Kind::Contains: return absl::StrContains(value, value_);
  case Kind::Regex: return RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *re_);
  }
  return false;
}

absl::StatusOr<HeaderMatcher> HeaderMatcher::create(const envoy::config::route::v3::HeaderMatcher& hp,
                                                   const std::string& hat, bool http_name) {
  HeaderMatcher hm;
  hm.name = hp.name();
  if (http_name) {
    http::toLower(hm.name);
    if (hm.name == "host") hm.name = ":authority";
  }
  hm.invert = hp.invert_match();
  using HM = envoy::config::route::v3::HeaderMatcher;
  envoy::type::matcher::v3::StringMatcher sm;
  switch (hp.header_match_specifier_case()) {
  case HM::kStringMatch:
    sm = hp.string_match();
    break;
  case HM::kExactMatch:
    sm.set_exact(hp.exact_match());
    break;
  case HM::kPrefixMatch:
    sm.set_prefix(hp.prefix_match());
    break;
  case HM::kSuffixMatch:
    sm.set_suffix(hp.suffix_match());
    break;
  case HM::kContainsMatch:
    sm.set_contains(hp.contains_match());
    break;
  case HM::kSafeRegexMatch:
    *sm.mutable_safe_regex() = hp.safe_regex_match();
    break;
  case HM::kPresentMatch:
    hm.kind = HeaderMatcher::Kind::Present;
    hm.present = hp.present_match();
    break;
  case HM::kRangeMatch:
    hm.kind = HeaderMatcher::Kind::Range;
    hm.range_start = hp.range_match().start();
    hm.range_end = hp.range_match().end();
    break;
  default:
    hm.kind = HeaderMatcher::Kind::Present; // no specifier: the header must be present
  }
  if (hm.kind == HeaderMatcher::Kind::Value) {
    auto s = StringMatcher::create(sm, hat);
    if (!s.ok()) return s.status();
    hm.value = *s;
  }
  return hm;
}

bool HeaderMatcher::matches(const http::HeaderMap& headers) const {
  const absl::string_view* v = headers.get(name);
  bool result;
  switch (kind) {
  case Kind::Present:
    result = (v != nullptr) == present;
    break;
  case Kind::Range: {
    int64_t n;
    result = v != nullptr && absl::SimpleAtoi(*v, &n) && n >= range_start && n < range_end;
    break;
  }
  default:
    result = v != nullptr && value.matches(*v);
  }
  return result != invert;
}

void HeaderEdits::apply(http::HeaderMap& headers) const {
  for (const auto& r : remove) headers.remove(r);
  for (const auto& a : add) {
    if (a.append) {
      headers.add(a.name, a.value);
    } else {
      headers.set(a.name, a.value);
    }
  }
}

bool queryParam(absl::string_view path, absl::string_view name, std::string* value) {
  size_t q = path.find('?');
  if (q == absl::string_view::npos) return false;
  absl::string_view query = path.substr(q + 1);
  query = query.substr(0, query.find('#'));
  for (absl::string_view kv : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    size_t eq = kv.find('=');
    absl::string_view k = kv.substr(0, eq);
    if (k == name) {
      *value = eq == absl::string_view::npos ? "" : std::string(kv.substr(eq + 1));
      return true;
    }
  }
  return false;
}

bool Route::matches(const http::HeaderMap& h) const {
  absl::string_view full = h.path();
  absl::string_view path = full.substr(0, full.find('?'));
  switch (path_kind) {
  case PathKind::Prefix:
    if (case_sensitive ? !absl::StartsWith(full, path_value)
                       : !absl::StartsWithIgnoreCase(full, path_value)) {
      return false;
    }
    break;
  case PathKind::Path:
    if (case_sensitive ? path != path_value : !absl::EqualsIgnoreCase(path, path_value)) return false;
    break;
  case PathKind::Regex:
    if (!RE2::FullMatch(re2::StringPiece(path.data(), path.size()), *path_re)) return false;
    break;
  }
  for (const auto& m : headers) {
    if (!m.matches(h)) return false;
  }
  for (const auto& q : query_parameters) {
    std::string v;
    bool present = queryParam(full, q.name, &v);
    if (!present) return false;
    if (!q.present_only && !q.value.matches(v)) return false;
  }
  return true;
}

namespace {
void applyLevels(const HeaderEdits& route, const HeaderEdits* vhost, const HeaderEdits* table,
                 bool most_specific_wins, http::HeaderMap& h) {
  if (most_specific_wins) {
    if (table) table->apply(h);
    if (vhost) vhost->apply(h);
    route.apply(h);
  } else {
    route.apply(h);
    if (vhost) vhost->apply(h);
    if (table) table->apply(h);
  }
}
} // namespace

void Route::applyRequestEdits(http::HeaderMap& h) const {
  const RouteConfig* table = vhost ? vhost->config : nullptr;
  applyLevels(request_headers, vhost ? &vhost->request_headers : nullptr,
              table ? &table->request_headers : nullptr, table && table->most_specific_wins, h);
}

void Route::applyResponseEdits(http::HeaderMap& h) const {
  const RouteConfig* table = vhost ? vhost->config : nullptr;
  applyLevels(response_headers, vhost ? &vhost->response_headers : nullptr,
              table ? &table->response_headers : nullptr, table && table->most_specific_wins, h);
}

absl::StatusOr<std::shared_ptr<const RouteConfig>>
RouteConfig::create(const rv3::RouteConfiguration& proto, const std::string& at,
                    upstream::ClusterManager* cm) {
  auto rc = std::make_shared<RouteConfig>();
  rc->name = proto.name();
  rc->most_specific_wins = proto.most_specific_header_mutations_wins();
  rc->request_headers = headerEdits(proto.request_headers_to_add(), proto.request_headers_to_remove());
  rc->response_headers = headerEdits(proto.response_headers_to_add(), proto.response_headers_to_remove());
  auto checkCluster = [&](const std::string& name, const std::string& field) -> absl::Status {
    if (cm != nullptr && cm->get(name) == nullptr) {
      return invalid(field, absl::StrCat("unknown cluster '", name, "'"));
    }
    return absl::OkStatus();
  };
  for (int i = 0; i < proto.virtual_hosts_size(); i++) {
    const auto& vp = proto.virtual_hosts(i);
    std::string vat = absl::StrCat(at, ".virtual_hosts[", i, "]");
    auto vh = std::make_unique<VirtualHost>();
    vh->name = vp.name();
    vh->config = rc.get();
    vh->request_headers = headerEdits(vp.request_headers_to_add(), vp.request_headers_to_remove());
    vh->response_headers = headerEdits(vp.response_headers_to_add(), vp.response_headers_to_remove());
    if (vp.has_retry_policy()) {
      auto rp = retryPolicy(vp.retry_policy(), vat + ".retry_policy");
      if (!rp.ok()) return rp.status();
      vh->retry_policy = *rp;
      vh->has_retry_policy = true;
    }
    if (vp.domains_size() == 0) return invalid(vat + ".domains", "at least one domain is required");
    for (int r = 0; r < vp.routes_size(); r++) {
      const auto& rp = vp.routes(r);
      std::string rat = absl::StrCat(vat, ".routes[", r, "]");
      Route route;
      route.name = rp.name();
      const auto& m = rp.match();
      route.case_sensitive = !m.has_case_sensitive() || m.case_sensitive().value();
      switch (m.path_specifier_case()) {
      case rv3::RouteMatch::kPrefix:
        route.path_kind = Route::PathKind::Prefix;
        route.path_value = m.prefix();
        break;
      case rv3::RouteMatch::kPath:
        route.path_kind = Route::PathKind::Path;
        route.path_value = m.path();
        break;
      case rv3::RouteMatch::kSafeRegex: {
        route.path_kind = Route::PathKind::Regex;
        auto re = compileRegex(m.safe_regex().regex(), rat + ".match.safe_regex.regex");
        if (!re.ok()) return re.status();
        route.path_re = *re;
        break;
      }
      default:
        return invalid(rat + ".match", "one of prefix, path or safe_regex is required");
      }
      for (int k = 0; k < m.headers_size(); k++) {
        const auto& hp = m.headers(k);
        std::string hat = absl::StrCat(rat, ".match.headers[", k, "]");
        auto hm = HeaderMatcher::create(hp, hat, /*http_name=*/true);
        if (!hm.ok()) return hm.status();
        route.headers.push_back(std::move(*hm));
      }
      for (int k = 0; k < m.query_parameters_size(); k++) {
        const auto& qp = m.query_parameters(k);
        QueryParameterMatcher qm;
        qm.name = qp.name();
        if (qp.has_string_match()) {
          auto s = StringMatcher::create(qp.string_match(),
                                         absl::StrCat(rat, ".match.query_parameters[", k, "].string_match"));
          if (!s.ok()) return s.status();
          qm.value = *s;
        } else {
          qm.present_only = true;
        }
        route.query_parameters.push_back(std::move(qm));
      }
      route.request_headers = headerEdits(rp.request_headers_to_add(), rp.request_headers_to_remove());
      route.response_headers = headerEdits(rp.response_headers_to_add(), rp.response_headers_to_remove());
      switch (rp.action_case()) {
      case rv3::Route::kRoute: {
        const auto& a = rp.route();
        route.kind = Route::Kind::Cluster;
        std::string aat = rat + ".route";
        switch (a.cluster_specifier_case()) {
        case rv3::RouteAction::kCluster: {
          route.cluster = a.cluster();
          auto st = checkCluster(route.cluster, aat + ".cluster");
          if (!st.ok()) return st;
          break;
        }
        case rv3::RouteAction::kClusterHeader:
          route.cluster_header = a.cluster_header();
          http::toLower(route.cluster_header);
          break;
        case rv3::RouteAction::kWeightedClusters: {
          const auto& wc = a.weighted_clusters().clusters();
          for (int w = 0; w < wc.size(); w++) {
            auto st = checkCluster(wc[w].name(), absl::StrCat(aat, ".weighted_clusters.clusters[", w, "].name"));
            if (!st.ok()) return st;
            uint32_t weight = wc[w].has_weight() ? wc[w].weight().value() : 0;
            if (weight == 0) continue;
            route.weighted_clusters.push_back({wc[w].name(), weight});
            route.total_weight += weight;
          }
          if (route.total_weight == 0) return invalid(aat + ".weighted_clusters", "total weight is 0");
          break;
        }
        default:
          return invalid(aat, "one of cluster, cluster_header or weighted_clusters is required");
        }
        if (a.has_regex_rewrite()) return invalid(aat + ".regex_rewrite", "not supported yet");
        if (!a.prefix_rewrite().empty()) {
          route.has_prefix_rewrite = true;
          route.prefix_rewrite = a.prefix_rewrite();
        }
        route.host_rewrite_literal = a.host_rewrite_literal();
        if (a.has_max_stream_duration() && a.max_stream_duration().has_grpc_timeout_header_max()) {
          route.grpc_timeout_header_max = std::chrono::milliseconds(
              TimeUtil::DurationToMilliseconds(a.max_stream_duration().grpc_timeout_header_max()));
        } else if (a.has_max_grpc_timeout()) {
          route.grpc_timeout_header_max =
              std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(a.max_grpc_timeout()));
        }
        if (a.has_timeout()) {
          route.timeout = std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(a.timeout()));
        }
        if (a.has_retry_policy()) {
          auto rp2 = retryPolicy(a.retry_policy(), aat + ".retry_policy");
          if (!rp2.ok()) return rp2.status();
          route.retry_policy = *rp2;
        } else if (vh->has_retry_policy) {
          route.retry_policy = vh->retry_policy;
        }
        break;
      }
      case rv3::Route::kDirectResponse: {
        route.kind = Route::Kind::DirectResponse;
        route.direct_status = rp.direct_response().status();
        if (route.direct_status < 200 || route.direct_status > 599) {
          return invalid(rat + ".direct_response.status", "must be within [200, 599]");
        }
        const auto& body = rp.direct_response().body();
        if (body.has_filename()) return invalid(rat + ".direct_response.body.filename", "not supported; use inline_string");
        route.direct_body = body.has_inline_bytes() ? body.inline_bytes() : body.inline_string();
        break;
      }
      case rv3::Route::kRedirect: {
        const auto& r2 = rp.redirect();
        route.kind = Route::Kind::Redirect;
        route.redirect_scheme = r2.https_redirect() ? "https" : r2.scheme_redirect();
        route.redirect_host = r2.host_redirect();
        route.redirect_port = r2.port_redirect();
        route.redirect_path = r2.path_redirect();
        route.redirect_prefix = r2.prefix_rewrite();
        route.redirect_strip_query = r2.strip_query();
        switch (r2.response_code()) {
        case rv3::RedirectAction::FOUND: route.redirect_code = 302; break;
        case rv3::RedirectAction::SEE_OTHER: route.redirect_code = 303; break;
        case rv3::RedirectAction::TEMPORARY_REDIRECT: route.redirect_code = 307; break;
        case rv3::RedirectAction::PERMANENT_REDIRECT: route.redirect_code = 308; break;
        default: route.redirect_code = 301;
        }
        break;
      }
      default:
        return invalid(rat, "one of route, redirect or direct_response is required");
      }
      vh->routes.push_back(std::move(route));
    }
    for (auto& r : vh->routes) r.vhost = vh.get();
    const VirtualHost* raw = vh.get();
    for (const auto& d0 : vp.domains()) {
      std::string d = absl::AsciiStrToLower(d0);
      if (d == "*") {
        if (rc->default_) return invalid(vat + ".domains", "only one virtual host may have '*'");
        rc->default_ = raw;
      } else if (absl::StartsWith(d, "*")) {
        rc->suffix_.emplace_back(d.substr(1), raw);
      } else if (absl::EndsWith(d, "*")) {
        rc->prefix_.emplace_back(d.substr(0, d.size() - 1), raw);
      } else if (!rc->exact_.emplace(d, raw).second) {
        return invalid(vat + ".domains", absl::StrCat("domain '", d, "' is already used by another virtual host"));
      }
    }
    rc->vhosts_.push_back(std::move(vh));
  }
  auto longestFirst = [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); };
  std::stable_sort(rc->suffix_.begin(), rc->suffix_.end(), longestFirst);
  std::stable_sort(rc->prefix_.begin(), rc->prefix_.end(), longestFirst);
  return std::shared_ptr<const RouteConfig>(rc);
}

const VirtualHost* RouteConfig::virtualHost(absl::string_view host0) const {
  std::string host = absl::AsciiStrToLower(host0);
  auto find = [&](absl::string_view h) -> const VirtualHost* {
    auto it = exact_.find(h);
    if (it != exact_.end()) return it->second;
    for (const auto& [s, vh] : suffix_) {
      if (h.size() > s.size() && absl::EndsWith(h, s)) return vh;
    }
    for (const auto& [p, vh] : prefix_) {
      if (h.size() > p.size() && absl::StartsWith(h, p)) return vh;
    }
    return nullptr;
  };
  const VirtualHost* vh = find(host);
  if (vh == nullptr) {
    // "example.com:8080" also matches "example.com".
    size_t colon = host.rfind(':');
    if (colon != std::string::npos && host.find(']') == std::string::npos) {
      vh = find(absl::string_view(host).substr(0, colon));
    }
  }
  return vh ? vh : default_;
}

const Route* RouteConfig::route(const http::HeaderMap& headers) const {
  const VirtualHost* vh = virtualHost(headers.host());
  if (vh == nullptr) return nullptr;
  for (const auto& r : vh->routes) {
    if (r.matches(headers)) return &r;
  }
  return nullptr;
}

} // namespace router
} // namespace tern
