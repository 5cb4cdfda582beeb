#include "extensions/codecs/http1/codec_impl.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "source/common/common/logger.h"

namespace tern {
namespace http1 {

const char* reasonPhrase(int code) {
  switch (code) {
  case 100: return "Continue";
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Payload Too Large";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return code < 200 ? "Informational" : code < 300 ? "OK" : code < 400 ? "Redirect"
                  : code < 500 ? "Client Error" : "Server Error";
  }
}

namespace {
// An "Upgrade: h2c" not taken: without its fields the request is a plain HTTP/1.1 one, which
// nothing later mistakes for an upgrade or forwards as one (Envoy drops them the same way).
void dropH2cUpgrade(http::HeaderMap& headers) {
  headers.remove("upgrade");
  headers.remove("http2-settings");
  const absl::string_view* connection = headers.get("connection");
  if (connection == nullptr) return;
  std::string kept;
  for (absl::string_view token : absl::StrSplit(*connection, ',')) {
    token = absl::StripAsciiWhitespace(token);
    if (token.empty() || absl::EqualsIgnoreCase(token, "upgrade") ||
        absl::EqualsIgnoreCase(token, "http2-settings")) {
      continue;
    }
    absl::StrAppend(&kept, kept.empty() ? "" : ", ", token);
  }
  if (kept.empty()) {
    headers.remove("connection");
  } else {
    headers.set("connection", kept);
  }
}

// "HTTP/1.x CODE REASON\r\n" without formatting: the status code is three digits.
void addStatusLine(buffer::Buffer& out, http::Protocol protocol, int code) {
  char line[13] = "HTTP/1.1 000";
  if (protocol == http::Protocol::Http10) line[7] = '0';
  line[9] = static_cast<char>('0' + code / 100 % 10);
  line[10] = static_cast<char>('0' + code / 10 % 10);
  line[11] = static_cast<char>('0' + code % 10);
  line[12] = ' ';
  out.add(line, 13);
  out.add(absl::string_view(reasonPhrase(code)));
  out.add("\r\n", 2);
}
} // namespace

ConnectionBase::ConnectionBase(network::Connection& connection, Parser::Type type, Limits limits)
    : connection_(connection), parser_(type, *this, limits),
      input_(&connection.dispatcher().blockPool()) {}

absl::Status ConnectionBase::dispatchInput(buffer::Buffer& data) {
  if (!input_.empty()) {
    input_.move(data);
    return parseInput();
  }
  // Nothing kept from before: parse the read buffer itself and keep only what is left
  // (a partial message, or pipelined requests waiting for the current response).
  absl::Status st = parser_.parse(data);
  if (!data.empty()) input_.move(data);
  return st;
}

absl::Status ConnectionBase::parseInput() { return parser_.parse(input_); }

void ConnectionBase::encodeFields(const http::HeaderMap& headers, buffer::Buffer& out,
                                  bool skip_hop_by_hop) {
  for (const auto& [name, value] : headers.entries()) {
    if (name[0] == ':') continue;
    if (skip_hop_by_hop && http::isHopByHop(name)) continue;
    const size_t n = name.size() + value.size() + 4;
    char* p = out.append(n);
    if (p == nullptr) { // longer than a block
      out.add(name);
      out.add(": ", 2);
      out.add(value);
      out.add("\r\n", 2);
      continue;
    }
    std::memcpy(p, name.data(), name.size());
    p += name.size();
    p[0] = ':';
    p[1] = ' ';
    if (!value.empty()) std::memcpy(p + 2, value.data(), value.size());
    p += 2 + value.size();
    p[0] = '\r';
    p[1] = '\n';
  }
}

void ConnectionBase::encodeBody(buffer::Buffer& data, bool end_stream, bool chunked) {
  buffer::Buffer out(&connection_.dispatcher().blockPool());
  if (chunked && !data.empty()) {
    char size[20];
    int n = 0;
    for (uint64_t v = data.length(); v != 0 || n == 0; v >>= 4) size[n++] = "0123456789abcdef"[v & 15];
    std::reverse(size, size + n);
    size[n++] = '\r';
    size[n++] = '\n';
    out.add(size, n);
    out.move(data);
    out.add("\r\n", 2);
  } else {
    out.move(data);
  }
  if (chunked && end_stream) out.add("0\r\n\r\n", 5);
  if (!out.empty()) connection_.write(out, false);
}

void ConnectionBase::encodeTrailers(const http::HeaderMap& trailers) {
  buffer::Buffer out(&connection_.dispatcher().blockPool());
  out.add("0\r\n", 3);
  encodeFields(trailers, out, true);
  out.add("\r\n", 2);
  connection_.write(out, false);
}

// ---------------------------------------------------------------------------------------
// Server

class ServerConnection::ResponseEncoder : public http::StreamEncoder,
                                          public event::DeferredDeletable {
public:
  TERN_RECYCLED(ResponseEncoder)
  explicit ResponseEncoder(ServerConnection& parent) : parent_(parent) {}

  void encode1xxHeaders(const http::HeaderMap& headers) override {
    int code = headers.statusCode();
    buffer::Buffer out(&parent_.connection_.dispatcher().blockPool());
    addStatusLine(out, http::Protocol::Http11, code);
    parent_.encodeFields(headers, out, true);
    out.add("\r\n", 2);
    parent_.connection_.write(out, false);
  }

  void encodeHeaders(const http::HeaderMap& headers, bool end_stream) override {
    ServerConnection& p = parent_;
    p.response_started_ = true;
    int code = headers.statusCode();
    if (code == 0) code = 500;
    buffer::Buffer out(&p.connection_.dispatcher().blockPool());
    addStatusLine(out, p.protocol_, code);
    bool upgrade = code == 101 || (p.connect_request_ && code >= 200 && code < 300);
    p.encodeFields(headers, out, code != 101);
    bool no_body = code < 200 || code == 204 || code == 304;
    const absl::string_view* cl = headers.get("content-length");
    chunked_ = false;
    if (upgrade) {
      p.tunnel_ = true;
    } else if (no_body) {
      // no framing fields
    } else if (end_stream && cl == nullptr) {
      if (!p.head_request_) out.add("content-length: 0\r\n");
    } else if (cl == nullptr && !end_stream) {
      if (p.protocol_ == http::Protocol::Http11 && !p.head_request_) {
        out.add("transfer-encoding: chunked\r\n");
        chunked_ = true;
      } else {
        p.keep_alive_ = false; // body ends when we close
      }
    }
    // An upstream that asked to close does not close the client's connection.
    if (!p.keep_alive_) {
      out.add("connection: close\r\n");
    } else if (p.protocol_ == http::Protocol::Http10) {
      out.add("connection: keep-alive\r\n");
    }
    out.add("\r\n", 2);
    p.connection_.write(out, false);
    if (end_stream) p.onResponseComplete();
  }

  void encodeData(buffer::Buffer& data, bool end_stream) override {
    if (parent_.head_request_) {
      data.clear();
    } else {
      parent_.encodeBody(data, end_stream, chunked_);
    }
    if (end_stream) parent_.onResponseComplete();
  }

  void encodeTrailers(const http::HeaderMap& trailers) override {
    if (chunked_) {
      parent_.encodeTrailers(trailers);
    } else {
      buffer::Buffer empty;
      parent_.encodeBody(empty, true, false);
    }
    parent_.onResponseComplete();
  }

  void addCallbacks(http::StreamCallbacks& cb) override { callbacks_ = &cb; }
  void removeCallbacks(http::StreamCallbacks& cb) override {
    if (callbacks_ == &cb) callbacks_ = nullptr;
  }
  void resetStream(http::StreamResetReason) override {
    // HTTP/1 cannot reset one stream: the connection goes.
    parent_.keep_alive_ = false;
    parent_.connection_.close(network::ConnectionCloseType::FlushWrite);
  }
  void readDisable(bool disable) override { parent_.connection_.readDisable(disable); }

  void onReset(http::StreamResetReason reason) {
    if (callbacks_) callbacks_->onResetStream(reason);
  }

private:
  ServerConnection& parent_;
  http::StreamCallbacks* callbacks_{nullptr};
  bool chunked_{false};
};

ServerConnection::ServerConnection(network::Connection& connection,
                                   http::ServerConnectionCallbacks& callbacks, Limits limits)
    : ConnectionBase(connection, Parser::Type::Request, limits), callbacks_(callbacks) {}

ServerConnection::~ServerConnection() = default;

absl::Status ServerConnection::dispatch(buffer::Buffer& data) {
  dispatching_ = true;
  absl::Status st = dispatchInput(data);
  dispatching_ = false;
  if (!st.ok()) return st;
  if (h2c_request_) return absl::OkStatus(); // the owner takes the connection over
  // Pipelined requests wait behind the current one: stop reading if too many queue up.
  if (parser_.paused() && input_.length() > 64 * 1024 && !input_blocked_) {
    input_blocked_ = true;
    connection_.readDisable(true);
  }
  return absl::OkStatus();
}

void ServerConnection::onPeerClosed() {
  if (encoder_ && !request_complete_) {
    encoder_->onReset(http::StreamResetReason::ConnectionTermination);
  }
}

void ServerConnection::sendProtocolError(const absl::Status& error) {
  keep_alive_ = false;
  if (response_started_) return; // too late for a response: the close says it all
  int code = 400;
  if (error.code() == absl::StatusCode::kResourceExhausted) code = 431;
  if (error.code() == absl::StatusCode::kUnimplemented) code = 501;
  std::string body = absl::StrCat(error.message(), "\n");
  buffer::Buffer out(&connection_.dispatcher().blockPool());
  out.add(absl::StrCat("HTTP/1.1 ", code, " ", reasonPhrase(code),
                       "\r\ncontent-type: text/plain\r\ncontent-length: ", body.size(),
                       "\r\nconnection: close\r\n\r\n", body));
  connection_.write(out, false);
  response_started_ = true;
  if (encoder_) encoder_->onReset(http::StreamResetReason::ProtocolError);
}

absl::Status ServerConnection::onHeaders(http::HeaderMapPtr headers, const MessageInfo& info,
                                         bool end_stream) {
  if (info.h2c_upgrade && h2c_allowed_ && dispatching_) {
    // Held for the owner, which switches once dispatch() returns. A pipelined request
    // parsed later, from the resume timer, has no owner waiting: HTTP/1.1 it is.
    h2c_request_ = std::move(headers);
    parser_.pause();
    return absl::OkStatus();
  }
  if (info.h2c) dropH2cUpgrade(*headers);
  protocol_ = info.protocol;
  keep_alive_ = info.keep_alive;
  // Known before the stream runs: a local reply may complete the response inside the
  // decodeHeaders call below.
  request_complete_ = end_stream;
  response_started_ = false;
  response_complete_ = false;
  head_request_ = headers->method() == "HEAD";
  connect_request_ = info.connect;
  encoder_ = std::make_unique<ResponseEncoder>(*this);
  decoder_ = &callbacks_.newStream(*encoder_);
  if (info.expect_continue && !end_stream && info.protocol == http::Protocol::Http11) {
    // Answer the client's "may I send the body?" ourselves, as Envoy does by default. An
    // HTTP/1.0 client cannot read a 1xx: its expectation is ignored (RFC 9110 10.1.1).
    buffer::Buffer out(&connection_.dispatcher().blockPool());
    out.add("HTTP/1.1 100 Continue\r\n\r\n");
    connection_.write(out, false);
  }
  decoder_->decodeHeaders(std::move(headers), end_stream);
  return absl::OkStatus();
}

void ServerConnection::onData(buffer::Buffer& data, bool end_stream) {
  if (end_stream) request_complete_ = true;
  if (decoder_) decoder_->decodeData(data, end_stream);
}

void ServerConnection::onTrailers(http::HeaderMapPtr trailers) {
  request_complete_ = true;
  if (decoder_) decoder_->decodeTrailers(std::move(trailers));
}

void ServerConnection::onMessageComplete() {
  request_complete_ = true;
  // Hold back the next pipelined request until this response is out.
  if (!response_complete_) parser_.pause();
}

http::HeaderMapPtr ServerConnection::acceptH2cUpgrade(buffer::Buffer& rest) {
  buffer::Buffer out(&connection_.dispatcher().blockPool());
  out.add("HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n");
  connection_.write(out, false);
  rest.move(input_);
  return std::move(h2c_request_);
}

bool ServerConnection::idle() const {
  // Not while dispatch() runs: a pipelined request may follow the one just answered.
  return !dispatching_ && encoder_ == nullptr && keep_alive_ && !tunnel_ && !input_blocked_ &&
         parser_.idle() && !parser_.paused() && input_.empty() &&
         (!resume_timer_ || !resume_timer_->enabled());
}

void ServerConnection::onResponseComplete() {
  if (tunnel_) return;
  response_complete_ = true;
  // Whatever comes next (a pipelined request, or a protocol error in one) gets its own
  // response.
  response_started_ = false;
  // The stream that wrote the response is still on the stack: free the encoder later.
  if (encoder_) connection_.dispatcher().deferredDelete(std::move(encoder_));
  decoder_ = nullptr;
  if (!keep_alive_) {
    connection_.close(network::ConnectionCloseType::FlushWrite);
    return;
  }
  if (!request_complete_) {
    // Answered before the request body was all read (an upstream that replies without
    // reading, or a local reply). The body's framing is known, so read and drop the rest
    // and keep the connection: closing with unread input would make the kernel send an
    // RST that can destroy the response we just wrote. The next request is parsed once
    // this one's body ends (onMessageComplete).
    TERN_LOG(Debug, "response before the request was complete: discarding the rest of its body");
    return;
  }
  parser_.resume();
  if (input_blocked_) {
    input_blocked_ = false;
    connection_.readDisable(false);
  }
  if (!input_.empty()) {
    // A pipelined request is waiting; parse it from the event loop, not from inside the
    // response path that called us.
    if (!resume_timer_) {
      resume_timer_ = connection_.dispatcher().createTimer([this] {
        absl::Status st = parseInput();
        if (!st.ok()) {
          sendProtocolError(st);
          connection_.close(network::ConnectionCloseType::FlushWrite);
        }
      });
    }
    resume_timer_->enableTimer(std::chrono::milliseconds(0));
  }
}

// ---------------------------------------------------------------------------------------
// Client

class ClientConnection::RequestEncoder : public http::StreamEncoder {
public:
  TERN_RECYCLED(RequestEncoder)
  explicit RequestEncoder(ClientConnection& parent) : parent_(parent) {}

  void encodeHeaders(const http::HeaderMap& headers, bool end_stream) override {
    ClientConnection& p = parent_;
    // One pass for what the request line and framing need (instead of a lookup each).
    absl::string_view method, path, authority;
    bool upgrade = false, has_connection = false, has_content_length = false;
    for (const auto& [name, value] : headers.entries()) {
      switch (name.size()) {
      case 5: if (name == ":path") path = value; break;
      case 7:
        if (name == ":method") method = value;
        else if (name == "upgrade") upgrade = true;
        break;
      case 10:
        if (name == ":authority") authority = value;
        else if (name == "connection") has_connection = true;
        break;
      case 14: if (name == "content-length") has_content_length = true; break;
      default: break;
      }
    }
    buffer::Buffer out(&p.connection_.dispatcher().blockPool());
    p.connect_ = method == "CONNECT";
    out.add(method);
    out.add(" ", 1);
    out.add(p.connect_ ? authority : path);
    out.add(" HTTP/1.1\r\nhost: ", 17);
    // HTTP/1.1 requires Host: a request that arrived without one (HTTP/1.0) names the
    // upstream it is sent to.
    if (authority.empty()) {
      out.add(p.connection_.remoteAddress().toString());
    } else {
      out.add(authority);
    }
    out.add("\r\n", 2);
    p.encodeFields(headers, out, !upgrade);
    if (upgrade && !has_connection) out.add("connection: upgrade\r\n");
    chunked_ = false;
    if (!has_content_length && !upgrade && !p.connect_) {
      if (end_stream) {
        if (method == "POST" || method == "PUT" || method == "PATCH") out.add("content-length: 0\r\n");
      } else {
        out.add("transfer-encoding: chunked\r\n");
        chunked_ = true;
      }
    }
    out.add("\r\n", 2);
    if (method == "HEAD" || p.connect_) p.parser_.expectNoBody();
    p.connection_.write(out, false);
    if (end_stream) p.request_complete_ = true;
  }

  void encodeData(buffer::Buffer& data, bool end_stream) override {
    parent_.encodeBody(data, end_stream, chunked_);
    if (end_stream) parent_.request_complete_ = true;
  }

  void encodeTrailers(const http::HeaderMap& trailers) override {
    if (chunked_) parent_.encodeTrailers(trailers);
    parent_.request_complete_ = true;
  }

  void addCallbacks(http::StreamCallbacks& cb) override { callbacks_ = &cb; }
  void removeCallbacks(http::StreamCallbacks& cb) override {
    if (callbacks_ == &cb) callbacks_ = nullptr;
  }
  void resetStream(http::StreamResetReason) override {
    parent_.reusable_ = false;
    parent_.decoder_ = nullptr;
    parent_.connection_.close(network::ConnectionCloseType::NoFlush);
  }
  void readDisable(bool disable) override { parent_.connection_.readDisable(disable); }
  void onReset(http::StreamResetReason reason) {
    if (callbacks_) callbacks_->onResetStream(reason);
  }
  void onAboveWriteBufferHighWatermark() {
    if (callbacks_) callbacks_->onAboveWriteBufferHighWatermark();
  }
  void onBelowWriteBufferLowWatermark() {
    if (callbacks_) callbacks_->onBelowWriteBufferLowWatermark();
  }

private:
  ClientConnection& parent_;
  http::StreamCallbacks* callbacks_{nullptr};
  bool chunked_{false};
};

ClientConnection::ClientConnection(network::Connection& connection, Limits limits)
    : ConnectionBase(connection, Parser::Type::Response, limits) {}

ClientConnection::~ClientConnection() = default;

http::StreamEncoder& ClientConnection::newStream(http::StreamDecoder& response_decoder) {
  decoder_ = &response_decoder;
  request_complete_ = false;
  response_complete_ = false;
  encoder_ = std::make_unique<RequestEncoder>(*this);
  return *encoder_;
}

void ClientConnection::onAboveWriteBufferHighWatermark() {
  if (encoder_ && decoder_) encoder_->onAboveWriteBufferHighWatermark();
}

void ClientConnection::onBelowWriteBufferLowWatermark() {
  if (encoder_ && decoder_) encoder_->onBelowWriteBufferLowWatermark();
}

absl::Status ClientConnection::dispatch(buffer::Buffer& data) {
  if (decoder_ == nullptr && !parser_.inTunnel()) {
    // Bytes with no request outstanding: the server is broken; drop the connection.
    if (!data.empty()) {
      reusable_ = false;
      data.clear();
      return absl::InvalidArgumentError("response data without a request");
    }
    return absl::OkStatus();
  }
  absl::Status st = dispatchInput(data);
  if (!st.ok()) {
    reusable_ = false;
    http::StreamDecoder* d = decoder_;
    decoder_ = nullptr;
    if (d && encoder_) encoder_->onReset(http::StreamResetReason::ProtocolError);
  }
  return st;
}

void ClientConnection::onPeerClosed() {
  reusable_ = false;
  if (decoder_ == nullptr) return;
  absl::Status st = parser_.onEof();
  if (!st.ok() || !response_complete_) {
    decoder_ = nullptr;
    if (encoder_) encoder_->onReset(http::StreamResetReason::ConnectionTermination);
  }
}

absl::Status ClientConnection::onHeaders(http::HeaderMapPtr headers, const MessageInfo& info,
                                         bool end_stream) {
  protocol_ = info.protocol;
  int code = headers->statusCode();
  if (code >= 100 && code < 200 && code != 101) {
    if (decoder_) decoder_->decode1xxHeaders(std::move(headers));
    return absl::OkStatus();
  }
  if (!info.keep_alive) reusable_ = false;
  if (connect_ && code >= 200 && code < 300) {
    parser_.switchToTunnel();
    reusable_ = false;
    end_stream = false;
  }
  if (info.upgrade) reusable_ = false;
  if (decoder_) decoder_->decodeHeaders(std::move(headers), end_stream);
  return absl::OkStatus();
}

void ClientConnection::onData(buffer::Buffer& data, bool end_stream) {
  if (decoder_) decoder_->decodeData(data, end_stream);
}

void ClientConnection::onTrailers(http::HeaderMapPtr trailers) {
  if (decoder_) decoder_->decodeTrailers(std::move(trailers));
}

void ClientConnection::onMessageComplete() {
  response_complete_ = true;
  if (!request_complete_) reusable_ = false; // the server answered early
  decoder_ = nullptr;
}

} // namespace http1
} // namespace tern
