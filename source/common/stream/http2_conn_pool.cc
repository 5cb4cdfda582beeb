#include "source/common/stream/http2_conn_pool.h"

#include <algorithm>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "source/common/common/logger.h"
#include "source/common/event/idle_timer.h"

namespace tern {
namespace stream {

// One stream, between its owner and the codec: the owner's encoder (forwarding to the
// codec's), the codec's response decoder (forwarding to the owner's) and a watcher of the
// codec stream's resets. It tells its connection when the stream may have freed a slot,
// and lives until the stream ended both ways with the owner's callbacks removed, or was
// reset, then until the end of that dispatcher turn: the codec's own rule for encoders.
class Http2ConnPool::ActiveStream : public http::StreamEncoder,
                                    public http::StreamDecoder,
                                    public http::StreamCallbacks,
                                    public event::DeferredDeletable {
public:
  TERN_RECYCLED(ActiveStream)
  ActiveStream(ActiveClient& client, http::StreamDecoder& decoder)
      : client_(client), decoder_(decoder) {}

  // http::StreamEncoder: the request, passed on.
  void encodeHeaders(const http::HeaderMap& headers, bool end_stream) override {
    if (inner_ == nullptr) return;
    if (end_stream) request_done_ = true;
    inner_->encodeHeaders(headers, end_stream);
    if (end_stream) onProgress();
  }
  void encodeData(buffer::Buffer& data, bool end_stream) override {
    if (inner_ == nullptr) {
      data.clear();
      return;
    }
    if (end_stream) request_done_ = true;
    inner_->encodeData(data, end_stream);
    if (end_stream) onProgress();
  }
  void encodeTrailers(const http::HeaderMap& trailers) override {
    if (inner_ == nullptr) return;
    request_done_ = true;
    inner_->encodeTrailers(trailers);
    onProgress();
  }
  // The owner's callbacks go on the codec's stream itself (resets and watermarks reach
  // them from there); counted here to know when the owner is done with the stream.
  void addCallbacks(http::StreamCallbacks& cb) override {
    if (inner_ == nullptr) return;
    owner_callbacks_.push_back(&cb);
    had_owner_callbacks_ = true;
    inner_->addCallbacks(cb);
  }
  void removeCallbacks(http::StreamCallbacks& cb) override {
    auto it = std::find(owner_callbacks_.begin(), owner_callbacks_.end(), &cb);
    if (it == owner_callbacks_.end()) return;
    owner_callbacks_.erase(it);
    if (inner_ != nullptr) inner_->removeCallbacks(cb);
    onProgress();
  }
  void resetStream(http::StreamResetReason reason) override {
    if (inner_ == nullptr) return;
    http::StreamEncoder* inner = inner_;
    inner_ = nullptr; // the codec forgets the stream: nothing more goes to it from here
    reset_ = true;
    inner->resetStream(reason);
    finish();
  }
  void readDisable(bool disable) override {
    if (inner_ != nullptr) inner_->readDisable(disable);
  }

  // http::StreamDecoder: the response, passed on.
  void decode1xxHeaders(http::HeaderMapPtr headers) override {
    decoder_.decode1xxHeaders(std::move(headers));
  }
  void decodeHeaders(http::HeaderMapPtr headers, bool end_stream) override {
    if (end_stream) response_done_ = true;
    decoder_.decodeHeaders(std::move(headers), end_stream);
    if (end_stream) onProgress();
  }
  void decodeData(buffer::Buffer& data, bool end_stream) override {
    if (end_stream) response_done_ = true;
    decoder_.decodeData(data, end_stream);
    if (end_stream) onProgress();
  }
  void decodeTrailers(http::HeaderMapPtr trailers) override {
    response_done_ = true;
    decoder_.decodeTrailers(std::move(trailers));
    onProgress();
  }

  // http::StreamCallbacks: the codec reset the stream (the owner hears it from the codec
  // right after us); the codec stream must not be touched again.
  void onResetStream(http::StreamResetReason) override {
    inner_ = nullptr;
    reset_ = true;
    finish();
  }

  void onProgress();
  void finish();

  ActiveClient& client_;
  http::StreamDecoder& decoder_;
  http::StreamEncoder* inner_{nullptr};
  absl::InlinedVector<http::StreamCallbacks*, 1> owner_callbacks_;
  StreamList::iterator self_;
  bool had_owner_callbacks_{false};
  bool request_done_{false};
  bool response_done_{false};
  bool reset_{false};
  bool finished_{false};
};

// One upstream connection and its HTTP/2 codec: reads go to dispatch(), connection
// events and write watermarks to the codec, GOAWAY to the pool.
class Http2ConnPool::ActiveClient : public network::ReadFilter,
                                    public network::ConnectionCallbacks,
                                    public http2::ConnectionCallbacks,
                                    public event::DeferredDeletable {
public:
  enum class State {
    Connecting, // TCP connect under way
    Ready,      // takes streams while the codec has room
    Draining,   // GOAWAY received, drained or broken: closes when its last stream ends
    Closed,     // waiting for its deferred delete
  };

  ActiveClient(Http2ConnPool& pool, std::unique_ptr<network::ConnectionImpl> conn)
      : pool_(pool), conn_(std::move(conn)) {}

  // network::ReadFilter
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override {
    notePreface(data);
    in_dispatch_ = true;
    absl::Status st = codec_->dispatch(data);
    in_dispatch_ = false;
    if (!st.ok()) {
      // The codec's GOAWAY is in the write buffer: flush it, then close.
      TERN_LOG(Debug, "upstream %s: %s", pool_.host_->address_string, st.message());
      if (state_ != State::Closed) state_ = State::Draining;
      conn_->close(network::ConnectionCloseType::FlushWrite);
      return network::FilterStatus::StopIteration;
    }
    if (end_stream) {
      // The server's FIN: the connection closes next (as a remote close); nothing new may
      // start on it.
      codec_->onPeerClosed();
      if (state_ != State::Closed) state_ = State::Draining;
      return network::FilterStatus::StopIteration;
    }
    if (state_ == State::Closed) return network::FilterStatus::StopIteration;
    pool_.checkClient(*this);
    if (!pool_.pending_.empty()) pool_.servePending(true);
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::Connected) {
      connected_ = true;
      pool_.onClientConnected(*this);
      return;
    }
    pool_.onClientClosed(*this, event);
  }
  // Above the high watermark the codec stops sending DATA (each stream's own buffer then
  // raises that stream's watermark); below the low one it resumes, and streams may end.
  void onAboveWriteBufferHighWatermark() override { codec_->onAboveWriteBufferHighWatermark(); }
  void onBelowWriteBufferLowWatermark() override {
    codec_->onBelowWriteBufferLowWatermark();
    onStreamEvent();
  }

  // http2::ConnectionCallbacks
  void onGoAway(uint32_t error_code) override { pool_.onGoAway(*this, error_code); }

  // A stream of ours ended a direction, was reset or finished: a slot may be free. Seen
  // after the read when it comes from one, else from the pool's check timer.
  void onStreamEvent() {
    if (state_ != State::Closed && !in_dispatch_) pool_.scheduleCheck();
  }
  void onStreamFinished(ActiveStream& s) {
    std::unique_ptr<ActiveStream> owned = std::move(*s.self_);
    streams_.erase(s.self_);
    pool_.shard_.dispatcher().deferredDelete(std::move(owned));
    onStreamEvent();
  }

  // The server's connection preface is one SETTINGS frame, the first bytes it sends: once
  // all of it has been read (and dispatched), its stream limit is known.
  void notePreface(const buffer::Buffer& data) {
    if (settings_known_) return;
    size_t n = data.length();
    if (head_len_ < sizeof(head_)) {
      size_t take = std::min(sizeof(head_) - head_len_, n);
      data.copyOut(0, take, head_ + head_len_);
      head_len_ += take;
    }
    preface_read_ += n;
    if (head_len_ == sizeof(head_)) {
      size_t len = size_t{static_cast<uint8_t>(head_[0])} << 16 |
                   size_t{static_cast<uint8_t>(head_[1])} << 8 | static_cast<uint8_t>(head_[2]);
      if (preface_read_ >= sizeof(head_) + len) settings_known_ = true;
    }
  }

  bool open() const { return conn_->state() == network::Connection::State::Open; }
  size_t activeStreams() const { return codec_->activeStreams(); }

  Http2ConnPool& pool_;
  // Destroyed in reverse: the codec first (it refers to the connection and to streams_).
  std::unique_ptr<network::ConnectionImpl> conn_;
  StreamList streams_;
  std::unique_ptr<http2::ClientConnection> codec_;
  event::TimerPtr idle_timer_; // stays armed while busy: checks idle_ when it fires
  event::MonotonicTime idle_since_{};
  std::list<std::unique_ptr<ActiveClient>>::iterator self_;
  uint64_t streams_total_{0};
  uint64_t preface_read_{0};
  char head_[9]; // the first frame header
  size_t head_len_{0};
  State state_{State::Connecting};
  bool connected_{false};
  bool settings_known_{false};
  bool in_dispatch_{false};
  bool idle_{false}; // no stream since idle_since_
};

void Http2ConnPool::ActiveStream::onProgress() {
  if (finished_) return;
  if (response_done_ && !request_done_ && had_owner_callbacks_ && owner_callbacks_.empty() &&
      inner_ != nullptr) {
    // The owner left once the response was complete, its request unfinished (the router
    // does so for an early response): nobody will end it now, so free the stream.
    resetStream(http::StreamResetReason::LocalReset);
    return;
  }
  if (reset_ || (request_done_ && response_done_ && owner_callbacks_.empty())) {
    finish();
    return;
  }
  client_.onStreamEvent();
}

void Http2ConnPool::ActiveStream::finish() {
  if (finished_) return;
  finished_ = true;
  if (inner_ != nullptr) {
    // Ended both ways: the codec frees its stream once closed at the HTTP/2 level.
    inner_->removeCallbacks(*this);
    inner_ = nullptr;
  }
  client_.onStreamFinished(*this);
}

// ---------------------------------------------------------------------------------------

Http2ConnPool::Http2ConnPool(upstream::ShardClusterManager& shard, upstream::Cluster& cluster,
                             upstream::HostSharedPtr host, const http2::Settings& settings)
    : shard_(shard), cluster_(cluster), host_(std::move(host)), settings_(settings), pending_(cluster) {}

Http2ConnPool::~Http2ConnPool() {
  // Shutdown: drop everything without calling back into owners that are gone.
  check_timer_.reset();
  for (auto& c : clients_) {
    c->conn_->removeConnectionCallbacks(*c);
    c->conn_->close(network::ConnectionCloseType::NoFlush);
    host_->cx_active--;
    cluster_.stats().upstream_cx_active.dec();
  }
  clients_.clear();
}

size_t Http2ConnPool::drainingCount() const {
  size_t n = 0;
  for (const auto& c : clients_) n += c->state_ == ActiveClient::State::Draining;
  return n;
}

size_t Http2ConnPool::activeStreamCount() const {
  size_t n = 0;
  for (const auto& c : clients_) n += c->activeStreams();
  return n;
}

bool Http2ConnPool::canCreateClient() const {
  return cluster_.stats().upstream_cx_active.value() <
         static_cast<int64_t>(cluster_.maxConnections());
}

bool Http2ConnPool::createClient() {
  auto conn = shard_.createConnection(cluster_, host_);
  if (!conn) return false;
  auto client = std::make_unique<ActiveClient>(*this, std::move(conn));
  ActiveClient& c = *client;
  c.conn_->addConnectionCallbacks(c);
  // The client is owned by clients_; the connection only borrows the filter.
  c.conn_->addReadFilter(network::ReadFilterSharedPtr(&c, [](network::ReadFilter*) {}));
  host_->cx_active++;
  cluster_.stats().upstream_cx_active.inc();
  clients_.push_back(std::move(client));
  c.self_ = std::prev(clients_.end());
  c.conn_->connect(cluster_.connectTimeout());
  // After connect(): the codec's preface waits in the connection until it is up, and goes
  // out with the first stream's frames.
  c.codec_ = std::make_unique<http2::ClientConnection>(*c.conn_, settings_);
  c.codec_->setConnectionCallbacks(c);
  return true;
}

Http2ConnPool::ActiveClient* Http2ConnPool::pickClient() {
  ActiveClient* best = nullptr;
  size_t best_active = 0;
  for (auto& cp : clients_) {
    ActiveClient& c = *cp;
    if (c.state_ != ActiveClient::State::Ready || !c.open() || !c.codec_->canCreateStream()) continue;
    size_t active = c.activeStreams();
    // Until the server's SETTINGS are known, one stream: more could exceed its limit.
    if (!c.settings_known_ && active > 0) continue;
    // The busiest with room: streams concentrate, spare connections go idle and close.
    if (best == nullptr || active > best_active) {
      best = &c;
      best_active = active;
    }
  }
  return best;
}

size_t Http2ConnPool::expectedRoom() const {
  size_t room = 0;
  for (const auto& cp : clients_) {
    const ActiveClient& c = *cp;
    bool coming = c.state_ == ActiveClient::State::Connecting ||
                  (c.state_ == ActiveClient::State::Ready && !c.settings_known_);
    if (!coming || !c.codec_->reusable()) continue;
    size_t max = c.codec_->peerMaxConcurrentStreams(); // nghttp2's 100 until SETTINGS
    size_t active = c.activeStreams();
    if (max > active) room += max - active;
  }
  return room;
}

bool Http2ConnPool::hasUsableClient() const {
  for (const auto& c : clients_) {
    if ((c->state_ == ActiveClient::State::Connecting || c->state_ == ActiveClient::State::Ready) &&
        c->open()) {
      return true;
    }
  }
  return false;
}

Cancellable* Http2ConnPool::newStream(http::StreamDecoder& decoder, PoolCallbacks& callbacks) {
  auto& s = cluster_.stats();
  if (ActiveClient* c = pickClient()) {
    attach(*c, decoder, callbacks);
    return nullptr;
  }
  if (!pending_.admit()) {
    callbacks.onPoolFailure(PoolFailureReason::Overflow, "pending requests overflow", host_);
    return nullptr;
  }
  if (pending_.size() >= expectedRoom()) {
    // The connections on their way will not take this one too: another connection. If
    // none can be made, the request waits only for a connection of this pool to free up
    // (a busy one, or a draining one to close).
    if (canCreateClient()) {
      if (!createClient() && clients_.empty()) {
        callbacks.onPoolFailure(PoolFailureReason::ConnectionFailure, "no socket", host_);
        return nullptr;
      }
    } else {
      s.upstream_cx_overflow.inc();
      if (clients_.empty()) {
        callbacks.onPoolFailure(PoolFailureReason::Overflow, "connection overflow", host_);
        return nullptr;
      }
    }
  }
  return pending_.push(decoder, callbacks);
}

void Http2ConnPool::attach(ActiveClient& c, http::StreamDecoder& decoder, PoolCallbacks& callbacks) {
  auto owned = std::make_unique<ActiveStream>(c, decoder);
  ActiveStream& s = *owned;
  c.streams_.push_back(std::move(owned));
  s.self_ = std::prev(c.streams_.end());
  bool reused = c.streams_total_ > 0;
  c.streams_total_++;
  c.idle_ = false;
  cluster_.stats().upstream_rq_total.inc();
  s.inner_ = &c.codec_->newStream(s);
  s.inner_->addCallbacks(s);
  callbacks.onPoolReady(s, host_, reused);
}

void Http2ConnPool::servePending(bool may_connect) {
  while (!pending_.empty()) {
    ActiveClient* c = pickClient();
    if (c == nullptr) break;
    PendingRequests::Request r = pending_.pop();
    attach(*c, r.decoder, r.callbacks);
  }
  if (pending_.empty()) return;
  // More waiting than the connections on their way are expected to take.
  bool overflow = false;
  bool no_socket = false;
  while (may_connect && pending_.size() > expectedRoom()) {
    if (!canCreateClient()) {
      cluster_.stats().upstream_cx_overflow.inc();
      overflow = true;
      break;
    }
    if (!createClient()) {
      no_socket = true;
      break;
    }
  }
  // Nothing of this pool will ever free up for them.
  if (clients_.empty() && (overflow || no_socket)) {
    pending_.failAll(overflow ? PoolFailureReason::Overflow : PoolFailureReason::ConnectionFailure,
                     overflow ? "connection overflow" : "no socket", host_);
  }
}

void Http2ConnPool::checkClient(ActiveClient& c) {
  if (c.state_ == ActiveClient::State::Ready && !c.codec_->reusable()) {
    c.state_ = ActiveClient::State::Draining; // stream ids ran out, or the codec broke
  }
  size_t active = c.activeStreams();
  if (c.state_ == ActiveClient::State::Draining && active == 0 && c.open()) {
    // FlushWrite: the last stream's final frames may still be in the write buffer.
    c.conn_->close(network::ConnectionCloseType::FlushWrite);
    return;
  }
  if (c.state_ == ActiveClient::State::Ready && active == 0 && !c.idle_) markIdle(c);
}

void Http2ConnPool::checkClients() {
  absl::InlinedVector<ActiveClient*, 8> all;
  for (auto& c : clients_) all.push_back(c.get());
  // A client closed on the way stays valid (deferred delete) and is skipped as Closed.
  for (ActiveClient* c : all) {
    if (c->state_ != ActiveClient::State::Closed) checkClient(*c);
  }
  servePending(true);
}

void Http2ConnPool::scheduleCheck() {
  if (!check_timer_) check_timer_ = shard_.dispatcher().createTimer([this] { checkClients(); });
  if (!check_timer_->enabled()) check_timer_->enableTimer(std::chrono::milliseconds(0));
}

void Http2ConnPool::onClientConnected(ActiveClient& c) {
  TERN_LOG(Debug, "upstream %s: http2 connection %d up", host_->address_string, c.conn_->id());
  if (c.state_ == ActiveClient::State::Connecting) c.state_ = ActiveClient::State::Ready;
  servePending(true);
  if (c.state_ != ActiveClient::State::Closed) checkClient(c);
}

void Http2ConnPool::onGoAway(ActiveClient& c, uint32_t error_code) {
  TERN_LOG(Debug, "upstream %s: GOAWAY (code %d) on connection %d with %d streams",
           host_->address_string, error_code, c.conn_->id(), c.activeStreams());
  // Inside the codec's dispatch: the read's end closes it if idle and serves the waiting
  // requests elsewhere.
  if (c.state_ == ActiveClient::State::Connecting || c.state_ == ActiveClient::State::Ready) {
    c.state_ = ActiveClient::State::Draining;
  }
}

void Http2ConnPool::onClientClosed(ActiveClient& c, network::ConnectionEvent event) {
  auto& s = cluster_.stats();
  const bool connected = c.connected_;
  const char* reason = c.conn_->closeReason();
  c.state_ = ActiveClient::State::Closed;
  host_->cx_active--;
  s.upstream_cx_active.dec();
  s.upstream_cx_destroy.inc();
  (event == network::ConnectionEvent::LocalClose ? s.upstream_cx_destroy_local
                                                 : s.upstream_cx_destroy_remote)
      .inc();
  if (c.idle_timer_) c.idle_timer_->disableTimer();
  std::unique_ptr<ActiveClient> owned = std::move(*c.self_);
  clients_.erase(c.self_);
  shard_.dispatcher().deferredDelete(std::move(owned));
  // Streams still open end here: their owners hear ConnectionTermination (and may come
  // back for another stream, which the pool's state above already accounts for).
  c.codec_->onConnectionClosed();
  if (!connected && event == network::ConnectionEvent::RemoteClose) {
    bool timeout = absl::string_view(reason) == "connect timeout";
    (timeout ? s.upstream_cx_connect_timeout : s.upstream_cx_connect_fail).inc();
    if (!hasUsableClient()) {
      pending_.failAll(timeout ? PoolFailureReason::Timeout : PoolFailureReason::ConnectionFailure,
                       reason, host_);
      return;
    }
    // Others may still serve the waiting requests; no new attempt against a host that
    // just refused one.
    servePending(false);
    return;
  }
  servePending(true); // a connection went away while requests wait
}

void Http2ConnPool::markIdle(ActiveClient& c) {
  c.idle_ = true;
  const auto timeout = cluster_.httpIdleTimeout();
  if (timeout.count() <= 0) return;
  c.idle_since_ = shard_.dispatcher().now();
  if (!c.idle_timer_) {
    ActiveClient* cp = &c;
    c.idle_timer_ = shard_.dispatcher().createTimer([this, cp] { onIdleTimer(*cp); });
  }
  if (!c.idle_timer_->enabled()) c.idle_timer_->enableTimer(timeout);
}

void Http2ConnPool::onIdleTimer(ActiveClient& c) {
  // Busy (or draining): armed again when it next goes idle.
  if (c.state_ != ActiveClient::State::Ready || !c.idle_ || c.activeStreams() > 0) return;
  if (event::rearmIfNotIdleYet(*c.idle_timer_, shard_.dispatcher().now(), c.idle_since_,
                               cluster_.httpIdleTimeout())) {
    return;
  }
  cluster_.stats().upstream_cx_idle_timeout.inc();
  c.conn_->close(network::ConnectionCloseType::NoFlush);
}

void Http2ConnPool::drainConnections() {
  absl::InlinedVector<ActiveClient*, 8> all;
  for (auto& c : clients_) all.push_back(c.get());
  for (ActiveClient* c : all) {
    switch (c->state_) {
    case ActiveClient::State::Connecting:
      // A new connection: kept while requests wait for it.
      if (pending_.empty()) c->conn_->close(network::ConnectionCloseType::NoFlush);
      break;
    case ActiveClient::State::Ready:
      c->state_ = ActiveClient::State::Draining;
      checkClient(*c); // closes it at once if it has no stream
      break;
    case ActiveClient::State::Draining:
    case ActiveClient::State::Closed:
      break;
    }
  }
  if (!pending_.empty()) servePending(true);
}

} // namespace stream
} // namespace tern
