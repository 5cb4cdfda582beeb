#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "source/common/buffer/buffer.h"
#include "source/common/event/dispatcher.h"
#include "source/common/http/header_map.h"

namespace tern {
namespace http {

enum class Protocol { Http10, Http11, Http2 };

enum class StreamResetReason {
  ConnectionFailure, // upstream connect failed
  ConnectionTermination, // the connection closed under the stream
  LocalReset,
  RemoteReset,
  Overflow, // circuit breaker / pending queue full
  ProtocolError,
  // The peer did not process the stream (HTTP/2 GOAWAY naming an earlier last stream, or
  // RST_STREAM REFUSED_STREAM): always safe to retry.
  RefusedStream,
};
const char* resetReasonName(StreamResetReason r);

// An HTTP2-Settings field value (RFC 7540 3.2.1: a SETTINGS payload in base64url, '='
// padding tolerated), decoded into `payload` when given. False when malformed: another
// character, or not a whole number of 6-byte settings.
bool decodeHttp2Settings(absl::string_view value, std::string* payload);

// Fields that describe one hop and never travel as they are (RFC 9110 7.6.1, RFC 9113
// 8.2.2): connection, keep-alive, proxy-connection, te, transfer-encoding, upgrade.
// `name` is lower-case. Inline: the HTTP/1 encoder asks for every field it writes.
inline bool isHopByHop(absl::string_view name) {
  switch (name.size()) {
  case 2: return name == "te";
  case 7: return name == "upgrade";
  case 10: return name == "connection" || name == "keep-alive";
  case 16: return name == "proxy-connection";
  case 17: return name == "transfer-encoding";
  default: return false;
  }
}

// Receives one direction of a stream: request on the server side, response on the client.
class StreamDecoder {
public:
  virtual ~StreamDecoder() = default;
  // 1xx informational responses other than 101 (client side only).
  virtual void decode1xxHeaders(HeaderMapPtr) {}
  virtual void decodeHeaders(HeaderMapPtr headers, bool end_stream) = 0;
  virtual void decodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void decodeTrailers(HeaderMapPtr trailers) = 0;
};

class StreamCallbacks {
public:
  virtual ~StreamCallbacks() = default;
  virtual void onResetStream(StreamResetReason reason) = 0;
  virtual void onAboveWriteBufferHighWatermark() {}
  virtual void onBelowWriteBufferLowWatermark() {}
};

// Sends one direction of a stream.
class StreamEncoder {
public:
  virtual ~StreamEncoder() = default;
  virtual void encode1xxHeaders(const HeaderMap&) {}
  virtual void encodeHeaders(const HeaderMap& headers, bool end_stream) = 0;
  virtual void encodeData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void encodeTrailers(const HeaderMap& trailers) = 0;
  // The stream this encoder writes.
  virtual void addCallbacks(StreamCallbacks& cb) = 0;
  virtual void removeCallbacks(StreamCallbacks& cb) = 0;
  virtual void resetStream(StreamResetReason reason) = 0;
  // Stop/resume delivering this stream's incoming data (flow control).
  virtual void readDisable(bool disable) = 0;
};

// A codec turns a connection's bytes into streams. Deferred-deletable: its owner may
// drop it from inside one of its callbacks.
class CodecConnection : public event::DeferredDeletable {
public:
  // Feeds bytes read from the connection. An error status means the peer broke the
  // protocol; the codec has already written its error response where the protocol has
  // one, and the caller closes the connection after flushing.
  virtual absl::Status dispatch(buffer::Buffer& data) = 0;
  virtual Protocol protocol() const = 0;
  // The peer closed its side (HTTP/1 close-delimited bodies end here).
  virtual void onPeerClosed() {}
};

class ServerConnectionCallbacks {
public:
  virtual ~ServerConnectionCallbacks() = default;
  // A request begins; returns where its parts go. `response` writes the answer.
  virtual StreamDecoder& newStream(StreamEncoder& response) = 0;
};

class ClientConnection : public CodecConnection {
public:
  // Starts a request; the response goes to `response_decoder`.
  virtual StreamEncoder& newStream(StreamDecoder& response_decoder) = 0;
  // Whether another request may be sent on this connection after the current one.
  virtual bool reusable() const = 0;
};

} // namespace http
} // namespace tern
