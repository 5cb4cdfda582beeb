#include "source/server/admin.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "re2/re2.h"
#include "extensions/codecs/http1/codec_impl.h"
#include "source/common/common/logger.h"
#include "source/common/network/connection_impl.h"
#include "source/common/network/socket.h"
#include "source/common/router/config.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace server {

// One admin client connection: an HTTP/1 server codec answering each request from
// AdminServer::handle.
class AdminServer::Connection : public network::ReadFilter,
                                public network::ConnectionCallbacks,
                                public http::ServerConnectionCallbacks,
                                public http::StreamDecoder {
public:
  Connection(AdminServer& parent, std::unique_ptr<network::ConnectionImpl> conn)
      : parent_(parent), conn_(std::move(conn)) {
    conn_->addConnectionCallbacks(*this);
    conn_->addReadFilter(network::ReadFilterSharedPtr(this, [](network::ReadFilter*) {}));
    codec_ = std::make_unique<http1::ServerConnection>(*conn_, *this);
  }

  // network::ReadFilter
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override {
    absl::Status st = codec_->dispatch(data);
    if (!st.ok()) {
      codec_->sendProtocolError(st);
      conn_->close(network::ConnectionCloseType::FlushWrite);
    } else if (end_stream) {
      conn_->close(network::ConnectionCloseType::FlushWrite);
    }
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent e) override {
    if (e == network::ConnectionEvent::Connected) return;
    auto& list = parent_.connections_;
    for (auto it = list.begin(); it != list.end(); ++it) {
      if (it->get() == this) {
        struct Holder : event::DeferredDeletable {
          std::unique_ptr<Connection> c;
        };
        auto h = std::make_unique<Holder>();
        h->c = std::move(*it);
        list.erase(it);
        parent_.dispatcher_.deferredDelete(std::move(h));
        return;
      }
    }
  }

  // http::ServerConnectionCallbacks
  http::StreamDecoder& newStream(http::StreamEncoder& response) override {
    response_ = &response;
    return *this;
  }

  // http::StreamDecoder
  void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override {
    request_ = std::move(headers);
    if (end_stream) respond();
  }
  void decodeData(buffer::Buffer& data, bool end_stream) override {
    data.clear();
    if (end_stream) respond();
  }
  void decodeTrailers(http::HeaderMapPtr) override { respond(); }

private:
  void respond() {
    std::string body, type = "text/plain";
    int code = AdminServer::handle(parent_.context_, request_->method(), request_->path(), body, type);
    http::HeaderMap h;
    h.add(":status", absl::StrCat(code));
    h.add("content-type", type);
    h.add("content-length", absl::StrCat(body.size()));
    h.add("cache-control", "no-cache, max-age=0");
    h.add("x-content-type-options", "nosniff");
    response_->encodeHeaders(h, body.empty());
    if (!body.empty()) {
      buffer::Buffer b(&conn_->dispatcher().blockPool());
      b.add(body);
      response_->encodeData(b, true);
    }
  }

  AdminServer& parent_;
  std::unique_ptr<network::ConnectionImpl> conn_;
  std::unique_ptr<http1::ServerConnection> codec_;
  http::StreamEncoder* response_{nullptr};
  http::HeaderMapPtr request_;
};

AdminServer::AdminServer(AdminContext context, event::Dispatcher& dispatcher, int listen_fd)
    : context_(std::move(context)), dispatcher_(dispatcher),
      listener_(dispatcher, listen_fd,
                [this](int fd, const network::Address& remote) { onAccept(fd, remote); }) {}

AdminServer::~AdminServer() {
  for (auto& c : connections_) c.reset();
}

void AdminServer::onAccept(int fd, const network::Address& remote) {
  auto local = network::localAddressOf(fd);
  auto conn = std::make_unique<network::ConnectionImpl>(
      dispatcher_, fd, local.ok() ? *local : network::Address(), remote,
      nullptr /* plain TCP */, true);
  connections_.push_back(std::make_unique<Connection>(*this, std::move(conn)));
}

namespace {

// Query values arrive percent-encoded (curl --data-urlencode, browsers).
std::string percentDecode(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); i++) {
    int hi, lo;
    auto hex = [](char c) {
      return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_isxdigit(c) ? (c | 0x20) - 'a' + 10 : -1;
    };
    if (in[i] == '%' && i + 2 < in.size() + 0 && (hi = hex(in[i + 1])) >= 0 && (lo = hex(in[i + 2])) >= 0) {
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (in[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

constexpr char kHelp[] =
    "admin commands are:\n"
    "  /stats: print server stats (?filter=REGEX)\n"
    "  /stats/prometheus: stats in Prometheus text format\n"
    "  /config_dump: the running configuration (JSON)\n"
    "  /clusters: upstream clusters and their hosts\n"
    "  /listeners: listeners and their addresses\n"
    "  /ready: 200 LIVE when serving\n"
    "  /healthcheck/fail (POST): fail health checks\n"
    "  /healthcheck/ok (POST): pass health checks\n"
    "  /logging (POST ?level=LEVEL): change the log level\n"
    "  /quitquitquit (POST): exit the server\n";

} // namespace

int AdminServer::handle(const AdminContext& ctx, absl::string_view method, absl::string_view full_path,
                        std::string& body, std::string& type) {
  absl::string_view path = full_path.substr(0, full_path.find('?'));
  auto requirePost = [&]() -> bool {
    if (method == "POST") return true;
    body = "This endpoint requires POST\n";
    return false;
  };
  if (path == "/" || path == "/help") {
    body = kHelp;
    return 200;
  }
  if (path == "/stats") {
    std::string filter;
    std::string all = ctx.stats->dump();
    if (router::queryParam(full_path, "filter", &filter) && !filter.empty()) {
      filter = percentDecode(filter);
      RE2 re(filter, RE2::Quiet);
      if (!re.ok()) {
        body = absl::StrCat("bad filter regex: ", re.error(), "\n");
        return 400;
      }
      for (absl::string_view line : absl::StrSplit(all, '\n', absl::SkipEmpty())) {
        absl::string_view name = line.substr(0, line.find(':'));
        if (RE2::PartialMatch(re2::StringPiece(name.data(), name.size()), re)) {
          absl::StrAppend(&body, line, "\n");
        }
      }
    } else {
      body = std::move(all);
    }
    return 200;
  }
  if (path == "/stats/prometheus") {
    type = "text/plain; version=0.0.4";
    body = ctx.stats->prometheus();
    return 200;
  }
  if (path == "/config_dump") {
    type = "application/json";
    body = ctx.config_dump();
    return 200;
  }
  if (path == "/clusters") {
    for (auto* c : ctx.cm->all()) {
      auto hosts = c->hosts();
      for (const auto& level : hosts->levels) {
        for (const auto& h : level) {
          std::string p = absl::StrCat(c->name(), "::", h->address.toString(), "::");
          absl::StrAppend(&body, p, "cx_active::", h->cx_active.load(), "\n", p,
                          "rq_active::", h->rq_active.load(), "\n", p, "weight::", h->weight, "\n", p,
                          "priority::", h->priority, "\n", p, "health_flags::",
                          h->healthy.load() ? "healthy" : "/failed_active_hc", "\n", p, "hostname::",
                          h->hostname, "\n");
        }
      }
    }
    return 200;
  }
  if (path == "/listeners") {
    body = ctx.listeners();
    return 200;
  }
  if (path == "/ready") {
    body = "LIVE\n";
    return 200;
  }
  if (path == "/healthcheck/fail" || path == "/healthcheck/ok") {
    if (!requirePost()) return 405;
    ctx.healthcheck_failed->store(path == "/healthcheck/fail");
    body = "OK\n";
    return 200;
  }
  if (path == "/logging") {
    std::string level;
    if (!router::queryParam(full_path, "level", &level)) {
      body = absl::StrCat("active level: ", log::levelName(log::level()),
                          "\nusage: POST /logging?level=trace|debug|info|warn|error|off\n");
      return 200;
    }
    if (!requirePost()) return 405;
    log::Level l;
    if (!log::parseLevel(level, &l)) {
      body = absl::StrCat("unknown level '", level, "': use trace, debug, info, warn, error, off\n");
      return 400;
    }
    log::setLevel(l);
    body = absl::StrCat("active level: ", log::levelName(l), "\n");
    return 200;
  }
  if (path == "/quitquitquit") {
    if (!requirePost()) return 405;
    body = "OK\n";
    ctx.quit();
    return 200;
  }
  body = absl::StrCat("unknown admin path ", path, "\n", kHelp);
  return 404;
}

} // namespace server
} // namespace tern
