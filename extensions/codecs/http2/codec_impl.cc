#include "extensions/codecs/http2/codec_impl.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/container/inlined_vector.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "extensions/codecs/http2/allocator.h"
#include "source/common/common/logger.h"

namespace tern {
namespace http2 {

namespace {

constexpr absl::string_view kPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
constexpr uint32_t kMaxWindow = std::numeric_limits<int32_t>::max();

absl::string_view view(const uint8_t* p, size_t n) {
  return absl::string_view(reinterpret_cast<const char*>(p), n);
}

// Fields nghttp2 copies on submit: names and values point into the caller's strings.
class NvList {
public:
  void add(absl::string_view name, absl::string_view value) {
    nva_.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE});
  }
  const nghttp2_nv* data() const { return nva_.data(); }
  size_t size() const { return nva_.size(); }

private:
  absl::InlinedVector<nghttp2_nv, 16> nva_;
};

// Connection-specific fields have no meaning in HTTP/2 (RFC 9113 8.2.2), nor do the
// fields the Connection header nominates.
bool connectionSpecific(absl::string_view name, absl::string_view value,
                        absl::string_view connection) {
  if (name == "te") return !absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(value), "trailers");
  if (http::isHopByHop(name)) return true;
  if (connection.empty()) return false;
  for (absl::string_view token : absl::StrSplit(connection, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(token), name)) return true;
  }
  return false;
}

// The regular fields of `headers` that may travel in HTTP/2.
void addFields(const http::HeaderMap& headers, NvList& nva, absl::string_view connection) {
  for (const auto& [name, value] : headers.entries()) {
    absl::string_view n(name), v(value);
    if (n.empty() || n[0] == ':' || n == "host") continue;
    if (connectionSpecific(n, v, connection)) continue;
    nva.add(n, v);
  }
}

uint32_t resetCode(http::StreamResetReason reason) {
  switch (reason) {
  case http::StreamResetReason::ProtocolError: return NGHTTP2_PROTOCOL_ERROR;
  case http::StreamResetReason::Overflow: return NGHTTP2_REFUSED_STREAM;
  default: return NGHTTP2_CANCEL;
  }
}

} // namespace

PrefaceStatus detectPreface(const buffer::Buffer& data) {
  size_t n = std::min(data.length(), kPreface.size());
  char buf[24];
  data.copyOut(0, n, buf);
  if (absl::string_view(buf, n) != kPreface.substr(0, n)) return PrefaceStatus::Http1;
  return n == kPreface.size() ? PrefaceStatus::Http2 : PrefaceStatus::NeedMoreData;
}

bool hasHttp2Preface(const buffer::Buffer& data) {
  return detectPreface(data) == PrefaceStatus::Http2;
}

// ---------------------------------------------------------------------------------------
// Stream

class ConnectionBase::Stream : public http::StreamEncoder, public event::DeferredDeletable {
public:
  TERN_RECYCLED(Stream)
  explicit Stream(ConnectionBase& parent)
      : parent_(parent), rx_frame_(&parent.connection_.dispatcher().blockPool()),
        rx_pending_(&parent.connection_.dispatcher().blockPool()),
        tx_pending_(&parent.connection_.dispatcher().blockPool()) {}

  // http::StreamEncoder
  void encode1xxHeaders(const http::HeaderMap& headers) override;
  void encodeHeaders(const http::HeaderMap& headers, bool end_stream) override;
  void encodeData(buffer::Buffer& data, bool end_stream) override;
  void encodeTrailers(const http::HeaderMap& trailers) override;
  void addCallbacks(http::StreamCallbacks& cb) override { callbacks_.push_back(&cb); }
  void removeCallbacks(http::StreamCallbacks& cb) override;
  void resetStream(http::StreamResetReason reason) override;
  void readDisable(bool disable) override;

  bool gone() const { return reset_by_owner_ || reset_notified_; }
  bool readEnabled() const { return read_disable_count_ == 0; }
  bool deliveryPending() const {
    return !rx_pending_.empty() || rx_pending_trailers_ != nullptr || rx_pending_end_;
  }
  bool destroyable() const {
    if (destroyed_ || !closed_) return false;
    if (reset_by_owner_ || reset_notified_ || !announced_) return true;
    // Finished: the owner may still hold the encoder until it removes its callbacks.
    return local_end_ && !deliveryPending() && callbacks_.empty();
  }
  bool hasCallbacks(http::StreamCallbacks* cb) const {
    return std::find(callbacks_.begin(), callbacks_.end(), cb) != callbacks_.end();
  }
  template <class Fn> void runCallbacks(Fn fn) {
    auto cbs = callbacks_; // callbacks may remove themselves
    for (http::StreamCallbacks* cb : cbs) {
      if (hasCallbacks(cb)) fn(*cb);
    }
  }
  void dropInput() {
    rx_frame_.clear();
    rx_pending_.clear();
    rx_pending_trailers_.reset();
    rx_pending_end_ = false;
  }
  nghttp2_data_provider provider() {
    nghttp2_data_provider p;
    p.source.ptr = this;
    p.read_callback = &ConnectionBase::Stream::readCallback;
    return p;
  }
  static ssize_t readCallback(nghttp2_session* session, int32_t stream_id, uint8_t* buf,
                              size_t length, uint32_t* data_flags, nghttp2_data_source* source,
                              void* user_data);
  void onLocalEnd();
  void resumeData() {
    if (data_deferred_ && id_ > 0 && !closed_) {
      data_deferred_ = false;
      nghttp2_session_resume_data(parent_.session_, id_);
    }
  }

  ConnectionBase& parent_;
  StreamList::iterator self_;
  int32_t id_{0};
  http::StreamDecoder* decoder_{nullptr};
  absl::InlinedVector<http::StreamCallbacks*, 2> callbacks_;

  // A header block being received.
  http::HeaderMapPtr rx_headers_;
  std::string rx_host_;
  std::string rx_cookie_;
  size_t rx_header_bytes_{0};
  uint32_t rx_header_count_{0};
  bool rx_too_large_{false};
  bool rx_expect_continue_{false};
  bool rx_final_headers_{false};
  // DATA of the frame being received, then what waits while reading is disabled.
  buffer::Buffer rx_frame_;
  buffer::Buffer rx_pending_;
  http::HeaderMapPtr rx_pending_trailers_;
  bool rx_pending_end_{false};
  uint32_t read_disable_count_{0};
  bool delivery_scheduled_{false};
  bool remote_end_{false}; // END_STREAM received

  // Sending.
  buffer::Buffer tx_pending_;
  std::vector<std::pair<std::string, std::string>> tx_trailers_;
  bool headers_sent_{false};
  bool local_end_{false};      // the owner ended its side
  bool local_end_sent_{false}; // our END_STREAM went out
  bool data_deferred_{false};
  bool above_high_{false};

  bool announced_{false}; // the owner knows the stream
  bool closed_{false};    // closed at the HTTP/2 level, or never opened
  bool destroyed_{false};
  bool reset_by_owner_{false};
  bool reset_notified_{false};
  bool rst_received_{false};
  bool protocol_reset_{false};  // we reset it: a violation or a limit
  bool close_after_end_{false}; // answered before the request ended
};

void ConnectionBase::Stream::encode1xxHeaders(const http::HeaderMap& headers) {
  if (!parent_.server_ || headers_sent_ || gone() || closed_) return;
  NvList nva;
  nva.add(":status", headers.getView(":status"));
  addFields(headers, nva, headers.getView("connection"));
  nghttp2_submit_headers(parent_.session_, NGHTTP2_FLAG_NONE, id_, nullptr, nva.data(),
                         nva.size(), nullptr);
  parent_.flush();
}

void ConnectionBase::Stream::encodeHeaders(const http::HeaderMap& headers, bool end_stream) {
  if (headers_sent_ || gone() || closed_) return;
  NvList nva;
  nghttp2_data_provider prd = provider();
  // One pass for the pseudo-headers and Connection (instead of a lookup each).
  absl::string_view status, method, authority, host, scheme, path, protocol, connection;
  bool has_protocol = false;
  for (const auto& [name, value] : headers.entries()) {
    switch (name.size()) {
    case 4:
      if (name == "host" && host.empty()) host = value;
      break;
    case 5:
      if (name == ":path" && path.empty()) path = value;
      break;
    case 7:
      if (name == ":status" && status.empty()) status = value;
      else if (name == ":method" && method.empty()) method = value;
      else if (name == ":scheme" && scheme.empty()) scheme = value;
      break;
    case 9:
      if (name == ":protocol" && !has_protocol) protocol = value, has_protocol = true;
      break;
    case 10:
      if (name == ":authority" && authority.empty()) authority = value;
      else if (name == "connection" && connection.empty()) connection = value;
      break;
    default:
      break;
    }
  }
  if (parent_.server_) {
    nva.add(":status", status.empty() ? absl::string_view("500") : status);
    addFields(headers, nva, connection);
    headers_sent_ = true;
    nghttp2_submit_response(parent_.session_, id_, nva.data(), nva.size(),
                            end_stream ? nullptr : &prd);
    if (end_stream) onLocalEnd();
    parent_.flush();
    return;
  }
  if (authority.empty()) authority = host;
  std::string remote;
  if (authority.empty()) {
    // HTTP/1.0 sent no Host: name the upstream we talk to, as the HTTP/1 codec does.
    remote = parent_.connection_.remoteAddress().toString();
    authority = remote;
  }
  nva.add(":method", method);
  if (method == "CONNECT" && !has_protocol) {
    nva.add(":authority", authority);
  } else {
    nva.add(":scheme", scheme.empty() ? absl::string_view("http") : scheme);
    nva.add(":authority", authority);
    nva.add(":path", path);
    if (has_protocol) nva.add(":protocol", protocol);
  }
  addFields(headers, nva, connection);
  headers_sent_ = true;
  int32_t id = nghttp2_submit_request(parent_.session_, nullptr, nva.data(), nva.size(),
                                      end_stream ? nullptr : &prd, this);
  if (id < 0) {
    // Out of stream ids, or the session is ending: the request was never sent.
    TERN_LOG(Debug, "http2: request not submitted: %s", nghttp2_strerror(id));
    closed_ = true;
    parent_.active_streams_--;
    parent_.notifyReset(*this, http::StreamResetReason::ConnectionTermination);
    parent_.maybeDestroy(*this);
    return;
  }
  id_ = id;
  if (end_stream) onLocalEnd();
  parent_.flush();
}

void ConnectionBase::Stream::encodeData(buffer::Buffer& data, bool end_stream) {
  if (!headers_sent_ || local_end_ || gone() || closed_) {
    data.clear();
    if (end_stream && closed_ && !local_end_) {
      local_end_ = true; // a stream the peer already finished: nothing more to send
      parent_.maybeDestroy(*this);
    }
    return;
  }
  tx_pending_.move(data);
  if (end_stream) onLocalEnd();
  if (!above_high_ && tx_pending_.length() > parent_.settings_.initial_stream_window_size) {
    above_high_ = true;
    runCallbacks([](http::StreamCallbacks& cb) { cb.onAboveWriteBufferHighWatermark(); });
  }
  resumeData();
  parent_.flush();
}

void ConnectionBase::Stream::encodeTrailers(const http::HeaderMap& trailers) {
  if (!headers_sent_ || local_end_ || gone() || closed_) {
    if (closed_ && !local_end_) {
      local_end_ = true;
      parent_.maybeDestroy(*this);
    }
    return;
  }
  absl::string_view connection = trailers.getView("connection");
  for (const auto& [name, value] : trailers.entries()) {
    absl::string_view n(name), v(value);
    if (n.empty() || n[0] == ':' || connectionSpecific(n, v, connection)) continue;
    tx_trailers_.emplace_back(std::string(n), std::string(v));
  }
  onLocalEnd();
  resumeData();
  parent_.flush();
}

// Everything that follows once the owner has ended its side.
void ConnectionBase::Stream::onLocalEnd() {
  local_end_ = true;
  if (parent_.server_) {
    // The response is complete: whatever of the request is still to come has nobody to
    // go to (the owner may free its decoder now). If the client is still sending, the
    // stream is reset with NO_ERROR once our END_STREAM is out (RFC 9113 8.1).
    decoder_ = nullptr;
    size_t held = rx_pending_.length();
    dropInput();
    if (held > 0) parent_.consumeStream(id_, held);
    if (!remote_end_) close_after_end_ = true;
  }
  parent_.maybeDestroy(*this);
}

void ConnectionBase::Stream::removeCallbacks(http::StreamCallbacks& cb) {
  callbacks_.erase(std::remove(callbacks_.begin(), callbacks_.end(), &cb), callbacks_.end());
  parent_.maybeDestroy(*this);
}

void ConnectionBase::Stream::resetStream(http::StreamResetReason reason) {
  if (gone()) return;
  reset_by_owner_ = true;
  decoder_ = nullptr;
  dropInput();
  tx_pending_.clear();
  tx_trailers_.clear();
  if (!closed_) {
    if (id_ > 0) {
      nghttp2_submit_rst_stream(parent_.session_, NGHTTP2_FLAG_NONE, id_, resetCode(reason));
    } else {
      closed_ = true; // a request never sent
      parent_.active_streams_--;
    }
  }
  parent_.maybeDestroy(*this);
  parent_.flush();
}

void ConnectionBase::Stream::readDisable(bool disable) {
  if (disable) {
    read_disable_count_++;
    return;
  }
  if (read_disable_count_ == 0) return;
  if (--read_disable_count_ == 0 && deliveryPending() && !delivery_scheduled_) {
    // Delivered from the event loop, not from inside the caller.
    delivery_scheduled_ = true;
    parent_.scheduleDeferred();
  }
}

ssize_t ConnectionBase::Stream::readCallback(nghttp2_session* session, int32_t stream_id,
                                             uint8_t* buf, size_t length,
                                             uint32_t* data_flags, nghttp2_data_source*,
                                             void*) {
  // Looked up by id, not through the source pointer: a stream we gave up on (connection
  // closed) has no user data any more.
  auto* s = static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, stream_id));
  if (s == nullptr || s->gone()) return NGHTTP2_ERR_DEFERRED;
  ConnectionBase& c = s->parent_;
  if (!s->tx_pending_.empty() && c.writeBlocked()) {
    // The connection is backed up: its own buffer must drain first. Streams keep their
    // data (and raise their own watermarks) meanwhile.
    s->data_deferred_ = true;
    c.watermark_blocked_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  size_t n = std::min(length, s->tx_pending_.length());
  if (n == 0 && !s->local_end_) {
    s->data_deferred_ = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  if (n > 0) {
    s->tx_pending_.copyOut(0, n, buf);
    s->tx_pending_.drain(n);
  }
  if (s->tx_pending_.empty() && s->local_end_) {
    *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!s->tx_trailers_.empty()) {
      *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      NvList nva;
      for (const auto& [k, v] : s->tx_trailers_) nva.add(k, v);
      nghttp2_submit_trailer(session, stream_id, nva.data(), nva.size());
      s->tx_trailers_.clear();
    }
  }
  if (s->above_high_ && s->tx_pending_.length() <= c.settings_.initial_stream_window_size / 2) {
    s->above_high_ = false;
    c.pending_low_watermark_.push_back(s);
  }
  return static_cast<ssize_t>(n);
}

// ---------------------------------------------------------------------------------------
// nghttp2 callbacks

struct Nghttp2Callbacks {
  using Stream = ConnectionBase::Stream;

  static ConnectionBase& conn(void* user_data) { return *static_cast<ConnectionBase*>(user_data); }
  static Stream* stream(nghttp2_session* session, int32_t id) {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static int onBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame, void* ud) {
    ConnectionBase& c = conn(ud);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (c.server_ && frame->headers.cat == NGHTTP2_HCAT_REQUEST) c.createServerStream(frame->hd.stream_id);
    Stream* s = stream(session, frame->hd.stream_id);
    if (s == nullptr || s->gone()) return 0;
    s->rx_headers_ = std::make_unique<http::HeaderMap>();
    s->rx_host_.clear();
    s->rx_cookie_.clear();
    s->rx_header_bytes_ = 0;
    s->rx_header_count_ = 0;
    s->rx_too_large_ = false;
    return 0;
  }

  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* ud) {
    ConnectionBase& c = conn(ud);
    Stream* s = stream(session, frame->hd.stream_id);
    if (s == nullptr || s->rx_headers_ == nullptr || s->rx_too_large_) return 0;
    // RFC 9113 6.5.2: each field counts its name, value and 32 bytes.
    s->rx_header_bytes_ += namelen + valuelen + 32;
    if (++s->rx_header_count_ > c.settings_.max_headers_count ||
        s->rx_header_bytes_ > size_t{c.settings_.max_header_list_size_kb} * 1024) {
      // nghttp2 keeps decoding (the HPACK table is shared); the block is dropped at its end.
      s->rx_too_large_ = true;
      return 0;
    }
    absl::string_view n = view(name, namelen), v = view(value, valuelen);
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      if (n == "host") {
        if (!s->rx_host_.empty()) return c.malformed(*s, "duplicate host");
        s->rx_host_.assign(v.data(), v.size());
        if (s->rx_host_.empty()) s->rx_host_ = " "; // present but empty: still counts once
        return 0;
      }
      if (n == "cookie") {
        // HTTP/2 may split cookies into several fields; HTTP/1 needs one (RFC 9113 8.2.3).
        if (!s->rx_cookie_.empty()) s->rx_cookie_.append("; ");
        s->rx_cookie_.append(v.data(), v.size());
        return 0;
      }
      if (n == "expect" && absl::EqualsIgnoreCase(v, "100-continue")) {
        s->rx_expect_continue_ = true; // answered here, as the HTTP/1 codec does
        return 0;
      }
    }
    s->rx_headers_->add(n, v);
    return 0;
  }

  // Fields nghttp2 would silently drop (bad characters): reject the message instead.
  static int onInvalidHeader(nghttp2_session*, const nghttp2_frame*, const uint8_t*, size_t,
                             const uint8_t*, size_t, uint8_t, void*) {
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }

  static int onFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* ud) {
    ConnectionBase& c = conn(ud);
    const Settings& cfg = c.settings_;
    // Floods of frames that cost us work but carry nothing (Envoy's inbound limits).
    if (frame->hd.type == NGHTTP2_DATA &&
        frame->hd.length - frame->data.padlen == 0 &&
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      if (++c.consecutive_empty_frames_ > cfg.max_consecutive_inbound_frames_with_empty_payload) {
        return c.flood("too many empty frames");
      }
    } else {
      c.consecutive_empty_frames_ = 0;
    }
    switch (frame->hd.type) {
    case NGHTTP2_DATA: {
      Stream* s = stream(session, frame->hd.stream_id);
      if (s == nullptr) return 0;
      bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (end) s->remote_end_ = true;
      c.onData(*s, end);
      return 0;
    }
    case NGHTTP2_HEADERS: {
      Stream* s = stream(session, frame->hd.stream_id);
      if (s == nullptr || s->rx_headers_ == nullptr) return 0;
      bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
      if (end) s->remote_end_ = true;
      return c.onHeaders(*s, frame->headers.cat, end);
    }
    case NGHTTP2_RST_STREAM: {
      Stream* s = stream(session, frame->hd.stream_id);
      if (s == nullptr) return 0;
      s->rst_received_ = true;
      if (c.server_ && !s->local_end_sent_) {
        // Rapid reset (CVE-2023-44487): streams opened and cancelled before we answer
        // cost us work and the peer nothing.
        c.window_resets_++;
        uint32_t threshold = std::max(cfg.rapid_reset_min, 2 * cfg.max_concurrent_streams);
        if (c.window_resets_ > threshold && uint64_t{c.window_resets_} * 2 > c.window_opened_) {
          return c.flood("too many streams reset by the client");
        }
      }
      return 0;
    }
    case NGHTTP2_PRIORITY:
      if (++c.inbound_priority_frames_ >
          uint64_t{cfg.max_inbound_priority_frames_per_stream} * (1 + c.streams_opened_)) {
        return c.flood("too many PRIORITY frames");
      }
      return 0;
    case NGHTTP2_WINDOW_UPDATE:
      if (++c.inbound_window_update_frames_ >
          5 + 2 * (c.streams_opened_ + uint64_t{cfg.max_inbound_window_update_frames_per_data_frame_sent} *
                                           c.outbound_data_frames_)) {
        return c.flood("too many WINDOW_UPDATE frames");
      }
      return 0;
    case NGHTTP2_PING:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && c.keepalive_timeout_timer_ &&
          std::memcmp(frame->ping.opaque_data, &c.keepalive_ping_id_, 8) == 0) {
        c.keepalive_timeout_timer_->disableTimer();
        c.keepalive_timer_->enableTimer(
            std::chrono::milliseconds(cfg.connection_keepalive_interval_ms));
      }
      return 0;
    case NGHTTP2_GOAWAY:
      c.goaway_received_ = true;
      TERN_LOG(Debug, "http2: GOAWAY received: last stream %d, %s",
               frame->goaway.last_stream_id, nghttp2_http2_strerror(frame->goaway.error_code));
      if (c.conn_callbacks_ != nullptr) c.conn_callbacks_->onGoAway(frame->goaway.error_code);
      return 0;
    default:
      return 0;
    }
  }

  static int onDataChunkRecv(nghttp2_session* session, uint8_t, int32_t stream_id,
                             const uint8_t* data, size_t len, void* ud) {
    ConnectionBase& c = conn(ud);
    c.connection_unconsumed_ += len;
    Stream* s = stream(session, stream_id);
    if (s == nullptr || s->gone() || s->decoder_ == nullptr) {
      c.consumeStream(stream_id, len);
      return 0;
    }
    s->rx_frame_.add(data, len);
    return 0;
  }

  static int onStreamClose(nghttp2_session* session, int32_t stream_id, uint32_t error_code,
                           void* ud) {
    ConnectionBase& c = conn(ud);
    Stream* s = stream(session, stream_id);
    if (s == nullptr) return 0;
    c.onStreamClosed(*s, error_code);
    return 0;
  }

  static int onFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* ud) {
    ConnectionBase& c = conn(ud);
    uint8_t type = frame->hd.type;
    bool control = type == NGHTTP2_RST_STREAM ||
                   ((type == NGHTTP2_PING || type == NGHTTP2_SETTINGS) &&
                    (frame->hd.flags & NGHTTP2_FLAG_ACK));
    c.recordOutboundFrame(control);
    switch (type) {
    case NGHTTP2_DATA:
    case NGHTTP2_HEADERS: {
      if (type == NGHTTP2_DATA) c.outbound_data_frames_++;
      if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) return 0;
      Stream* s = stream(session, frame->hd.stream_id);
      if (s == nullptr) return 0;
      s->local_end_sent_ = true;
      if (s->close_after_end_ && !s->remote_end_) c.early_resets_.push_back(s->id_);
      return 0;
    }
    case NGHTTP2_RST_STREAM: {
      Stream* s = stream(session, frame->hd.stream_id);
      if (s != nullptr && !s->reset_by_owner_ && !s->close_after_end_) s->protocol_reset_ = true;
      return 0;
    }
    case NGHTTP2_GOAWAY:
      // A shutdown notice (last stream 2^31-1) only announces the real one.
      if (frame->goaway.last_stream_id != static_cast<int32_t>(kMaxWindow) ||
          frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        c.goaway_sent_ = true;
      }
      if (frame->goaway.error_code != NGHTTP2_NO_ERROR && c.conn_error_code_ == 0) {
        c.conn_error_code_ = frame->goaway.error_code;
        if (c.error_detail_.empty() && frame->goaway.opaque_data_len > 0) {
          c.error_detail_.assign(reinterpret_cast<const char*>(frame->goaway.opaque_data),
                                 frame->goaway.opaque_data_len);
        }
        TERN_LOG(Debug, "http2: connection error %s: %s",
                 nghttp2_http2_strerror(c.conn_error_code_), c.error_detail_);
      }
      return 0;
    default:
      return 0;
    }
  }

  static int onFrameNotSend(nghttp2_session*, const nghttp2_frame* frame, int, void* ud) {
    // A request that never left (GOAWAY received, stream ids exhausted, cancelled while
    // queued): nghttp2 opened no stream, so no close callback follows.
    ConnectionBase& c = conn(ud);
    if (frame->hd.type != NGHTTP2_HEADERS || c.server_) return 0;
    Stream* s = c.findStream(frame->hd.stream_id);
    if (s == nullptr || s->closed_) return 0;
    s->closed_ = true;
    c.active_streams_--;
    if (!s->gone()) c.notifyReset(*s, http::StreamResetReason::RefusedStream); // never sent
    c.maybeDestroy(*s);
    return 0;
  }

  static int onInvalidFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                                int lib_error_code, void* ud) {
    ConnectionBase& c = conn(ud);
    if (lib_error_code != NGHTTP2_ERR_HTTP_HEADER && lib_error_code != NGHTTP2_ERR_HTTP_MESSAGING) {
      return 0; // nghttp2 handles the rest itself (GOAWAY or RST_STREAM)
    }
    if (!c.settings_.stream_error_on_invalid_http_messaging) {
      c.callback_error_code_ = NGHTTP2_PROTOCOL_ERROR;
      c.error_detail_ = "malformed HTTP message";
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    // nghttp2 has queued RST_STREAM(PROTOCOL_ERROR) for it.
    Stream* s = stream(session, frame->hd.stream_id);
    if (s != nullptr) {
      s->protocol_reset_ = true;
      s->rx_headers_.reset();
    }
    return 0;
  }

  static int onError(nghttp2_session*, int, const char* msg, size_t len, void*) {
    TERN_LOG(Debug, "http2: %s", absl::string_view(msg, len));
    return 0;
  }

  static const nghttp2_session_callbacks* get() {
    static const nghttp2_session_callbacks* callbacks = [] {
      nghttp2_session_callbacks* cb;
      nghttp2_session_callbacks_new(&cb);
      nghttp2_session_callbacks_set_on_begin_headers_callback(cb, onBeginHeaders);
      nghttp2_session_callbacks_set_on_header_callback(cb, onHeader);
      nghttp2_session_callbacks_set_on_invalid_header_callback(cb, onInvalidHeader);
      nghttp2_session_callbacks_set_on_frame_recv_callback(cb, onFrameRecv);
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, onDataChunkRecv);
      nghttp2_session_callbacks_set_on_stream_close_callback(cb, onStreamClose);
      nghttp2_session_callbacks_set_on_frame_send_callback(cb, onFrameSend);
      nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, onFrameNotSend);
      nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, onInvalidFrameRecv);
      nghttp2_session_callbacks_set_error_callback2(cb, onError);
      return cb;
    }();
    return callbacks;
  }
};

// ---------------------------------------------------------------------------------------
// Connection

ConnectionBase::ConnectionBase(network::Connection& connection, const Settings& settings,
                               bool server)
    : connection_(connection), settings_(settings), server_(server),
      out_(&connection.dispatcher().blockPool()) {
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  // Windows open only as the owner takes data: a stream whose reader is paused stalls
  // alone.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_no_closed_streams(opt, 1);
  // ACKs nghttp2 queues before we get to send them: the same cap as ours below.
  nghttp2_option_set_max_outbound_ack(opt, settings.max_outbound_control_frames);
  if (server) {
    nghttp2_session_server_new3(&session_, Nghttp2Callbacks::get(), this, opt, sessionAllocator());
  } else {
    nghttp2_session_client_new3(&session_, Nghttp2Callbacks::get(), this, opt, sessionAllocator());
  }
  nghttp2_option_del(opt);

  absl::InlinedVector<nghttp2_settings_entry, 5> iv = {
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, settings.hpack_table_size},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
       std::min(settings.initial_stream_window_size, kMaxWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.max_header_list_size_kb * 1024},
  };
  if (!server) iv.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  uint32_t conn_window = std::min(settings.initial_connection_window_size, kMaxWindow);
  if (conn_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(conn_window));
  }
  startKeepalive();
  flush();
}

ConnectionBase::~ConnectionBase() {
  deferred_timer_.reset();
  keepalive_timer_.reset();
  keepalive_timeout_timer_.reset();
  nghttp2_session_del(session_);
  session_ = nullptr;
}

uint32_t ConnectionBase::peerMaxConcurrentStreams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void ConnectionBase::createServerStream(int32_t id) { addServerStream(id); }

ConnectionBase::Stream& ConnectionBase::addServerStream(int32_t id) {
  // A window of opened streams for the rapid-reset rule.
  if (window_opened_ >= settings_.rapid_reset_window_streams) {
    window_opened_ = 0;
    window_resets_ = 0;
  }
  window_opened_++;
  streams_opened_++;
  auto s = std::make_unique<Stream>(*this);
  s->id_ = id;
  Stream& ref = *s;
  streams_.push_back(std::move(s));
  ref.self_ = std::prev(streams_.end());
  active_streams_++;
  nghttp2_session_set_stream_user_data(session_, id, &ref);
  return ref;
}

absl::Status ConnectionBase::acceptUpgrade(absl::string_view settings_payload,
                                           http::HeaderMapPtr request) {
  if (!server_ || connection_closed_ || conn_error_code_ != 0) {
    return absl::FailedPreconditionError("http2: no upgrade on this connection");
  }
  // The client's SETTINGS take effect as if received in a frame (invalid values are a
  // connection error, as they would be there); stream 1 opens half-closed (remote).
  int rv = nghttp2_session_upgrade2(
      session_, reinterpret_cast<const uint8_t*>(settings_payload.data()), settings_payload.size(),
      request->method() == "HEAD", nullptr);
  if (rv != 0) {
    return absl::InvalidArgumentError(absl::StrCat("http2: upgrade: ", nghttp2_strerror(rv)));
  }
  std::string connection; // HTTP/1 may spread it over several fields
  for (const auto& [name, value] : request->entries()) {
    if (name == "connection") absl::StrAppend(&connection, connection.empty() ? "" : ",", value);
  }
  auto headers = std::make_unique<http::HeaderMap>();
  for (const auto& [name, value] : request->entries()) {
    if (name == "http2-settings" || connectionSpecific(name, value, connection)) continue;
    headers->add(name, value);
  }
  Stream& s = addServerStream(1);
  s.remote_end_ = true;
  s.announced_ = true;
  s.decoder_ = onNewRequest(s);
  if (s.decoder_ == nullptr) {
    s.resetStream(http::StreamResetReason::Overflow);
  } else {
    s.decoder_->decodeHeaders(std::move(headers), true);
  }
  flush();
  return absl::OkStatus();
}

ConnectionBase::Stream& ConnectionBase::createClientStream(http::StreamDecoder& decoder) {
  streams_opened_++;
  auto s = std::make_unique<Stream>(*this);
  s->decoder_ = &decoder;
  s->announced_ = true;
  Stream& ref = *s;
  streams_.push_back(std::move(s));
  ref.self_ = std::prev(streams_.end());
  active_streams_++;
  return ref;
}

ConnectionBase::Stream* ConnectionBase::findStream(int32_t id) {
  for (auto& s : streams_) {
    if (s->id_ == id) return s.get();
  }
  return nullptr;
}

int ConnectionBase::flood(const char* what) {
  callback_error_code_ = NGHTTP2_ENHANCE_YOUR_CALM;
  error_detail_ = what;
  return NGHTTP2_ERR_CALLBACK_FAILURE;
}

int ConnectionBase::malformed(Stream& s, const char* what) {
  if (!settings_.stream_error_on_invalid_http_messaging) {
    callback_error_code_ = NGHTTP2_PROTOCOL_ERROR;
    error_detail_ = what;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  s.protocol_reset_ = true;
  s.rx_headers_.reset();
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id_, NGHTTP2_PROTOCOL_ERROR);
  return 0;
}

int ConnectionBase::onHeaders(Stream& s, int category, bool end_stream) {
  http::HeaderMapPtr headers = std::move(s.rx_headers_);
  if (s.rx_too_large_) {
    if (server_ && category == NGHTTP2_HCAT_REQUEST) {
      // Not announced: answer it here, as the HTTP/1 codec does.
      NvList nva;
      nva.add(":status", "431");
      s.headers_sent_ = true;
      nghttp2_submit_response(session_, s.id_, nva.data(), nva.size(), nullptr);
      s.onLocalEnd();
    } else {
      s.protocol_reset_ = true;
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id_, NGHTTP2_PROTOCOL_ERROR);
    }
    return 0;
  }
  if (!s.rx_cookie_.empty()) headers->add("cookie", s.rx_cookie_);
  if (!s.rx_host_.empty()) {
    absl::string_view host = s.rx_host_ == " " ? absl::string_view() : s.rx_host_;
    if (!headers->has(":authority")) {
      headers->add(":authority", host);
    } else if (headers->getView(":authority") != host) {
      return malformed(s, "host differs from :authority");
    }
  }
  if (s.gone()) return 0;

  if (server_ && category == NGHTTP2_HCAT_REQUEST) {
    s.announced_ = true;
    s.decoder_ = onNewRequest(s);
    if (s.decoder_ == nullptr) {
      s.resetStream(http::StreamResetReason::Overflow);
      return 0;
    }
    if (s.rx_expect_continue_ && !end_stream) {
      NvList nva;
      nva.add(":status", "100");
      nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, s.id_, nullptr, nva.data(), nva.size(),
                             nullptr);
    }
    if (!s.gone() && s.decoder_ != nullptr) s.decoder_->decodeHeaders(std::move(headers), end_stream);
    return 0;
  }
  if (!server_ && !s.rx_final_headers_) {
    absl::string_view status = headers->getView(":status");
    if (!status.empty() && status[0] == '1' && status != "101") {
      if (s.decoder_ != nullptr) s.decoder_->decode1xxHeaders(std::move(headers));
      return 0;
    }
    s.rx_final_headers_ = true;
    if (s.decoder_ != nullptr) s.decoder_->decodeHeaders(std::move(headers), end_stream);
    return 0;
  }
  // Trailers (nghttp2 made sure they end the stream).
  if (s.decoder_ == nullptr) return 0;
  if (!s.readEnabled() || s.deliveryPending()) {
    s.rx_pending_trailers_ = std::move(headers);
    s.rx_pending_end_ = true;
    return 0;
  }
  s.decoder_->decodeTrailers(std::move(headers));
  return 0;
}

void ConnectionBase::onData(Stream& s, bool end_stream) {
  size_t len = s.rx_frame_.length();
  if (s.gone() || s.decoder_ == nullptr) {
    s.rx_frame_.clear();
    return; // consumed as it arrived
  }
  if (len == 0 && !end_stream) return;
  if (!s.readEnabled() || s.deliveryPending()) {
    // Held, and its window stays closed, until the owner reads again.
    s.rx_pending_.move(s.rx_frame_);
    if (end_stream) s.rx_pending_end_ = true;
    return;
  }
  s.decoder_->decodeData(s.rx_frame_, end_stream);
  s.rx_frame_.clear();
  if (len > 0) consumeStream(s.id_, len);
}

void ConnectionBase::deliverPending(Stream& s) {
  if (s.gone() || s.decoder_ == nullptr) {
    size_t held = s.rx_pending_.length();
    s.dropInput();
    if (held > 0) consumeStream(s.id_, held);
  } else if (s.readEnabled()) {
    bool trailers = s.rx_pending_trailers_ != nullptr;
    if (!s.rx_pending_.empty() || (s.rx_pending_end_ && !trailers)) {
      size_t len = s.rx_pending_.length();
      bool end = s.rx_pending_end_ && !trailers;
      if (end) s.rx_pending_end_ = false;
      s.decoder_->decodeData(s.rx_pending_, end);
      s.rx_pending_.clear();
      if (len > 0) consumeStream(s.id_, len);
    }
    if (trailers && !s.gone() && s.decoder_ != nullptr && s.readEnabled()) {
      http::HeaderMapPtr t = std::move(s.rx_pending_trailers_);
      s.rx_pending_end_ = false;
      s.decoder_->decodeTrailers(std::move(t));
    }
  }
  maybeDestroy(s);
}

void ConnectionBase::consumeStream(int32_t id, size_t len) {
  if (in_recv_) {
    stream_unconsumed_.emplace_back(id, len);
  } else if (!connection_closed_) {
    nghttp2_session_consume_stream(session_, id, len);
  }
}

void ConnectionBase::applyConsumption() {
  if (connection_unconsumed_ > 0) {
    nghttp2_session_consume_connection(session_, connection_unconsumed_);
    connection_unconsumed_ = 0;
  }
  for (const auto& [id, len] : stream_unconsumed_) nghttp2_session_consume_stream(session_, id, len);
  stream_unconsumed_.clear();
}

void ConnectionBase::onStreamClosed(Stream& s, uint32_t error_code) {
  if (!s.closed_) {
    s.closed_ = true;
    active_streams_--;
  }
  if (!s.gone() && s.announced_ && !s.close_after_end_) {
    bool complete = s.remote_end_ && s.local_end_sent_;
    // A server may end a stream whose response is complete with RST_STREAM(NO_ERROR)
    // while the request is still going: the response stands.
    bool answered = !server_ && s.remote_end_ && error_code == NGHTTP2_NO_ERROR;
    if (!complete && !answered) {
      // nghttp2 closes streams beyond a received GOAWAY's last stream id with
      // REFUSED_STREAM, as it does for a peer's RST_STREAM(REFUSED_STREAM).
      http::StreamResetReason reason =
          error_code == NGHTTP2_REFUSED_STREAM ? http::StreamResetReason::RefusedStream
          : s.rst_received_    ? http::StreamResetReason::RemoteReset
          : s.protocol_reset_ ? http::StreamResetReason::ProtocolError
                              // refused by GOAWAY, or the session ended
                              : http::StreamResetReason::ConnectionTermination;
      notifyReset(s, reason);
    }
  }
  maybeDestroy(s);
}

void ConnectionBase::notifyReset(Stream& s, http::StreamResetReason reason) {
  s.reset_notified_ = true;
  s.decoder_ = nullptr;
  s.dropInput();
  s.tx_pending_.clear();
  s.tx_trailers_.clear();
  if (in_send_) {
    // Not from inside nghttp2's send: after it returns.
    pending_resets_.emplace_back(&s, reason);
    return;
  }
  s.runCallbacks([reason](http::StreamCallbacks& cb) { cb.onResetStream(reason); });
}

void ConnectionBase::maybeDestroy(Stream& s) {
  if (!s.destroyable()) return;
  s.destroyed_ = true;
  if (s.id_ > 0 && session_ != nullptr) nghttp2_session_set_stream_user_data(session_, s.id_, nullptr);
  std::unique_ptr<Stream> owned = std::move(*s.self_);
  streams_.erase(s.self_);
  // The owner may be on the stack with this encoder: free it after this turn.
  connection_.dispatcher().deferredDelete(std::move(owned));
}

void ConnectionBase::resetAllStreams(http::StreamResetReason reason, bool only_unfinished_input) {
  std::vector<Stream*> all;
  all.reserve(streams_.size());
  for (auto& s : streams_) all.push_back(s.get());
  for (Stream* s : all) {
    if (s->destroyed_ || (only_unfinished_input && s->remote_end_)) continue;
    if (!s->closed_) {
      s->closed_ = true;
      active_streams_--;
    }
    if (s->id_ > 0) nghttp2_session_set_stream_user_data(session_, s->id_, nullptr);
    if (!s->gone() && s->announced_) notifyReset(*s, reason);
    s->reset_notified_ = true;
    maybeDestroy(*s);
  }
}

void ConnectionBase::onConnectionClosed() {
  if (connection_closed_) return;
  connection_closed_ = true;
  if (keepalive_timer_) keepalive_timer_->disableTimer();
  if (keepalive_timeout_timer_) keepalive_timeout_timer_->disableTimer();
  resetAllStreams(http::StreamResetReason::ConnectionTermination, false);
}

void ConnectionBase::onTransportEnded() {
  resetAllStreams(http::StreamResetReason::ConnectionTermination, true);
}

void ConnectionBase::onBelowWriteBufferLowWatermark() {
  if (watermark_blocked_) flush();
}

bool ConnectionBase::writeBlocked() const {
  return connection_.aboveHighWatermark() || out_.length() >= connection_.bufferLimit();
}

void ConnectionBase::goAway() {
  if (goaway_sent_ || connection_closed_) return;
  goaway_sent_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  flush();
}

void ConnectionBase::shutdownNotice() {
  if (!server_ || goaway_sent_ || connection_closed_) return;
  nghttp2_submit_shutdown_notice(session_);
  flush();
}

absl::Status ConnectionBase::dispatchInput(buffer::Buffer& data) {
  if (conn_error_code_ != 0 || connection_closed_) {
    data.clear();
    return conn_error_code_ != 0 ? errorStatus() : absl::OkStatus();
  }
  in_dispatch_ = true;
  in_recv_ = true;
  ssize_t rv = 0;
  while (!data.empty() && rv >= 0) {
    iovec iov[buffer::Buffer::kMaxReserve];
    size_t n = data.getReadableSlices(iov, buffer::Buffer::kMaxReserve);
    size_t done = 0;
    for (size_t i = 0; i < n && rv >= 0; i++) {
      rv = nghttp2_session_mem_recv(session_, static_cast<const uint8_t*>(iov[i].iov_base),
                                    iov[i].iov_len);
      done += iov[i].iov_len;
    }
    data.drain(std::min(done, data.length()));
  }
  in_recv_ = false;
  data.clear();
  if (rv < 0) {
    uint32_t code = callback_error_code_;
    if (code == 0) {
      code = rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC ? NGHTTP2_PROTOCOL_ERROR
             : rv == NGHTTP2_ERR_FLOODED        ? NGHTTP2_ENHANCE_YOUR_CALM
                                                : NGHTTP2_INTERNAL_ERROR;
      if (error_detail_.empty()) error_detail_ = nghttp2_strerror(static_cast<int>(rv));
    }
    // GOAWAY naming the last stream we processed; nothing more is read after it.
    nghttp2_session_terminate_session(session_, code);
    flush();
    if (conn_error_code_ == 0) conn_error_code_ = code; // nghttp2 had ended the session already
  } else {
    applyConsumption();
    flush();
  }
  in_dispatch_ = false;
  if (conn_error_code_ != 0) {
    resetAllStreams(http::StreamResetReason::ProtocolError, false);
    return errorStatus();
  }
  return absl::OkStatus();
}

absl::Status ConnectionBase::errorStatus() const {
  std::string msg = absl::StrCat("http2: ", nghttp2_http2_strerror(conn_error_code_));
  if (!error_detail_.empty()) absl::StrAppend(&msg, ": ", error_detail_);
  return conn_error_code_ == NGHTTP2_ENHANCE_YOUR_CALM ? absl::ResourceExhaustedError(msg)
                                                       : absl::InvalidArgumentError(msg);
}

void ConnectionBase::flush() {
  if (in_recv_) return; // dispatch flushes once nghttp2 returns
  if (flushing_) {
    flush_again_ = true;
    return;
  }
  flushing_ = true;
  do {
    flush_again_ = false;
    if (watermark_blocked_ && !connection_.aboveHighWatermark()) {
      watermark_blocked_ = false;
      for (auto& s : streams_) {
        if (!s->tx_pending_.empty()) s->resumeData();
      }
    }
    sendPending();
    if (outbound_flood_ && !flood_handled_) {
      flood_handled_ = true;
      if (error_detail_.empty()) error_detail_ = "too many frames queued for a peer that does not read";
      nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
      flush_again_ = true;
    }
    runDeferred();
    if (watermark_blocked_ && !connection_.aboveHighWatermark()) flush_again_ = true;
  } while (flush_again_ && !connection_closed_);
  flushing_ = false;
  if (conn_error_code_ != 0 && !in_dispatch_ && !close_scheduled_ && !connection_closed_) {
    // An error found while sending (outbound flood): nobody will read a dispatch() status,
    // so close from the event loop, after the GOAWAY.
    close_scheduled_ = true;
    scheduleDeferred();
  }
}

void ConnectionBase::sendPending() {
  if (connection_closed_) return;
  in_send_ = true;
  for (;;) {
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &p);
    if (n < 0) {
      TERN_LOG(Debug, "http2: send failed: %s", nghttp2_strerror(static_cast<int>(n)));
      if (conn_error_code_ == 0) conn_error_code_ = NGHTTP2_INTERNAL_ERROR;
      break;
    }
    if (n == 0) break;
    out_.add(p, static_cast<size_t>(n));
  }
  in_send_ = false;
  if (!out_.empty()) {
    bytes_written_ += out_.length();
    connection_.write(out_, false);
    out_.clear(); // a closed connection leaves it
  }
}

void ConnectionBase::runDeferred() {
  if (!early_resets_.empty()) {
    for (int32_t id : early_resets_) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
    }
    early_resets_.clear();
    flush_again_ = true;
  }
  if (!pending_resets_.empty()) {
    auto resets = std::move(pending_resets_);
    pending_resets_.clear();
    for (auto& [s, reason] : resets) {
      http::StreamResetReason r = reason;
      s->runCallbacks([r](http::StreamCallbacks& cb) { cb.onResetStream(r); });
    }
  }
  if (!pending_low_watermark_.empty()) {
    auto lows = std::move(pending_low_watermark_);
    pending_low_watermark_.clear();
    for (Stream* s : lows) {
      if (s->gone() || s->above_high_) continue;
      s->runCallbacks([](http::StreamCallbacks& cb) { cb.onBelowWriteBufferLowWatermark(); });
    }
  }
}

void ConnectionBase::scheduleDeferred() {
  if (!deferred_timer_) {
    deferred_timer_ = connection_.dispatcher().createTimer([this] { onDeferredTimer(); });
  }
  if (!deferred_timer_->enabled()) deferred_timer_->enableTimer(std::chrono::milliseconds(0));
}

void ConnectionBase::onDeferredTimer() {
  if (connection_closed_) return;
  if (close_scheduled_) {
    connection_.close(network::ConnectionCloseType::FlushWrite);
    return;
  }
  std::vector<Stream*> ready;
  for (auto& s : streams_) {
    if (s->delivery_scheduled_) ready.push_back(s.get());
  }
  for (Stream* s : ready) {
    s->delivery_scheduled_ = false;
    if (!s->destroyed_) deliverPending(*s);
  }
  flush();
}

void ConnectionBase::recordOutboundFrame(bool control) {
  // Frames whose first byte the connection has passed on to the socket are gone.
  uint64_t buffered = connection_.bytesBuffered();
  uint64_t drained = bytes_written_ > buffered ? bytes_written_ - buffered : 0;
  while (outbound_head_ < outbound_.size() && outbound_[outbound_head_].offset < drained) {
    if (outbound_[outbound_head_].control) outbound_control_--;
    outbound_head_++;
  }
  if (outbound_head_ == outbound_.size()) {
    outbound_.clear();
    outbound_head_ = 0;
  } else if (outbound_head_ > 64 && outbound_head_ * 2 > outbound_.size()) {
    outbound_.erase(outbound_.begin(), outbound_.begin() + outbound_head_);
    outbound_head_ = 0;
  }
  outbound_.push_back({bytes_written_ + out_.length(), control});
  if (control) outbound_control_++;
  size_t frames = outbound_.size() - outbound_head_;
  if (frames > settings_.max_outbound_frames ||
      outbound_control_ > settings_.max_outbound_control_frames) {
    outbound_flood_ = true;
  }
}

void ConnectionBase::startKeepalive() {
  if (settings_.connection_keepalive_interval_ms == 0) return;
  keepalive_timer_ = connection_.dispatcher().createTimer([this] { onKeepaliveTimer(); });
  keepalive_timeout_timer_ = connection_.dispatcher().createTimer([this] {
    TERN_LOG(Debug, "http2: no PING ACK within %dms: closing", settings_.connection_keepalive_timeout_ms);
    connection_.setCloseReason("http2 keepalive timeout");
    connection_.close(network::ConnectionCloseType::NoFlush);
  });
  keepalive_timer_->enableTimer(std::chrono::milliseconds(settings_.connection_keepalive_interval_ms));
}

void ConnectionBase::onKeepaliveTimer() {
  if (connection_closed_ || conn_error_code_ != 0) return;
  keepalive_ping_id_++;
  uint8_t opaque[8];
  std::memcpy(opaque, &keepalive_ping_id_, 8);
  nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, opaque);
  keepalive_timeout_timer_->enableTimer(
      std::chrono::milliseconds(settings_.connection_keepalive_timeout_ms));
  flush();
}

// ---------------------------------------------------------------------------------------

ServerConnection::ServerConnection(network::Connection& connection,
                                   http::ServerConnectionCallbacks& callbacks,
                                   const Settings& settings)
    : ConnectionBase(connection, settings, true), callbacks_(callbacks) {}

ClientConnection::ClientConnection(network::Connection& connection, const Settings& settings)
    : ConnectionBase(connection, settings, false) {}

absl::Status ServerConnection::upgradeFromHttp1(absl::string_view http2_settings,
                                                http::HeaderMapPtr request) {
  std::string payload;
  if (!http::decodeHttp2Settings(http2_settings, &payload)) {
    return absl::InvalidArgumentError("http2: malformed HTTP2-Settings");
  }
  return acceptUpgrade(payload, std::move(request));
}

http::StreamEncoder& ClientConnection::newStream(http::StreamDecoder& response_decoder) {
  return createClientStream(response_decoder);
}

bool ClientConnection::reusable() const {
  return !goAwaySent() && !goAwayReceived() && connectionError() == 0 && !connectionClosed() &&
         nghttp2_session_get_next_stream_id(session()) <= uint32_t{kMaxWindow};
}

bool ClientConnection::canCreateStream() const {
  return reusable() && activeStreams() < peerMaxConcurrentStreams();
}

} // namespace http2
} // namespace tern
