#pragma once

#include <memory>

#include "extensions/codecs/http1/parser.h"
#include "source/common/common/recycler.h"
#include "source/common/http/codec.h"
#include "source/common/network/connection.h"

namespace tern {
namespace http1 {

const char* reasonPhrase(int code);

// Shared by both sides: the connection, the input kept between dispatches, framing of
// what we send.
class ConnectionBase : protected Parser::Callbacks {
public:
  ConnectionBase(network::Connection& connection, Parser::Type type, Limits limits);

protected:
  // Moves `data` into input_ and parses what the parser will take.
  absl::Status dispatchInput(buffer::Buffer& data);
  // Encodes the fields of `headers` (no pseudo-headers, no framing fields) and the
  // framing this message needs; returns whether the body will be chunked.
  void encodeFields(const http::HeaderMap& headers, buffer::Buffer& out, bool skip_hop_by_hop);
  void encodeBody(buffer::Buffer& data, bool end_stream, bool chunked);
  void encodeTrailers(const http::HeaderMap& trailers);
  absl::Status parseInput();

  network::Connection& connection_;
  Parser parser_;
  buffer::Buffer input_;
  http::Protocol protocol_{http::Protocol::Http11};
};

// Server side: requests in, responses out, one at a time (pipelined requests wait in
// input_ until the response before them is complete).
class ServerConnection : public ConnectionBase, public http::CodecConnection {
public:
  // Made per request (freed while the connection is idle): recycled.
  TERN_RECYCLED(ServerConnection)
  ServerConnection(network::Connection& connection, http::ServerConnectionCallbacks& callbacks,
                   Limits limits = {});
  ~ServerConnection() override;

  // http::CodecConnection
  absl::Status dispatch(buffer::Buffer& data) override;
  http::Protocol protocol() const override { return protocol_; }
  void onPeerClosed() override;
  // Whether the connection should close once the current response is sent.
  bool closeAfterResponse() const { return !keep_alive_; }
  // The response in flight (or the next) says "connection: close" and the connection
  // closes after it: graceful shutdown.
  void disableKeepAlive() { keep_alive_ = false; }
  // Writes a minimal error response for a request the parser rejected.
  void sendProtocolError(const absl::Status& error);
  bool responseStarted() const { return response_started_; }
  // Between requests with nothing pending: the connection manager may free this codec
  // (and make a new one when bytes arrive) so an idle keep-alive connection holds less.
  bool idle() const;

  // HTTP/1.1 -> HTTP/2 upgrade (RFC 7540 3.2). Once enabled, a request that qualifies
  // (MessageInfo::h2c_upgrade) and arrives through dispatch() makes no stream: it is held,
  // with the bytes after it, and dispatch() returns with h2cUpgradePending(). The owner then
  // calls acceptH2cUpgrade(), which writes the 101 and hands over the request and those
  // bytes (the client's HTTP/2 preface); this codec is done after that. Without it, or for
  // a request that does not qualify, the upgrade's fields are dropped and the request is
  // served as HTTP/1.1.
  void enableH2cUpgrade() { h2c_allowed_ = true; }
  bool h2cUpgradePending() const { return h2c_request_ != nullptr; }
  http::HeaderMapPtr acceptH2cUpgrade(buffer::Buffer& rest);

private:
  class ResponseEncoder;

  // Parser::Callbacks
  absl::Status onHeaders(http::HeaderMapPtr headers, const MessageInfo& info,
                         bool end_stream) override;
  void onData(buffer::Buffer& data, bool end_stream) override;
  void onTrailers(http::HeaderMapPtr trailers) override;
  void onMessageComplete() override;

  void onResponseComplete();

  http::ServerConnectionCallbacks& callbacks_;
  std::unique_ptr<ResponseEncoder> encoder_;
  http::StreamDecoder* decoder_{nullptr};
  bool keep_alive_{true};
  bool request_complete_{false};
  bool response_started_{false};
  bool response_complete_{false};
  bool tunnel_{false};
  bool head_request_{false};
  bool connect_request_{false};
  bool input_blocked_{false};
  bool h2c_allowed_{false};
  bool dispatching_{false};
  http::HeaderMapPtr h2c_request_;
  event::TimerPtr resume_timer_;
};

// Client side: one request at a time on an upstream connection.
class ClientConnection : public ConnectionBase, public http::ClientConnection {
public:
  ClientConnection(network::Connection& connection, Limits limits = {});
  ~ClientConnection() override;

  // http::CodecConnection
  absl::Status dispatch(buffer::Buffer& data) override;
  http::Protocol protocol() const override { return protocol_; }
  void onPeerClosed() override;
  // http::ClientConnection
  http::StreamEncoder& newStream(http::StreamDecoder& response_decoder) override;
  bool reusable() const override { return reusable_; }
  // The active request was reset by its owner: the connection is not reusable.
  bool streamActive() const { return decoder_ != nullptr; }
  // The connection's write buffer crossed a watermark: tell the active request's owner,
  // which stops (or resumes) reading the body it is sending.
  void onAboveWriteBufferHighWatermark();
  void onBelowWriteBufferLowWatermark();

private:
  class RequestEncoder;

  // Parser::Callbacks
  absl::Status onHeaders(http::HeaderMapPtr headers, const MessageInfo& info,
                         bool end_stream) override;
  void onData(buffer::Buffer& data, bool end_stream) override;
  void onTrailers(http::HeaderMapPtr trailers) override;
  void onMessageComplete() override;

  std::unique_ptr<RequestEncoder> encoder_;
  http::StreamDecoder* decoder_{nullptr};
  bool reusable_{true};
  bool request_complete_{false};
  bool response_complete_{false};
  bool connect_{false};
};

} // namespace http1
} // namespace tern
