#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "source/common/buffer/buffer.h"
#include "source/common/http/codec.h"
#include "source/common/http/header_map.h"

namespace tern {
namespace http1 {

struct Limits {
  uint32_t max_headers_kb{60};     // Envoy's max_request_headers_kb default
  uint32_t max_headers_count{100}; // Envoy's common_http_protocol_options default
};

// What a message's head said about framing, for the codec.
struct MessageInfo {
  http::Protocol protocol{http::Protocol::Http11};
  bool keep_alive{true};
  bool upgrade{false};   // Connection: upgrade + Upgrade (request) or 101 (response)
  bool connect{false};   // CONNECT request
  bool expect_continue{false};
  // Request with "Upgrade: h2c" (RFC 7540 3.2): never a tunnel. h2c_upgrade when the server
  // may switch: HTTP/1.1, no body, Connection: Upgrade, HTTP2-Settings and one well-formed
  // HTTP2-Settings field. A server that does not switch drops the upgrade's fields.
  bool h2c{false};
  bool h2c_upgrade{false};
};

// Incremental HTTP/1.x message parser for one direction of a connection. Strict where
// leniency enables request smuggling: bare LF, obs-fold, whitespace before the colon,
// Content-Length with Transfer-Encoding, differing duplicate Content-Length, transfer
// codings other than a final "chunked", and malformed chunk sizes are all errors.
//
// Errors carry the status a server should answer with: InvalidArgument -> 400,
// ResourceExhausted -> 431, Unimplemented -> 501.
class Parser {
public:
  enum class Type { Request, Response };

  class Callbacks {
  public:
    virtual ~Callbacks() = default;
    virtual absl::Status onHeaders(http::HeaderMapPtr headers, const MessageInfo& info,
                                   bool end_stream) = 0;
    virtual void onData(buffer::Buffer& data, bool end_stream) = 0;
    virtual void onTrailers(http::HeaderMapPtr trailers) = 0;
    // The message ended (after its last onHeaders/onData/onTrailers).
    virtual void onMessageComplete() = 0;
  };

  Parser(Type type, Callbacks& callbacks, Limits limits = {})
      : type_(type), callbacks_(callbacks), limits_(limits) {}

  // Consumes what it can of `data` (drained as consumed). Stops at the end of a message
  // when paused() (the server pauses until its response is done).
  absl::Status parse(buffer::Buffer& data);
  // The peer closed: ends a close-delimited response body; an error mid-message.
  absl::Status onEof();

  void pause() { paused_ = true; }
  void resume() { paused_ = false; }
  bool paused() const { return paused_; }
  // Response parser: the request was HEAD (or CONNECT), so this response has no body.
  void expectNoBody() { no_body_ = true; }
  // After an upgrade/CONNECT is accepted every byte is opaque tunnel data. Called from
  // onHeaders, the message stays open (no onMessageComplete) until onEof().
  void switchToTunnel() { state_ = State::Tunnel; }
  bool inTunnel() const { return state_ == State::Tunnel; }
  // Between messages (nothing of a next message read yet).
  bool idle() const { return state_ == State::Head && head_.empty(); }

private:
  enum class State { Head, Body, ChunkSize, ChunkData, ChunkDataEnd, Trailers, Eof, Tunnel };

  // Parses a head at the start of `in`: sets `consumed` to its length with the blank line,
  // or 0 when `in` does not hold all of it yet. The result waits in pending_* for
  // emitHead(), so the caller can drain the input before the callbacks run.
  absl::Status parseHead(absl::string_view in, size_t& consumed);
  absl::Status parseStartLine(absl::string_view start, http::HeaderMap& headers,
                              MessageInfo& info, int& status, bool& has_authority);
  absl::Status parseVersion(absl::string_view v, MessageInfo& info);
  absl::Status emitHead();
  absl::Status parseTrailers(absl::string_view block);
  absl::Status finishMessage();
  // Collects a header or trailer block (ends with an empty line) into head_. Returns
  // true when complete; drains what it copied.
  absl::StatusOr<bool> collectBlock(buffer::Buffer& data);
  // Collects one CRLF-terminated line into line_.
  absl::StatusOr<bool> collectLine(buffer::Buffer& data);

  const Type type_;
  Callbacks& callbacks_;
  const Limits limits_;
  State state_{State::Head};
  std::string head_;
  std::string line_;
  uint64_t remaining_{0}; // body or chunk bytes left
  bool paused_{false};
  bool no_body_{false};
  bool message_keep_alive_{true};
  http::HeaderMapPtr pending_headers_;
  MessageInfo pending_info_;
  bool pending_end_stream_{false};
};

} // namespace http1
} // namespace tern
