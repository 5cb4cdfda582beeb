#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "source/common/buffer/buffer.h"
#include "source/common/common/recycler.h"
#include "source/common/event/dispatcher.h"
#include "source/common/http/codec.h"
#include "source/common/network/connection.h"

struct nghttp2_session;

namespace tern {
namespace http2 {

// Plain options of one HTTP/2 connection. Defaults follow Envoy's
// envoy.config.core.v3.Http2ProtocolOptions where it has one, except the three marked
// (Envoy's own defaults there are 2^31-1 streams and 256 MiB windows).
struct Settings {
  // What we advertise in SETTINGS.
  uint32_t hpack_table_size{4096};
  uint32_t max_concurrent_streams{100};                 // Envoy: 2147483647
  uint32_t initial_stream_window_size{256 * 1024};      // Envoy: 256 MiB
  uint32_t initial_connection_window_size{1024 * 1024}; // Envoy: 256 MiB
  // HttpProtocolOptions.max_headers_kb / max_headers_count: larger header blocks reset
  // their stream.
  uint32_t max_header_list_size_kb{60};
  uint32_t max_headers_count{100};

  // Abuse limits; exceeding one ends the connection with GOAWAY ENHANCE_YOUR_CALM.
  // Frames of ours still waiting in the connection's write buffer (a peer that does not
  // read), all and control frames (PING/SETTINGS ACK, RST_STREAM).
  uint32_t max_outbound_frames{10000};
  uint32_t max_outbound_control_frames{1000};
  uint32_t max_consecutive_inbound_frames_with_empty_payload{1};
  uint32_t max_inbound_priority_frames_per_stream{100};
  uint32_t max_inbound_window_update_frames_per_data_frame_sent{10};
  // "Rapid reset": streams the client resets before we answered them. Over
  // max(rapid_reset_min, 2 * max_concurrent_streams) of them within
  // rapid_reset_window_streams opened streams, and more than half of those, ends the
  // connection.
  uint32_t rapid_reset_min{100};
  uint32_t rapid_reset_window_streams{1000};

  // A malformed message (uppercase or connection-specific field, bad pseudo-headers,
  // content-length mismatch): false ends the connection (GOAWAY PROTOCOL_ERROR), as
  // Envoy does by default; true resets only the stream (RST_STREAM PROTOCOL_ERROR).
  bool stream_error_on_invalid_http_messaging{false};

  // PING every interval; no ACK within the timeout closes the connection. 0 = off.
  uint32_t connection_keepalive_interval_ms{0};
  uint32_t connection_keepalive_timeout_ms{15000};
};

// For codec_type AUTO: the client connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".
enum class PrefaceStatus { NeedMoreData, Http2, Http1 };
// Http1 as soon as a byte differs from the preface; Http2 once all 24 bytes match.
PrefaceStatus detectPreface(const buffer::Buffer& data);
bool hasHttp2Preface(const buffer::Buffer& data);

// Connection-level events for the codec's owner.
class ConnectionCallbacks {
public:
  virtual ~ConnectionCallbacks() = default;
  // The peer sent GOAWAY: open no new stream here. Streams it did not process are reset
  // next (ConnectionTermination: safe to retry elsewhere); the others may still finish.
  virtual void onGoAway(uint32_t error_code) = 0;
};

// Both sides: one nghttp2 session over one network connection.
//
// The owner feeds every read to dispatch() and forwards the connection's events:
// onConnectionClosed() on close, and the write-buffer watermarks (above the high one the
// codec stops sending DATA, so each stream's own buffer fills and raises its watermark).
// A dispatch() error means the connection is broken: a GOAWAY with the error code is
// already in the connection's write buffer; flush and close.
//
// Streams: readDisable(true) holds a stream's DATA and trailers in the codec (headers
// still pass) and keeps its window closed, so the peer stalls on that stream alone; at most
// a stream window is held per stream. An encoder stays valid until its stream has ended
// both ways (or been reset) and the owner removed its callbacks, and until the end of that
// dispatcher turn; after onResetStream, or after resetStream(), the owner must not touch
// it again. Destroy the codec only from a deferred delete or outside its callbacks.
class ConnectionBase {
public:
  virtual ~ConnectionBase();

  // Streams not yet closed at the HTTP/2 level.
  size_t activeStreams() const { return active_streams_; }
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrive).
  uint32_t peerMaxConcurrentStreams() const;
  void setConnectionCallbacks(ConnectionCallbacks& callbacks) { conn_callbacks_ = &callbacks; }

  // Drain: GOAWAY(NO_ERROR) naming the last stream the peer opened; those streams finish,
  // later ones are ignored.
  void goAway();
  // Server: a first GOAWAY announcing the drain (last stream 2^31-1), before goAway().
  void shutdownNotice();
  bool goAwaySent() const { return goaway_sent_; }
  bool goAwayReceived() const { return goaway_received_; }
  // The error code of the GOAWAY we sent for a connection error; 0 while none.
  uint32_t connectionError() const { return conn_error_code_; }

  // Forwarded by the owner from its network::ConnectionCallbacks. Every stream still open
  // gets onResetStream(ConnectionTermination). (Above the high watermark the codec sees
  // for itself; the low one resumes the DATA it held back.)
  void onConnectionClosed();
  void onAboveWriteBufferHighWatermark() {}
  void onBelowWriteBufferLowWatermark();

protected:
  class Stream;
  friend struct Nghttp2Callbacks;

  ConnectionBase(network::Connection& connection, const Settings& settings, bool server);

  absl::Status dispatchInput(buffer::Buffer& data);
  // The peer's FIN: streams still waiting for input can never complete.
  void onTransportEnded();
  Stream& createClientStream(http::StreamDecoder& decoder);
  // Server: stream 1 from an HTTP/1.1 upgrade (see ServerConnection::upgradeFromHttp1).
  absl::Status acceptUpgrade(absl::string_view settings_payload, http::HeaderMapPtr request);
  // Server: a request's headers arrived; returns where its parts go (nullptr: refuse).
  virtual http::StreamDecoder* onNewRequest(http::StreamEncoder&) { return nullptr; }
  nghttp2_session* session() const { return session_; }
  bool connectionClosed() const { return connection_closed_; }

  network::Connection& connection_;
  const Settings settings_;
  const bool server_;

private:
  struct Frame {
    uint64_t offset; // where it starts in everything we wrote
    bool control;
  };

  void createServerStream(int32_t id);
  Stream& addServerStream(int32_t id);
  Stream* findStream(int32_t id);
  // Returns from a receive callback: connection error ENHANCE_YOUR_CALM / a malformed
  // message (a connection or a stream error, per settings).
  int flood(const char* what);
  int malformed(Stream& s, const char* what);
  int onHeaders(Stream& s, int category, bool end_stream);
  void onData(Stream& s, bool end_stream);
  void onStreamClosed(Stream& s, uint32_t error_code);
  void deliverPending(Stream& s);
  void consumeStream(int32_t id, size_t len);
  void applyConsumption();
  void notifyReset(Stream& s, http::StreamResetReason reason);
  void maybeDestroy(Stream& s);
  void resetAllStreams(http::StreamResetReason reason, bool only_unfinished_input);
  // Sends what nghttp2 has queued (unless inside nghttp2, or already flushing).
  void flush();
  void sendPending();
  void runDeferred();
  void scheduleDeferred();
  void onDeferredTimer();
  bool writeBlocked() const;
  void recordOutboundFrame(bool control);
  absl::Status errorStatus() const;
  void startKeepalive();
  void onKeepaliveTimer();

  nghttp2_session* session_{nullptr};
  ConnectionCallbacks* conn_callbacks_{nullptr};
  using StreamList =
      std::list<std::unique_ptr<Stream>, common::RecyclingAllocator<std::unique_ptr<Stream>>>;
  StreamList streams_;
  size_t active_streams_{0};
  // One flush's output, written to the connection in one go.
  buffer::Buffer out_;

  // Received bytes are consumed (windows reopened) after each mem_recv, so a peer that
  // overruns a window within one read is caught; a stream's only once its owner took them.
  uint64_t connection_unconsumed_{0};
  std::vector<std::pair<int32_t, size_t>> stream_unconsumed_;

  // Our frames the connection may still hold (a peer that does not read), pruned by how
  // far it has drained: bytes we wrote minus the bytes it still buffers.
  std::vector<Frame> outbound_;
  size_t outbound_head_{0};
  uint32_t outbound_control_{0};
  uint64_t bytes_written_{0};

  // Inbound abuse counters.
  uint32_t consecutive_empty_frames_{0};
  uint64_t inbound_priority_frames_{0};
  uint64_t inbound_window_update_frames_{0};
  uint64_t outbound_data_frames_{0};
  uint64_t streams_opened_{0};
  uint32_t window_opened_{0};
  uint32_t window_resets_{0};

  // Work raised while nghttp2 was sending, done once it returns.
  std::vector<std::pair<Stream*, http::StreamResetReason>> pending_resets_;
  std::vector<Stream*> pending_low_watermark_;
  std::vector<int32_t> early_resets_;

  event::TimerPtr deferred_timer_;
  event::TimerPtr keepalive_timer_;
  event::TimerPtr keepalive_timeout_timer_;
  uint64_t keepalive_ping_id_{0};

  uint32_t conn_error_code_{0};
  uint32_t callback_error_code_{0}; // why a callback failed the session
  std::string error_detail_;
  bool in_recv_{false};
  bool in_send_{false};
  bool in_dispatch_{false};
  bool flushing_{false};
  bool flush_again_{false};
  bool watermark_blocked_{false};
  bool outbound_flood_{false};
  bool flood_handled_{false};
  bool close_scheduled_{false};
  bool connection_closed_{false};
  bool goaway_sent_{false};
  bool goaway_received_{false};
};

class ServerConnection : public ConnectionBase, public http::CodecConnection {
public:
  ServerConnection(network::Connection& connection, http::ServerConnectionCallbacks& callbacks,
                   const Settings& settings = {});

  // http::CodecConnection
  absl::Status dispatch(buffer::Buffer& data) override { return dispatchInput(data); }
  http::Protocol protocol() const override { return http::Protocol::Http2; }
  void onPeerClosed() override { onTransportEnded(); }

  // Server side of an HTTP/1.1 "Upgrade: h2c" (RFC 7540 3.2), on a codec made after the
  // 101 went out (its SETTINGS must follow the 101). `request` is the HTTP/1.1 request
  // that asked, without a body; it becomes stream 1, half-closed by the client, and goes
  // to the callbacks as an HTTP/2 request (its connection-specific and upgrade fields
  // dropped); its response goes out on stream 1. `http2_settings` is its HTTP2-Settings
  // value: the client's SETTINGS. An error (a malformed value, nghttp2 refusing it) leaves
  // no stream; the connection cannot go back to HTTP/1.1, so the owner closes it.
  absl::Status upgradeFromHttp1(absl::string_view http2_settings, http::HeaderMapPtr request);

private:
  http::StreamDecoder* onNewRequest(http::StreamEncoder& encoder) override {
    return &callbacks_.newStream(encoder);
  }

  http::ServerConnectionCallbacks& callbacks_;
};

class ClientConnection : public ConnectionBase, public http::ClientConnection {
public:
  ClientConnection(network::Connection& connection, const Settings& settings = {});

  // http::CodecConnection
  absl::Status dispatch(buffer::Buffer& data) override { return dispatchInput(data); }
  http::Protocol protocol() const override { return http::Protocol::Http2; }
  void onPeerClosed() override { onTransportEnded(); }
  // http::ClientConnection
  http::StreamEncoder& newStream(http::StreamDecoder& response_decoder) override;
  // False once a GOAWAY went either way, after a connection error or close, or when
  // stream ids run out.
  bool reusable() const override;

  // Another stream fits now: reusable and below the peer's concurrency limit.
  bool canCreateStream() const;
};

} // namespace http2
} // namespace tern
