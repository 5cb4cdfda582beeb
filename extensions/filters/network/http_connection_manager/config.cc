// Factory for envoy.filters.network.http_connection_manager: the only code that reads the
// HttpConnectionManager proto.
#include "absl/strings/str_cat.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb.h"
#include "extensions/codecs/http2/settings_proto.h"
#include "google/protobuf/util/time_util.h"
#include "source/common/config/bootstrap_loader.h"
#include "source/common/config/registry.h"
#include "source/common/http/conn_manager.h"
#include "source/server/filter_config.h"

namespace tern {
namespace extensions {
namespace hcm {

using ProtoConfig = envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
using google::protobuf::util::TimeUtil;

class HcmFactory : public server::NetworkFilterFactory {
public:
  std::string name() const override { return "envoy.filters.network.http_connection_manager"; }
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
    auto cfg = std::make_shared<http::ConnectionManagerConfig>();
    switch (proto.codec_type()) {
    case ProtoConfig::AUTO:
      cfg->codec_type = http::ConnectionManagerConfig::CodecType::Auto;
      break;
    case ProtoConfig::HTTP1:
      cfg->codec_type = http::ConnectionManagerConfig::CodecType::Http1;
      break;
    case ProtoConfig::HTTP2:
      cfg->codec_type = http::ConnectionManagerConfig::CodecType::Http2;
      break;
    default:
      return bad(".codec_type", absl::StrCat(ProtoConfig::CodecType_Name(proto.codec_type()),
                                             " is not supported (AUTO, HTTP1 and HTTP2 are)"));
    }
    if (proto.has_http2_protocol_options()) {
      auto h2 = http2::settingsFromProto(proto.http2_protocol_options(), at + ".http2_protocol_options");
      if (!h2.ok()) return h2.status();
      cfg->http2_settings = *h2;
    }
    cfg->stat_prefix = proto.stat_prefix();
    stats_.push_back(std::make_unique<http::HcmStats>(
        http::HcmStats::create(ctx.stats(), absl::StrCat("http.", proto.stat_prefix(), "."))));
    cfg->stats = stats_.back().get();
    cfg->rq_time = &ctx.stats().histogram(absl::StrCat("http.", proto.stat_prefix(), ".downstream_rq_time"));
    if (proto.has_rds()) return bad(".rds", "not supported yet: use an inline route_config");
    if (!proto.has_route_config()) return bad(".route_config", "must be set");
    auto rc = router::RouteConfig::create(proto.route_config(), at + ".route_config", &ctx.clusterManager());
    if (!rc.ok()) return rc.status();
    cfg->route_config = *rc;

    if (proto.http_filters_size() == 0) {
      return bad(".http_filters", "must end with envoy.filters.http.router");
    }
    for (int i = 0; i < proto.http_filters_size(); i++) {
      const auto& f = proto.http_filters(i);
      std::string fat = absl::StrCat(at, ".http_filters[", i, "]");
      server::HttpFilterFactory* factory = nullptr;
      if (f.has_typed_config()) {
        factory = config::Registry<server::HttpFilterFactory>::getByType(
            config::typeNameOf(f.typed_config().type_url()));
        if (!factory) {
          return absl::InvalidArgumentError(absl::StrCat(
              fat, ".typed_config: no HTTP filter in this build takes ",
              config::typeNameOf(f.typed_config().type_url())));
        }
      } else {
        factory = config::Registry<server::HttpFilterFactory>::getByName(f.name());
        if (!factory) {
          return absl::InvalidArgumentError(
              absl::StrCat(fat, ".name: no HTTP filter named '", f.name(), "' in this build"));
        }
      }
      bool last = i == proto.http_filters_size() - 1;
      if (factory->isTerminal() != last) {
        return absl::InvalidArgumentError(absl::StrCat(
            fat, ": ", factory->name(),
            last ? " is not a terminal filter; the chain must end with envoy.filters.http.router"
                 : " is terminal and must be the last filter"));
      }
      auto cb = factory->createFilterFactory(f.typed_config(), fat + ".typed_config", ctx);
      if (!cb.ok()) return cb.status();
      cfg->filter_factories.push_back(std::move(*cb));
    }
    for (int i = 0; i < proto.access_log_size(); i++) {
      const auto& al = proto.access_log(i);
      std::string lat = absl::StrCat(at, ".access_log[", i, "]");
      if (al.has_filter()) return bad(absl::StrCat(".access_log[", i, "].filter"), "not supported yet");
      auto* factory = config::Registry<server::AccessLogFactory>::getByType(
          config::typeNameOf(al.typed_config().type_url()));
      if (!factory) {
        return absl::InvalidArgumentError(absl::StrCat(lat, ".typed_config: no access logger in this build takes ",
                                                       config::typeNameOf(al.typed_config().type_url())));
      }
      auto log = factory->createAccessLog(al.typed_config(), lat + ".typed_config", ctx);
      if (!log.ok()) return log.status();
      cfg->access_logs.push_back(*log);
    }
    const auto& common = proto.common_http_protocol_options();
    if (common.has_idle_timeout()) {
      cfg->idle_timeout = std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(common.idle_timeout()));
    }
    if (common.has_max_headers_count()) {
      cfg->limits.max_headers_count = common.max_headers_count().value();
      cfg->http2_settings.max_headers_count = common.max_headers_count().value();
    }
    if (proto.has_max_request_headers_kb()) {
      uint32_t kb = proto.max_request_headers_kb().value();
      if (kb == 0 || kb > 8192) return bad(".max_request_headers_kb", "must be within [1, 8192]");
      cfg->limits.max_headers_kb = kb;
      cfg->http2_settings.max_header_list_size_kb = kb;
    }
    if (proto.has_stream_idle_timeout()) {
      cfg->stream_idle_timeout =
          std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(proto.stream_idle_timeout()));
    }
    if (proto.has_request_timeout()) {
      cfg->request_timeout = std::chrono::milliseconds(TimeUtil::DurationToMilliseconds(proto.request_timeout()));
    }
    cfg->use_remote_address = proto.has_use_remote_address() && proto.use_remote_address().value();
    cfg->xff_num_trusted_hops = proto.xff_num_trusted_hops();
    cfg->generate_request_id = !proto.has_generate_request_id() || proto.generate_request_id().value();
    cfg->preserve_external_request_id = proto.preserve_external_request_id();
    cfg->always_set_request_id_in_response = proto.always_set_request_id_in_response();
    cfg->via = proto.via();
    cfg->default_host_for_http_10 = proto.http_protocol_options().default_host_for_http_10();
    if (!proto.server_name().empty()) cfg->server_name = proto.server_name();
    switch (proto.server_header_transformation()) {
    case ProtoConfig::APPEND_IF_ABSENT:
      cfg->server_header = http::ConnectionManagerConfig::ServerHeader::AppendIfAbsent;
      break;
    case ProtoConfig::PASS_THROUGH:
      cfg->server_header = http::ConnectionManagerConfig::ServerHeader::PassThrough;
      break;
    default:
      break;
    }
    http::ConnectionManagerConfigSharedPtr shared = cfg;
    return server::NetworkFilterFactoryCb([shared](network::Connection& conn) {
      conn.addReadFilter(std::make_shared<http::ConnectionManager>(shared));
    });
  }

private:
  std::vector<std::unique_ptr<http::HcmStats>> stats_;
};

static config::RegisterFactory<HcmFactory, server::NetworkFilterFactory> registered;

} // namespace hcm
} // namespace extensions
} // namespace tern
