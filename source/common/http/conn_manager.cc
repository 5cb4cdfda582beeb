#include "source/common/http/conn_manager.h"

#include <optional>
#include <random>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "source/common/common/logger.h"
#include "source/common/event/idle_timer.h"
#include "source/common/http/grpc.h"

namespace tern {
namespace http {

namespace {

std::string uuid4() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  uint64_t a = rng(), b = rng();
  a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull; // version 4
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull; // variant 10
  // 8-4-4-4-12 hex digits; written directly (StrFormat cost ~2k instructions a request).
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(36, '-');
  int pos = 0;
  auto put = [&](uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; i--) out[pos + i] = kHex[v & 15], v >>= 4;
    pos += digits + 1;
  };
  put(a >> 32, 8);
  put((a >> 16) & 0xffff, 4);
  put(a & 0xffff, 4);
  put(b >> 48, 4);
  put(b & 0xffffffffffffull, 12);
  return out;
}

const char* protocolName(Protocol p) {
  switch (p) {
  case Protocol::Http10: return "HTTP/1.0";
  case Protocol::Http11: return "HTTP/1.1";
  case Protocol::Http2: return "HTTP/2";
  }
  return "";
}

} // namespace

// One request/response exchange and its filter chains.
class ConnectionManager::ActiveStream : public event::DeferredDeletable,
                                        public StreamDecoder,
                                        public StreamCallbacks,
                                        public StreamDecoderFilterCallbacks,
                                        public StreamEncoderFilterCallbacks,
                                        public FilterChainFactoryCallbacks {
public:
  TERN_RECYCLED(ActiveStream)
  ActiveStream(ConnectionManager& parent, StreamEncoder& response, uint64_t id)
      : parent_(parent), response_(response), id_(id),
        decode_buffer_(&parent.connection_->dispatcher().blockPool()),
        encode_buffer_(&parent.connection_->dispatcher().blockPool()) {
    response_.addCallbacks(*this);
    info_.start_time = dispatcher().systemNow();
    info_.start_mono = dispatcher().now();
    info_.downstream_remote = parent.connection_->remoteAddress();
    info_.downstream_local = parent.connection_->localAddress();
    for (const auto& f : parent_.config_->filter_factories) f(*this);
    parent_.config_->stats->downstream_rq_total.inc();
    parent_.config_->stats->downstream_rq_active.inc();
    if (parent_.config_->stream_idle_timeout.count() > 0) {
      idle_timer_.emplace(
          dispatcher(), parent_.config_->stream_idle_timeout, [this] { onIdleTimeout(); });
    }
    if (parent_.config_->request_timeout.count() > 0) {
      request_timer_ = dispatcher().createTimer([this] {
        parent_.config_->stats->downstream_rq_timeout.inc();
        info_.addFlag("DT");
        sendLocalReply(timeoutCode(), "request timeout", nullptr, "request_overall_timeout");
      });
      request_timer_->enableTimer(parent_.config_->request_timeout);
    }
  }

  ~ActiveStream() override = default;

  // FilterChainFactoryCallbacks
  void addStreamDecoderFilter(StreamDecoderFilterSharedPtr f) override {
    f->setDecoderFilterCallbacks(*this);
    decoders_.push_back(std::move(f));
  }
  void addStreamEncoderFilter(StreamEncoderFilterSharedPtr f) override {
    f->setEncoderFilterCallbacks(*this);
    encoders_.insert(encoders_.begin(), std::move(f)); // encoders run in reverse order
  }

  // StreamDecoder (from the codec)
  void decodeHeaders(HeaderMapPtr headers, bool end_stream) override {
    request_headers_ = std::move(headers);
    info_.downstream_protocol = parent_.codec_->protocol();
    info_.protocol = protocolName(info_.downstream_protocol);
    mutateRequestHeaders(*request_headers_);
    request_end_ = end_stream;
    if (end_stream) onRequestComplete();
    runDecodeHeaders(0);
  }
  void decodeData(buffer::Buffer& data, bool end_stream) override {
    touch();
    info_.bytes_received += data.length();
    request_end_ = end_stream;
    if (end_stream) onRequestComplete();
    if (decode_headers_at_ < decoders_.size() || decode_data_stopped_) {
      // A filter holds the headers (or buffers the body): keep the data for it.
      if (decode_buffer_.length() + data.length() > bufferLimit()) {
        parent_.config_->stats->downstream_rq_too_large.inc();
        sendLocalReply(413, "request payload too large", nullptr, "request_payload_too_large");
        return;
      }
      // Filters up to the stopped one still see the data as it arrives.
      runDecodeData(0, data, end_stream, std::min(decode_headers_at_ + 1, decoders_.size()));
      return;
    }
    runDecodeData(0, data, end_stream, decoders_.size());
  }
  void decodeTrailers(HeaderMapPtr trailers) override {
    request_trailers_ = std::move(trailers);
    request_end_ = true;
    onRequestComplete();
    if (decode_headers_at_ < decoders_.size() || decode_data_stopped_) return; // with continue
    runDecodeTrailers(0);
  }

  // StreamCallbacks (from the codec)
  void onResetStream(StreamResetReason reason) override {
    if (destroyed_) return;
    codec_reset_ = true; // the codec is done with this stream: do not touch response_
    parent_.config_->stats->downstream_rq_rx_reset.inc();
    info_.addFlag("DC");
    TERN_LOG(Debug, "stream %d reset: %s", id_, resetReasonName(reason));
    destroy();
  }
  void onAboveWriteBufferHighWatermark() override {
    for (auto& d : decoders_) d->onDownstreamAboveWriteBufferHighWatermark();
  }
  void onBelowWriteBufferLowWatermark() override {
    for (auto& d : decoders_) d->onDownstreamBelowWriteBufferLowWatermark();
  }

  // StreamFilterCallbacks
  event::Dispatcher& dispatcher() override { return parent_.connection_->dispatcher(); }
  const router::Route* route() override {
    if (!route_cached_) {
      route_cached_ = true;
      route_ = request_headers_ ? parent_.config_->route_config->route(*request_headers_) : nullptr;
      if (route_) info_.route_name = route_->name;
    }
    return route_;
  }
  void clearRouteCache() override { route_cached_ = false; }
  StreamInfo& streamInfo() override { return info_; }
  uint64_t streamId() const override { return id_; }

  // StreamDecoderFilterCallbacks
  void continueDecoding() override {
    if (destroyed_) return;
    if (decode_headers_at_ < decoders_.size()) {
      runDecodeHeaders(decode_headers_at_ + 1);
      return;
    }
    if (decode_data_stopped_) {
      decode_data_stopped_ = false;
      buffer::Buffer data(&dispatcher().blockPool());
      data.move(decode_buffer_);
      runDecodeData(decode_data_at_ + 1, data, request_end_ && !request_trailers_, decoders_.size());
      if (request_trailers_ && !destroyed_ && !decode_data_stopped_) runDecodeTrailers(decode_data_at_ + 1);
    }
  }
  const buffer::Buffer* decodingBuffer() override { return &decode_buffer_; }
  HeaderMap* requestHeaders() override { return request_headers_.get(); }
  uint32_t bufferLimit() const override { return parent_.config_->buffer_limit; }

  void sendLocalReply(int code, absl::string_view body,
                      const std::function<void(HeaderMap&)>& modify, absl::string_view details) override {
    if (destroyed_) return;
    info_.response_code_details = std::string(details);
    bool no_route = code == 404 && details == "route_not_found";
    if (no_route) parent_.config_->stats->no_route.inc();
    info_.addFlag(no_route ? "NR" : "LR");
    if (response_started_) {
      // Too late for a response: end the stream.
      resetStream();
      return;
    }
    auto headers = std::make_unique<HeaderMap>();
    if (request_headers_ && grpc::isGrpcRequest(*request_headers_)) {
      // A gRPC client reads status from grpc-status, not :status: a trailers-only reply.
      headers->add(":status", "200");
      headers->add("content-type", "application/grpc");
      headers->add("grpc-status", absl::StrCat(grpc::statusFromHttp(code)));
      if (!body.empty()) headers->add("grpc-message", grpc::encodeMessage(body));
      if (modify) modify(*headers);
      local_reply_ = true;
      encodeHeaders(std::move(headers), true);
      return;
    }
    headers->add(":status", absl::StrCat(code));
    // The body as given: a direct_response body is served byte for byte, and Envoy's own
    // local reply texts ("no healthy upstream", ...) have no trailing newline either.
    std::string text(body);
    if (!text.empty()) {
      headers->add("content-length", absl::StrCat(text.size()));
      headers->add("content-type", "text/plain");
    }
    if (modify) modify(*headers);
    local_reply_ = true;
    if (text.empty()) {
      encodeHeaders(std::move(headers), true);
    } else {
      encodeHeaders(std::move(headers), false);
      if (destroyed_) return;
      buffer::Buffer b(&dispatcher().blockPool());
      b.add(text);
      encodeData(b, true);
    }
  }

  void encode1xxHeaders(HeaderMapPtr headers) override {
    if (!destroyed_) response_.encode1xxHeaders(*headers);
  }
  void encodeHeaders(HeaderMapPtr headers, bool end_stream) override {
    if (destroyed_) return;
    touch();
    response_started_ = true;
    response_headers_ = std::move(headers);
    info_.response_code = response_headers_->statusCode();
    mutateResponseHeaders(*response_headers_);
    response_end_ = end_stream;
    runEncodeHeaders(0);
  }
  void encodeData(buffer::Buffer& data, bool end_stream) override {
    if (destroyed_) return;
    touch();
    response_end_ = end_stream;
    if (encode_headers_at_ < encoders_.size()) {
      encode_buffer_.move(data);
      return;
    }
    runEncodeData(0, data, end_stream);
  }
  void encodeTrailers(HeaderMapPtr trailers) override {
    if (destroyed_) return;
    response_trailers_ = std::move(trailers);
    response_end_ = true;
    if (encode_headers_at_ < encoders_.size()) return;
    for (auto& e : encoders_) {
      if (e->encodeTrailers(*response_trailers_) == FilterTrailersStatus::StopIteration) return;
    }
    response_.encodeTrailers(*response_trailers_);
    onResponseComplete();
  }
  void resetStream() override {
    if (destroyed_) return;
    parent_.config_->stats->downstream_rq_tx_reset.inc();
    ConnectionManager& parent = parent_;
    if (parent.http2()) {
      // HTTP/2 resets just this stream (RST_STREAM).
      response_.removeCallbacks(*this);
      codec_reset_ = true;
      response_.resetStream(StreamResetReason::LocalReset);
      destroy();
      return;
    }
    destroy();
    // HTTP/1: ending one stream means ending the connection.
    parent.connection_->close(network::ConnectionCloseType::FlushWrite);
  }
  void onDecoderFilterAboveWriteBufferHighWatermark() override { response_.readDisable(true); }
  void onDecoderFilterBelowWriteBufferLowWatermark() override { response_.readDisable(false); }

  // StreamEncoderFilterCallbacks
  void continueEncoding() override {
    if (destroyed_ || encode_headers_at_ >= encoders_.size()) return;
    runEncodeHeaders(encode_headers_at_ + 1);
  }
  const buffer::Buffer* encodingBuffer() override { return &encode_buffer_; }

  void destroy() {
    if (destroyed_) return;
    destroyed_ = true;
    if (!codec_reset_) response_.removeCallbacks(*this);
    request_timer_.reset();
    idle_timer_.reset();
    for (auto& d : decoders_) d->onDestroy();
    for (auto& e : encoders_) e->onDestroy();
    info_.end_mono = dispatcher().now();
    if (parent_.config_->rq_time) {
      parent_.config_->rq_time->record(
          std::chrono::duration<double, std::milli>(info_.end_mono - info_.start_mono).count());
    }
    for (auto& log : parent_.config_->access_logs) {
      log->log(request_headers_.get(), response_headers_.get(), info_);
    }
    auto& s = *parent_.config_->stats;
    s.downstream_rq_active.dec();
    int c = info_.response_code;
    if (c >= 100 && c < 200) s.downstream_rq_1xx.inc();
    else if (c < 300 && c >= 200) s.downstream_rq_2xx.inc();
    else if (c < 400 && c >= 300) s.downstream_rq_3xx.inc();
    else if (c < 500 && c >= 400) s.downstream_rq_4xx.inc();
    else if (c >= 500) s.downstream_rq_5xx.inc();
    parent_.removeStream(*this);
  }

  StreamList::iterator self_;

private:
  void touch() {
    if (idle_timer_) idle_timer_->touch();
  }
  // As Envoy: the client was slow (408) unless its request had fully arrived, in which
  // case the wait was on us or the upstream (504).
  int timeoutCode() const { return request_end_ ? 504 : 408; }

  void onIdleTimeout() {
    parent_.config_->stats->downstream_rq_idle_timeout.inc();
    info_.addFlag("SI");
    sendLocalReply(timeoutCode(), "stream timeout", nullptr, "stream_idle_timeout");
  }

  void onRequestComplete() {
    if (request_timer_ && response_end_) request_timer_.reset();
  }

  void runDecodeHeaders(size_t from) {
    for (size_t i = from; i < decoders_.size(); i++) {
      decode_headers_at_ = i;
      bool end = request_end_ && decode_buffer_.empty() && !request_trailers_;
      FilterHeadersStatus s = decoders_[i]->decodeHeaders(*request_headers_, end);
      if (destroyed_ || local_reply_) return;
      if (s == FilterHeadersStatus::StopIteration) return;
    }
    decode_headers_at_ = decoders_.size();
    if (!decode_buffer_.empty() || (request_end_ && decode_data_stopped_)) {
      decode_data_stopped_ = false;
      buffer::Buffer data(&dispatcher().blockPool());
      data.move(decode_buffer_);
      runDecodeData(0, data, request_end_ && !request_trailers_, decoders_.size());
    }
    if (request_trailers_ && !destroyed_ && !decode_data_stopped_) runDecodeTrailers(0);
  }

  void runDecodeData(size_t from, buffer::Buffer& data, bool end_stream, size_t until) {
    for (size_t i = from; i < until; i++) {
      FilterDataStatus s = decoders_[i]->decodeData(data, end_stream);
      if (destroyed_ || local_reply_) return;
      if (s == FilterDataStatus::StopIterationAndBuffer) {
        decode_buffer_.move(data);
        decode_data_stopped_ = true;
        decode_data_at_ = i;
        return;
      }
      if (s == FilterDataStatus::StopIterationNoBuffer) return;
    }
    if (until < decoders_.size()) decode_buffer_.move(data); // waits for continueDecoding
  }

  void runDecodeTrailers(size_t from) {
    for (size_t i = from; i < decoders_.size(); i++) {
      if (decoders_[i]->decodeTrailers(*request_trailers_) == FilterTrailersStatus::StopIteration) return;
      if (destroyed_) return;
    }
  }

  void runEncodeHeaders(size_t from) {
    for (size_t i = from; i < encoders_.size(); i++) {
      encode_headers_at_ = i;
      bool end = response_end_ && encode_buffer_.empty() && !response_trailers_;
      if (encoders_[i]->encodeHeaders(*response_headers_, end) == FilterHeadersStatus::StopIteration) return;
      if (destroyed_) return;
    }
    encode_headers_at_ = encoders_.size();
    bool end = response_end_ && encode_buffer_.empty() && !response_trailers_;
    response_.encodeHeaders(*response_headers_, end);
    if (end) {
      onResponseComplete();
      return;
    }
    if (!encode_buffer_.empty() || (response_end_ && !response_trailers_)) {
      buffer::Buffer data(&dispatcher().blockPool());
      data.move(encode_buffer_);
      runEncodeData(0, data, response_end_ && !response_trailers_);
    }
    if (response_trailers_ && !destroyed_) {
      response_.encodeTrailers(*response_trailers_);
      onResponseComplete();
    }
  }

  void runEncodeData(size_t from, buffer::Buffer& data, bool end_stream) {
    for (size_t i = from; i < encoders_.size(); i++) {
      FilterDataStatus s = encoders_[i]->encodeData(data, end_stream);
      if (destroyed_) return;
      if (s != FilterDataStatus::Continue) {
        if (s == FilterDataStatus::StopIterationAndBuffer) encode_buffer_.move(data);
        return;
      }
    }
    info_.bytes_sent += data.length();
    response_.encodeData(data, end_stream);
    if (end_stream) onResponseComplete();
  }

  void onResponseComplete() {
    if (destroyed_) return;
    // The codec has the whole response; the stream is done whether or not the request
    // body was complete (HTTP/1 then closes the connection).
    destroy();
  }

  void mutateRequestHeaders(HeaderMap& h) {
    const ConnectionManagerConfig& c = *parent_.config_;
    if (!h.has(":authority") && !c.default_host_for_http_10.empty()) {
      h.add(":authority", c.default_host_for_http_10);
    }
    // x-forwarded-for: append the peer when we are the edge (use_remote_address).
    if (c.use_remote_address) {
      std::string peer = parent_.connection_->remoteAddress().ip();
      const absl::string_view* xff = h.get("x-forwarded-for");
      h.set("x-forwarded-for", xff ? absl::StrCat(*xff, ", ", peer) : peer);
      h.set("x-forwarded-proto", "http");
    }
    if (c.generate_request_id) {
      const absl::string_view* rid = h.get("x-request-id");
      bool keep = rid && !rid->empty() && (c.preserve_external_request_id || !c.use_remote_address);
      if (!keep) h.set("x-request-id", uuid4());
    }
    if (!c.via.empty()) {
      const absl::string_view* via = h.get("via");
      h.set("via", via ? absl::StrCat(*via, ", ", c.via) : c.via);
    }
  }

  void mutateResponseHeaders(HeaderMap& h) {
    const ConnectionManagerConfig& c = *parent_.config_;
    switch (c.server_header) {
    case ConnectionManagerConfig::ServerHeader::Overwrite:
      h.set("server", c.server_name);
      break;
    case ConnectionManagerConfig::ServerHeader::AppendIfAbsent:
      if (!h.has("server")) h.add("server", c.server_name);
      break;
    case ConnectionManagerConfig::ServerHeader::PassThrough:
      break;
    }
    if (c.always_set_request_id_in_response && request_headers_) {
      const absl::string_view* rid = request_headers_->get("x-request-id");
      if (rid) h.set("x-request-id", *rid);
    }
    if (!c.via.empty() && !local_reply_) {
      const absl::string_view* via = h.get("via");
      h.set("via", via ? absl::StrCat(*via, ", ", c.via) : c.via);
    }
  }

  ConnectionManager& parent_;
  StreamEncoder& response_;
  const uint64_t id_;
  absl::InlinedVector<StreamDecoderFilterSharedPtr, 4> decoders_;
  absl::InlinedVector<StreamEncoderFilterSharedPtr, 4> encoders_;
  HeaderMapPtr request_headers_;
  HeaderMapPtr request_trailers_;
  HeaderMapPtr response_headers_;
  HeaderMapPtr response_trailers_;
  buffer::Buffer decode_buffer_;
  buffer::Buffer encode_buffer_;
  StreamInfo info_;
  event::TimerPtr request_timer_;
  std::optional<event::IdleTimer> idle_timer_; // inline: one allocation less per stream
  const router::Route* route_{nullptr};
  size_t decode_headers_at_{0};
  size_t decode_data_at_{0};
  size_t encode_headers_at_{0};
  bool decode_data_stopped_{false};
  bool route_cached_{false};
  bool request_end_{false};
  bool response_end_{false};
  bool response_started_{false};
  bool local_reply_{false};
  bool destroyed_{false};
  bool codec_reset_{false}; // reset by or through the codec: response_ is gone
};

ConnectionManager::ConnectionManager(ConnectionManagerConfigSharedPtr config)
    : config_(std::move(config)) {}

ConnectionManager::~ConnectionManager() {
  // Streams still alive (connection torn down): let their filters release upstreams.
  while (!streams_.empty()) streams_.front()->destroy();
}

void ConnectionManager::initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) {
  connection_ = &cb.connection();
}

network::FilterStatus ConnectionManager::onNewConnection() {
  connection_->addConnectionCallbacks(*this);
  config_->stats->downstream_cx_total.inc();
  config_->stats->downstream_cx_active.inc();
  armIdleTimer();
  return network::FilterStatus::Continue;
}

void ConnectionManager::onDrain() {
  if (draining_) return;
  draining_ = true;
  // HTTP/2: GOAWAY naming the last stream the client opened; those finish. HTTP/1: the
  // response in flight says "connection: close".
  if (http2()) http2()->goAway();
  if (http1()) http1()->disableKeepAlive();
  if (streams_.empty()) connection_->close(network::ConnectionCloseType::FlushWrite);
}

bool ConnectionManager::createCodec(buffer::Buffer& data) {
  if (!protocol_known_) {
    switch (config_->codec_type) {
    case ConnectionManagerConfig::CodecType::Http1:
      protocol_ = Protocol::Http11;
      break;
    case ConnectionManagerConfig::CodecType::Http2:
      protocol_ = Protocol::Http2;
      break;
    case ConnectionManagerConfig::CodecType::Auto:
      switch (http2::detectPreface(data)) {
      case http2::PrefaceStatus::NeedMoreData:
        return false;
      case http2::PrefaceStatus::Http2:
        protocol_ = Protocol::Http2;
        break;
      case http2::PrefaceStatus::Http1:
        protocol_ = Protocol::Http11;
        break;
      }
      break;
    }
    protocol_known_ = true;
  }
  if (protocol_ == Protocol::Http2) {
    auto codec = std::make_unique<http2::ServerConnection>(*connection_, *this, config_->http2_settings);
    codec_ = std::move(codec);
  } else {
    auto codec = std::make_unique<http1::ServerConnection>(*connection_, *this, config_->limits);
    // AUTO serves both protocols, so it also takes HTTP/1.1's way to HTTP/2.
    if (config_->codec_type == ConnectionManagerConfig::CodecType::Auto) codec->enableH2cUpgrade();
    codec_ = std::move(codec);
  }
  return true;
}

network::FilterStatus ConnectionManager::onData(buffer::Buffer& data, bool end_stream) {
  if (!codec_) {
    buffer::Buffer* in = &data;
    if (preface_) {
      preface_->move(data);
      in = preface_.get();
    }
    if (!createCodec(*in)) {
      if (in == &data) {
        preface_ = std::make_unique<buffer::Buffer>(&connection_->dispatcher().blockPool());
        preface_->move(data);
      }
      if (end_stream) connection_->close(network::ConnectionCloseType::NoFlush);
      return network::FilterStatus::StopIteration;
    }
    if (in == preface_.get()) {
      data.move(*preface_);
      preface_.reset();
    }
  }
  absl::Status st = codec_->dispatch(data);
  if (st.ok() && http1() != nullptr && http1()->h2cUpgradePending()) st = upgradeToHttp2();
  if (!st.ok()) {
    config_->stats->downstream_cx_protocol_error.inc();
    TERN_LOG(Debug, "downstream %s: protocol error: %s", connection_->remoteAddress().toString(),
             st.message());
    // HTTP/1 answers with a status line; HTTP/2's GOAWAY is already in the write buffer.
    if (http1()) http1()->sendProtocolError(st);
    connection_->close(network::ConnectionCloseType::FlushWrite);
    return network::FilterStatus::StopIteration;
  }
  if (end_stream) {
    TERN_LOG(Debug, "downstream %s: peer closed", connection_->remoteAddress().toString());
    codec_->onPeerClosed();
    if (streams_.empty()) connection_->close(network::ConnectionCloseType::FlushWrite);
    return network::FilterStatus::StopIteration;
  }
  // Requests answered within the dispatch (local replies) could not free it then.
  if (streams_.empty()) releaseIdleHttp1Codec();
  return network::FilterStatus::StopIteration;
}

void ConnectionManager::releaseIdleHttp1Codec() {
  // Nothing half-read or queued: free the codec until the next request (as nginx frees
  // its request state on keep-alive connections). It may be on the stack: later.
  if (http1() && http1()->idle()) {
    connection_->dispatcher().deferredDelete(std::move(codec_));
  }
}

// RFC 7540 3.2: the HTTP/1 codec holds a request asking for h2c. It answers 101; the
// connection then speaks HTTP/2 with that request as stream 1, and the bytes after it are
// the client's preface.
absl::Status ConnectionManager::upgradeToHttp2() {
  buffer::Buffer rest(&connection_->dispatcher().blockPool());
  HeaderMapPtr request = http1()->acceptH2cUpgrade(rest);
  std::string settings(request->getView("http2-settings"));
  connection_->dispatcher().deferredDelete(std::move(codec_));
  TERN_LOG(Debug, "downstream %s: upgrade to HTTP/2 (h2c)",
           connection_->remoteAddress().toString());
  protocol_ = Protocol::Http2;
  auto codec = std::make_unique<http2::ServerConnection>(*connection_, *this, config_->http2_settings);
  codec_ = std::move(codec);
  absl::Status st = http2()->upgradeFromHttp1(settings, std::move(request));
  if (!st.ok()) return st;
  if (draining_) http2()->goAway(); // stream 1 finishes, nothing more
  return rest.empty() ? absl::OkStatus() : codec_->dispatch(rest);
}

void ConnectionManager::onEvent(network::ConnectionEvent event) {
  if (event == network::ConnectionEvent::Connected) return;
  config_->stats->downstream_cx_active.dec();
  idle_timer_.reset();
  if (http2()) http2()->onConnectionClosed(); // resets its open streams
  // The connection is gone: every stream on it is reset.
  while (!streams_.empty()) streams_.front()->onResetStream(StreamResetReason::ConnectionTermination);
}

// HTTP/2 turns the connection's watermarks into per-stream ones (each stream's own send
// buffer fills while the connection is backed up); HTTP/1 has one stream to tell.
void ConnectionManager::onAboveWriteBufferHighWatermark() {
  if (http2()) return http2()->onAboveWriteBufferHighWatermark();
  for (auto& s : streams_) s->onAboveWriteBufferHighWatermark();
}

void ConnectionManager::onBelowWriteBufferLowWatermark() {
  if (http2()) return http2()->onBelowWriteBufferLowWatermark();
  for (auto& s : streams_) s->onBelowWriteBufferLowWatermark();
}

StreamDecoder& ConnectionManager::newStream(StreamEncoder& response) {
  // The idle timer stays armed while streams run (it checks when it fires): keep-alive
  // traffic then costs no timer-heap work per request.
  auto s = std::make_unique<ActiveStream>(*this, response, next_stream_id_++);
  ActiveStream* raw = s.get();
  streams_.push_back(std::move(s));
  raw->self_ = std::prev(streams_.end());
  return *raw;
}

void ConnectionManager::removeStream(ActiveStream& s) {
  std::unique_ptr<ActiveStream> owned = std::move(*s.self_);
  streams_.erase(s.self_);
  // Still on the stack of a codec or filter callback: delete later.
  connection_->dispatcher().deferredDelete(std::move(owned));
  if (streams_.empty() && draining_) {
    connection_->close(network::ConnectionCloseType::FlushWrite);
    return;
  }
  if (streams_.empty()) {
    armIdleTimer();
    releaseIdleHttp1Codec();
  }
}

void ConnectionManager::armIdleTimer() {
  if (config_->idle_timeout.count() == 0 ||
      connection_->state() != network::Connection::State::Open) {
    return;
  }
  event::Dispatcher& dispatcher = connection_->dispatcher();
  idle_since_ = dispatcher.now();
  if (!idle_timer_) {
    idle_timer_ = dispatcher.createTimer([this] { onIdleTimer(); });
  }
  if (!idle_timer_->enabled()) idle_timer_->enableTimer(config_->idle_timeout);
}

void ConnectionManager::onIdleTimer() {
  if (!streams_.empty()) return; // armed again when the last stream ends
  // Streams may have come and gone since it was armed: then it waits out the rest.
  if (event::rearmIfNotIdleYet(*idle_timer_, connection_->dispatcher().now(), idle_since_,
                               config_->idle_timeout)) {
    return;
  }
  config_->stats->downstream_cx_idle_timeout.inc();
  connection_->setCloseReason("idle timeout");
  connection_->close(network::ConnectionCloseType::FlushWrite);
}

} // namespace http
} // namespace tern
