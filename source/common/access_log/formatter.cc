#include "source/common/access_log/formatter.h"

#include <ctime>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tern {
namespace access_log {

const char* Formatter::defaultFormat() {
  return "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
         "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
         "\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" "
         "\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n";
}

absl::StatusOr<Formatter> Formatter::parse(absl::string_view f) {
  Formatter out;
  std::string literal;
  size_t i = 0;
  auto flush = [&] {
    if (!literal.empty()) out.parts_.push_back({Op::Literal, literal, "", 0});
    literal.clear();
  };
  while (i < f.size()) {
    if (f[i] != '%') {
      literal.push_back(f[i++]);
      continue;
    }
    size_t end = f.find('%', i + 1);
    if (end == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("unterminated operator at offset ", i));
    }
    absl::string_view cmd = f.substr(i + 1, end - i - 1);
    i = end + 1;
    if (cmd.empty()) { // "%%" is a literal percent
      literal.push_back('%');
      continue;
    }
    flush();
    Part p{Op::Literal, "", "", 0};
    // Optional ":N" length limit after a closing parenthesis.
    size_t close = cmd.rfind(')');
    if (close != absl::string_view::npos && close + 1 < cmd.size() && cmd[close + 1] == ':') {
      if (!absl::SimpleAtoi(cmd.substr(close + 2), &p.max_len)) {
        return absl::InvalidArgumentError(absl::StrCat("bad length in %", cmd, "%"));
      }
      cmd = cmd.substr(0, close + 1);
    }
    auto arg = [&](absl::string_view prefix) -> bool {
      if (cmd.size() < prefix.size() + 2 || cmd.substr(0, prefix.size()) != prefix ||
          cmd[prefix.size()] != '(' || cmd.back() != ')') {
        return false;
      }
      std::string a(cmd.substr(prefix.size() + 1, cmd.size() - prefix.size() - 2));
      absl::AsciiStrToLower(&a);
      size_t q = a.find('?');
      if (q != std::string::npos) {
        p.fallback = a.substr(q + 1);
        a = a.substr(0, q);
      }
      p.text = a;
      return true;
    };
    if (arg("REQ")) {
      p.op = Op::Req;
    } else if (arg("RESP")) {
      p.op = Op::Resp;
    } else if (cmd == "START_TIME" || (cmd.size() > 10 && cmd.substr(0, 11) == "START_TIME(")) {
      p.op = Op::StartTime;
    } else if (cmd == "RESPONSE_CODE") {
      p.op = Op::ResponseCode;
    } else if (cmd == "RESPONSE_FLAGS") {
      p.op = Op::ResponseFlags;
    } else if (cmd == "RESPONSE_CODE_DETAILS") {
      p.op = Op::ResponseCodeDetails;
    } else if (cmd == "DURATION") {
      p.op = Op::Duration;
    } else if (cmd == "BYTES_RECEIVED") {
      p.op = Op::BytesReceived;
    } else if (cmd == "BYTES_SENT") {
      p.op = Op::BytesSent;
    } else if (cmd == "PROTOCOL") {
      p.op = Op::Protocol;
    } else if (cmd == "UPSTREAM_HOST") {
      p.op = Op::UpstreamHost;
    } else if (cmd == "UPSTREAM_CLUSTER") {
      p.op = Op::UpstreamCluster;
    } else if (cmd == "ROUTE_NAME") {
      p.op = Op::RouteName;
    } else if (cmd == "DOWNSTREAM_REMOTE_ADDRESS") {
      p.op = Op::DownstreamRemoteAddress;
    } else if (cmd == "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT") {
      p.op = Op::DownstreamRemoteAddressNoPort;
    } else if (cmd == "DOWNSTREAM_LOCAL_ADDRESS") {
      p.op = Op::DownstreamLocalAddress;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown operator %", cmd, "%"));
    }
    out.parts_.push_back(std::move(p));
  }
  flush();
  return out;
}

std::string Formatter::format(const http::HeaderMap* req, const http::HeaderMap* resp,
                              const http::StreamInfo& info) const {
  std::string out;
  auto header = [](const http::HeaderMap* h, const std::string& name,
                   const std::string& fallback) -> std::string {
    if (h == nullptr) return "-";
    const absl::string_view* v = h->get(name);
    if (v == nullptr && !fallback.empty()) v = h->get(fallback);
    return v ? std::string(*v) : std::string("-");
  };
  for (const auto& p : parts_) {
    std::string v;
    switch (p.op) {
    case Op::Literal: out += p.text; continue;
    case Op::Req: v = header(req, p.text, p.fallback); break;
    case Op::Resp: v = header(resp, p.text, p.fallback); break;
    case Op::StartTime: {
      auto t = info.start_time;
      time_t secs = std::chrono::system_clock::to_time_t(t);
      int ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
      tm g;
      gmtime_r(&secs, &g);
      v = absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", g.tm_year + 1900, g.tm_mon + 1,
                          g.tm_mday, g.tm_hour, g.tm_min, g.tm_sec, ms);
      break;
    }
    case Op::ResponseCode: v = absl::StrCat(info.response_code); break;
    case Op::ResponseFlags: v = info.response_flags.empty() ? "-" : info.response_flags; break;
    case Op::ResponseCodeDetails: v = info.response_code_details.empty() ? "-" : info.response_code_details; break;
    case Op::Duration:
      v = absl::StrCat(std::chrono::duration_cast<std::chrono::milliseconds>(info.end_mono - info.start_mono).count());
      break;
    case Op::BytesReceived: v = absl::StrCat(info.bytes_received); break;
    case Op::BytesSent: v = absl::StrCat(info.bytes_sent); break;
    case Op::Protocol: v = info.protocol.empty() ? "-" : info.protocol; break;
    case Op::UpstreamHost: v = info.upstream_host.empty() ? "-" : info.upstream_host; break;
    case Op::UpstreamCluster: v = info.upstream_cluster.empty() ? "-" : info.upstream_cluster; break;
    case Op::RouteName: v = info.route_name.empty() ? "-" : info.route_name; break;
    case Op::DownstreamRemoteAddress: v = info.downstream_remote.toString(); break;
    case Op::DownstreamRemoteAddressNoPort: v = info.downstream_remote.ip(); break;
    case Op::DownstreamLocalAddress: v = info.downstream_local.toString(); break;
    }
    if (p.max_len && v.size() > p.max_len) v.resize(p.max_len);
    out += v;
  }
  return out;
}

} // namespace access_log
} // namespace tern
