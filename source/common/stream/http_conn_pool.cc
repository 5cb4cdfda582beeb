#include "source/common/stream/http_conn_pool.h"

#include "source/common/common/logger.h"
#include "source/common/event/idle_timer.h"

namespace tern {
namespace stream {

// One upstream connection and its HTTP/1 codec. Also stands between the codec and the
// request's response decoder, to learn when the response is complete.
class Http1ConnPool::ActiveClient : public network::ReadFilter,
                                    public network::ConnectionCallbacks,
                                    public http::StreamDecoder,
                                    public event::DeferredDeletable {
public:
  ActiveClient(Http1ConnPool& pool, std::unique_ptr<network::ConnectionImpl> conn)
      : pool_(pool), conn_(std::move(conn)), codec_(std::make_unique<http1::ClientConnection>(*conn_)) {}

  // network::ReadFilter
  network::FilterStatus onData(buffer::Buffer& data, bool end_stream) override {
    absl::Status st = codec_->dispatch(data);
    if (end_stream) codec_->onPeerClosed();
    if (!st.ok()) {
      TERN_LOG(Debug, "upstream %s: %s", pool_.host_->address.toString(), st.message());
      conn_->close(network::ConnectionCloseType::NoFlush);
      return network::FilterStatus::StopIteration;
    }
    if (response_done_) {
      response_done_ = false;
      decoder_ = nullptr;
      if (codec_->reusable() && conn_->state() == network::Connection::State::Open) {
        pool_.onClientIdle(*this);
      } else {
        conn_->close(network::ConnectionCloseType::NoFlush);
      }
    }
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}

  // network::ConnectionCallbacks
  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::Connected) {
      connected_ = true;
      pool_.onClientIdle(*this);
      return;
    }
    if (decoder_ != nullptr && !response_done_) codec_->onPeerClosed();
    decoder_ = nullptr;
    pool_.onClientClosed(*this, connected_, conn_->closeReason());
  }
  // Flow control for the request body: a slow upstream stops the downstream reads.
  void onAboveWriteBufferHighWatermark() override { codec_->onAboveWriteBufferHighWatermark(); }
  void onBelowWriteBufferLowWatermark() override { codec_->onBelowWriteBufferLowWatermark(); }

  // http::StreamDecoder: pass through, noting the end of the response.
  void decode1xxHeaders(http::HeaderMapPtr h) override {
    if (decoder_) decoder_->decode1xxHeaders(std::move(h));
  }
  void decodeHeaders(http::HeaderMapPtr h, bool end_stream) override {
    if (end_stream) response_done_ = true;
    if (decoder_) decoder_->decodeHeaders(std::move(h), end_stream);
  }
  void decodeData(buffer::Buffer& data, bool end_stream) override {
    if (end_stream) response_done_ = true;
    if (decoder_) decoder_->decodeData(data, end_stream);
  }
  void decodeTrailers(http::HeaderMapPtr t) override {
    response_done_ = true;
    if (decoder_) decoder_->decodeTrailers(std::move(t));
  }

  Http1ConnPool& pool_;
  std::unique_ptr<network::ConnectionImpl> conn_;
  std::unique_ptr<http1::ClientConnection> codec_;
  http::StreamDecoder* decoder_{nullptr};
  event::TimerPtr idle_timer_; // stays armed while busy: checks idle_since_ when it fires
  event::MonotonicTime idle_since_{};
  std::list<std::unique_ptr<ActiveClient>>* list_{nullptr};
  std::list<std::unique_ptr<ActiveClient>>::iterator self_;
  uint32_t requests_{0};
  bool connected_{false};
  bool response_done_{false};
};

Http1ConnPool::Http1ConnPool(upstream::ShardClusterManager& shard, upstream::Cluster& cluster,
                             upstream::HostSharedPtr host)
    : shard_(shard), cluster_(cluster), host_(std::move(host)), pending_(cluster) {}

Http1ConnPool::~Http1ConnPool() {
  // Shutdown: drop everything without calling back into owners that are gone.
  for (auto* l : {&idle_, &busy_, &connecting_}) {
    for (auto& c : *l) {
      c->conn_->removeConnectionCallbacks(*c);
      c->conn_->close(network::ConnectionCloseType::NoFlush);
      host_->cx_active--;
      cluster_.stats().upstream_cx_active.dec();
    }
    l->clear();
  }
}


void Http1ConnPool::createClient() {
  auto conn = shard_.createConnection(cluster_, host_);
  if (!conn) return;
  auto client = std::make_unique<ActiveClient>(*this, std::move(conn));
  ActiveClient& c = *client;
  c.conn_->addConnectionCallbacks(c);
  // The client is owned by the pool's lists; the connection only borrows the filter.
  c.conn_->addReadFilter(network::ReadFilterSharedPtr(&c, [](network::ReadFilter*) {}));
  host_->cx_active++;
  cluster_.stats().upstream_cx_active.inc();
  connecting_.push_back(std::move(client));
  c.list_ = &connecting_;
  c.self_ = std::prev(connecting_.end());
  c.conn_->connect(cluster_.connectTimeout());
}

Cancellable* Http1ConnPool::newStream(http::StreamDecoder& decoder, PoolCallbacks& callbacks) {
  auto& s = cluster_.stats();
  if (!idle_.empty()) {
    attach(*idle_.front(), decoder, callbacks);
    return nullptr;
  }
  if (!pending_.admit()) {
    callbacks.onPoolFailure(PoolFailureReason::Overflow, "pending requests overflow", host_);
    return nullptr;
  }
  if (connecting_.size() <= pending_.size()) {
    if (s.upstream_cx_active.value() < static_cast<int64_t>(cluster_.maxConnections())) {
      createClient();
    } else {
      s.upstream_cx_overflow.inc();
      if (busy_.empty() && connecting_.empty()) {
        callbacks.onPoolFailure(PoolFailureReason::Overflow, "connection overflow", host_);
        return nullptr;
      }
    }
  }
  return pending_.push(decoder, callbacks);
}

void Http1ConnPool::attach(ActiveClient& c, http::StreamDecoder& decoder, PoolCallbacks& callbacks) {
  // Move to busy.
  // splice moves the list node itself: no allocation per request.
  busy_.splice(busy_.end(), *c.list_, c.self_);
  c.list_ = &busy_;
  c.decoder_ = &decoder;
  c.response_done_ = false;
  bool reused = c.requests_ > 0;
  c.requests_++;
  cluster_.stats().upstream_rq_total.inc();
  http::StreamEncoder& encoder = c.codec_->newStream(c);
  callbacks.onPoolReady(encoder, host_, reused);
}

void Http1ConnPool::onClientIdle(ActiveClient& c) {
  idle_.splice(idle_.begin(), *c.list_, c.self_);
  c.list_ = &idle_;
  if (!pending_.empty()) {
    servePending();
    return;
  }
  if (cluster_.httpIdleTimeout().count() > 0) {
    c.idle_since_ = shard_.dispatcher().now();
    if (!c.idle_timer_) {
      ActiveClient* cp = &c;
      c.idle_timer_ = shard_.dispatcher().createTimer([this, cp] { onIdleTimer(*cp); });
    }
    if (!c.idle_timer_->enabled()) c.idle_timer_->enableTimer(cluster_.httpIdleTimeout());
  }
}

void Http1ConnPool::onIdleTimer(ActiveClient& c) {
  if (c.list_ != &idle_) return; // busy: armed again when it goes idle
  if (event::rearmIfNotIdleYet(*c.idle_timer_, shard_.dispatcher().now(), c.idle_since_,
                               cluster_.httpIdleTimeout())) {
    return;
  }
  cluster_.stats().upstream_cx_idle_timeout.inc();
  c.conn_->close(network::ConnectionCloseType::NoFlush);
}

void Http1ConnPool::servePending() {
  while (!pending_.empty() && !idle_.empty()) {
    PendingRequests::Request r = pending_.pop();
    attach(*idle_.front(), r.decoder, r.callbacks);
  }
}

void Http1ConnPool::onClientClosed(ActiveClient& c, bool connected, const char* reason) {
  auto& s = cluster_.stats();
  host_->cx_active--;
  s.upstream_cx_active.dec();
  s.upstream_cx_destroy.inc();
  std::unique_ptr<ActiveClient> owned = std::move(*c.self_);
  c.list_->erase(c.self_);
  if (c.idle_timer_) c.idle_timer_->disableTimer();
  shard_.dispatcher().deferredDelete(std::move(owned));
  if (!connected) {
    bool timeout = absl::string_view(reason) == "connect timeout";
    (timeout ? s.upstream_cx_connect_timeout : s.upstream_cx_connect_fail).inc();
    if (connecting_.empty() && idle_.empty()) {
      pending_.failAll(timeout ? PoolFailureReason::Timeout : PoolFailureReason::ConnectionFailure, reason,
                       host_);
    }
  } else if (!pending_.empty() && connecting_.size() < pending_.size() &&
             s.upstream_cx_active.value() < static_cast<int64_t>(cluster_.maxConnections())) {
    createClient(); // a connection went away while requests wait
  }
}

} // namespace stream
} // namespace tern
