#include "extensions/filters/network/tcp_proxy/tcp_proxy.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "source/common/common/logger.h"

namespace tern {
namespace extensions {
namespace tcp_proxy {

using network::ConnectionCloseType;
using network::ConnectionEvent;
using network::FilterStatus;

upstream::Cluster* TcpProxyConfig::pickCluster() const {
  if (clusters.size() == 1) return clusters[0].cluster;
  static thread_local std::mt19937_64 rng(std::random_device{}());
  uint64_t point = rng() % total_weight;
  for (const auto& wc : clusters) {
    if (point < wc.weight) return wc.cluster;
    point -= wc.weight;
  }
  return clusters.back().cluster;
}

// The upstream connection's read filter and callbacks. Shared with the connection, so it
// outlives the filter when needed; `parent` is cleared when the filter goes.
class TcpProxyFilter::Upstream : public network::ReadFilter, public network::ConnectionCallbacks {
public:
  explicit Upstream(TcpProxyFilter* p) : parent(p) {}
  FilterStatus onData(buffer::Buffer& data, bool end_stream) override {
    if (parent) parent->onUpstreamData(data, end_stream);
    return FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}
  void onEvent(ConnectionEvent event) override {
    if (parent) parent->onUpstreamEvent(event);
  }
  void onAboveWriteBufferHighWatermark() override {
    if (parent && parent->downstream_) {
      parent->countPause(0, true);
      parent->downstream_->readDisable(true);
    }
  }
  void onBelowWriteBufferLowWatermark() override {
    if (parent && parent->downstream_) {
      parent->countPause(0, false);
      parent->downstream_->readDisable(false);
    }
  }
  TcpProxyFilter* parent;
};

namespace {

// Pipes for splice, per thread, leased while bytes are in flight and returned when empty,
// so idle connections hold none (an fd pair each would also eat the fd limit).
struct Pipe {
  int rd{-1};
  int wr{-1};
  size_t bytes{0};
};

class PipePool {
public:
  ~PipePool() {
    for (auto& p : free_) {
      close(p.rd);
      close(p.wr);
    }
  }
  bool acquire(Pipe& out) {
    if (!free_.empty()) {
      out = free_.back();
      free_.pop_back();
      return true;
    }
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
    // Bigger than the 64 KiB default: fewer splice calls per megabyte.
    fcntl(fds[1], F_SETPIPE_SZ, 1 << 20);
    out.rd = fds[0];
    out.wr = fds[1];
    out.bytes = 0;
    return true;
  }
  void release(Pipe& p) {
    if (free_.size() < 32) {
      free_.push_back(p);
    } else {
      close(p.rd);
      close(p.wr);
    }
    p = Pipe{};
  }
  static PipePool& get() {
    static thread_local PipePool pool;
    return pool;
  }

private:
  std::vector<Pipe> free_;
};

} // namespace

// Moves bytes socket -> pipe -> socket in both directions. Each connection's readiness
// comes here instead of into its buffers (network::IoBypass).
class TcpProxyFilter::Splicer {
public:
  struct Side : public network::IoBypass {
    Side(Splicer& s, int i) : splicer(s), index(i) {}
    void onBypassReadable() override { splicer.pump(index); }
    void onBypassWritable() override { splicer.pump(1 - index); }
    Splicer& splicer;
    int index;
  };

  Splicer(TcpProxyFilter& parent, network::ConnectionImpl& down, network::ConnectionImpl& up)
      : parent_(parent), side_{Side(*this, 0), Side(*this, 1)}, conn_{&down, &up} {
    down.setIoBypass(&side_[0]);
    up.setIoBypass(&side_[1]);
  }
  ~Splicer() {
    for (int i = 0; i < 2; i++) {
      if (pipe_[i].rd >= 0) {
        if (pipe_[i].bytes == 0) {
          PipePool::get().release(pipe_[i]);
        } else {
          // Bytes still inside: the pipe cannot be reused.
          close(pipe_[i].rd);
          close(pipe_[i].wr);
        }
      }
    }
  }
  void detach() {
    for (auto* c : conn_) {
      if (c) c->setIoBypass(nullptr);
    }
    conn_[0] = conn_[1] = nullptr;
  }
  // Direction `dir`: 0 = downstream -> upstream, 1 = upstream -> downstream.
  void pump(int dir);

private:
  TcpProxyFilter& parent_;
  Side side_[2];
  network::ConnectionImpl* conn_[2];
  Pipe pipe_[2];
  bool eof_[2]{false, false};      // source of direction hit EOF
  bool shut_[2]{false, false};     // FIN passed to the sink
  bool paused_[2]{false, false};   // source reading paused: sink is full
};

void TcpProxyFilter::Splicer::pump(int dir) {
  network::ConnectionImpl* src = conn_[dir];
  network::ConnectionImpl* dst = conn_[1 - dir];
  if (src == nullptr || dst == nullptr) return;
  Pipe& p = pipe_[dir];
  constexpr unsigned kFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
  for (;;) {
    // 1. Empty the pipe into the sink.
    while (p.bytes > 0) {
      ssize_t n = splice(p.rd, nullptr, dst->fd(), nullptr, p.bytes, kFlags);
      if (n > 0) {
        p.bytes -= n;
        dst->addBytesTx(n);
        if (dir == 1) parent_.config_->stats->downstream_cx_tx_bytes_total.add(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        // Sink full: wait for it to drain, stop reading the source meanwhile.
        dst->enableWriteEvent(true);
        if (!paused_[dir]) {
          paused_[dir] = true;
          src->readDisable(true);
          parent_.countPause(dir, true);
        }
        return;
      }
      dst->closeFromBypass(ConnectionEvent::RemoteClose, n < 0 ? network::errnoText(errno) : "write failed");
      return;
    }
    dst->enableWriteEvent(false);
    if (paused_[dir]) {
      paused_[dir] = false;
      src->readDisable(false); // resumes with a read activation
      parent_.countPause(dir, false);
      return;
    }
    if (eof_[dir]) {
      if (!shut_[dir]) {
        shut_[dir] = true;
        ::shutdown(dst->fd(), SHUT_WR);
      }
      if (p.rd >= 0) PipePool::get().release(p);
      if (eof_[1 - dir] && shut_[1 - dir]) {
        // Both directions finished: close, downstream last so its event tears us down.
        src->closeFromBypass(ConnectionEvent::LocalClose, "both sides closed");
      }
      return;
    }
    // 2. Fill the pipe from the source.
    if (p.rd < 0 && !PipePool::get().acquire(p)) {
      src->closeFromBypass(ConnectionEvent::LocalClose, "out of pipes");
      return;
    }
    ssize_t n = splice(src->fd(), nullptr, p.wr, nullptr, 1 << 20, kFlags);
    if (n > 0) {
      p.bytes += n;
      src->addBytesRx(n);
      if (dir == 0) parent_.config_->stats->downstream_cx_rx_bytes_total.add(n);
      parent_.touch();
      continue;
    }
    if (n == 0) {
      eof_[dir] = true;
      src->noteReadEndStream();
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      // Source drained; hand the (empty) pipe back until data comes again.
      PipePool::get().release(p);
      return;
    }
    src->closeFromBypass(ConnectionEvent::RemoteClose, network::errnoText(errno));
    return;
  }
}

TcpProxyFilter::TcpProxyFilter(TcpProxyConfigSharedPtr config) : config_(std::move(config)) {}

TcpProxyFilter::~TcpProxyFilter() {
  if (splicer_) splicer_->detach();
  releaseUpstream(false);
}

void TcpProxyFilter::initializeReadFilterCallbacks(network::ReadFilterCallbacks& cb) {
  callbacks_ = &cb;
  downstream_ = dynamic_cast<network::ConnectionImpl*>(&cb.connection());
}

FilterStatus TcpProxyFilter::onNewConnection() {
  config_->stats->downstream_cx_total.inc();
  downstream_->enableHalfClose(true);
  downstream_->addConnectionCallbacks(*this);
  // Nothing is read from the client until the upstream is there to take it.
  downstream_->readDisable(true);
  cluster_ = config_->pickCluster();
  connectUpstream();
  return FilterStatus::StopIteration;
}

void TcpProxyFilter::connectUpstream() {
  if (attempts_ >= config_->max_connect_attempts) {
    config_->stats->upstream_connect_attempts_exceeded.inc();
    downstream_->setCloseReason("upstream connect failed");
    downstream_->close(ConnectionCloseType::NoFlush);
    return;
  }
  attempts_++;
  auto& shard = config_->cm->shard(downstream_->dispatcher());
  host_ = shard.chooseHost(*cluster_, tried_);
  if (!host_) {
    // All tried (or none healthy): Envoy's "no healthy upstream".
    downstream_->setCloseReason("no healthy upstream");
    downstream_->close(ConnectionCloseType::NoFlush);
    return;
  }
  tried_.push_back(host_.get());
  upstream_ = shard.createConnection(*cluster_, host_);
  if (!upstream_) {
    downstream_->close(ConnectionCloseType::NoFlush);
    return;
  }
  upstream_callbacks_ = std::make_shared<Upstream>(this);
  upstream_->enableHalfClose(true);
  upstream_->addConnectionCallbacks(*upstream_callbacks_);
  upstream_->addReadFilter(upstream_callbacks_);
  host_->cx_active++;
  cluster_->stats().upstream_cx_active.inc();
  upstream_->connect(cluster_->connectTimeout());
}

void TcpProxyFilter::onUpstreamEvent(ConnectionEvent event) {
  if (event == ConnectionEvent::Connected) {
    connected_ = true;
    if (config_->idle_timeout.count() > 0) {
      idle_timer_ = std::make_unique<event::IdleTimer>(downstream_->dispatcher(),
                                                       config_->idle_timeout,
                                                       [this] { onIdleTimeout(); });
    }
    if (config_->splice && downstream_->isRaw() && upstream_->isRaw()) {
      config_->stats->splice_sessions_total.inc();
      splicer_ = std::make_unique<Splicer>(*this, *downstream_, *upstream_);
    }
    downstream_->readDisable(false);
    return;
  }
  // Closed.
  bool was_connected = connected_;
  const std::string reason = upstream_->closeReason();
  if (!was_connected) {
    auto& s = cluster_->stats();
    if (reason == "connect timeout") {
      s.upstream_cx_connect_timeout.inc();
    } else {
      s.upstream_cx_connect_fail.inc();
    }
    TERN_LOG(Debug, "upstream %s connect failed: %s", host_->address.toString(), reason);
    releaseUpstream(false);
    if (!downstream_closed_) connectUpstream();
    return;
  }
  if (splicer_) {
    splicer_->detach();
  }
  releaseUpstream(false);
  if (!downstream_closed_) {
    downstream_->setCloseReason("upstream closed");
    downstream_->close(ConnectionCloseType::FlushWrite);
  }
}

void TcpProxyFilter::onUpstreamData(buffer::Buffer& data, bool end_stream) {
  touch();
  config_->stats->downstream_cx_tx_bytes_total.add(data.length());
  downstream_->write(data, end_stream);
}

FilterStatus TcpProxyFilter::onData(buffer::Buffer& data, bool end_stream) {
  touch();
  config_->stats->downstream_cx_rx_bytes_total.add(data.length());
  if (upstream_ && connected_) {
    upstream_->write(data, end_stream);
  } else {
    data.clear(); // cannot happen: reading starts only once connected
  }
  return FilterStatus::StopIteration;
}

void TcpProxyFilter::onEvent(ConnectionEvent event) {
  if (event == ConnectionEvent::Connected) return;
  downstream_closed_ = true;
  if (splicer_) splicer_->detach();
  idle_timer_.reset();
  // Send upstream what the client already gave us, unless we are still connecting.
  releaseUpstream(connected_);
}

void TcpProxyFilter::onAboveWriteBufferHighWatermark() {
  if (upstream_) {
    countPause(1, true);
    upstream_->readDisable(true);
  }
}

void TcpProxyFilter::onBelowWriteBufferLowWatermark() {
  if (upstream_) {
    countPause(1, false);
    upstream_->readDisable(false);
  }
}

void TcpProxyFilter::countPause(int dir, bool paused) {
  if (dir == 0) {
    (paused ? config_->stats->downstream_flow_control_paused_reading_total
            : config_->stats->downstream_flow_control_resumed_reading_total)
        .inc();
  } else if (cluster_) {
    (paused ? cluster_->stats().upstream_flow_control_paused_reading_total
            : cluster_->stats().upstream_flow_control_resumed_reading_total)
        .inc();
  }
}

void TcpProxyFilter::onIdleTimeout() {
  config_->stats->idle_timeout.inc();
  downstream_->setCloseReason("idle timeout");
  downstream_->close(ConnectionCloseType::NoFlush);
}

namespace {
// Keeps a closing upstream connection alive until its buffered bytes are written.
class Flusher : public network::ConnectionCallbacks, public event::DeferredDeletable {
public:
  Flusher(std::unique_ptr<network::ConnectionImpl> c, TcpProxyStats& stats)
      : conn_(std::move(c)), stats_(stats) {
    stats_.upstream_flush_total.inc();
    stats_.upstream_flush_active.inc();
    conn_->addConnectionCallbacks(*this);
    timer_ = conn_->dispatcher().createTimer([this] {
      conn_->close(ConnectionCloseType::NoFlush);
    });
    timer_->enableTimer(std::chrono::seconds(30));
  }
  void onEvent(ConnectionEvent e) override {
    if (e == ConnectionEvent::Connected || done_) return;
    done_ = true;
    stats_.upstream_flush_active.dec();
    timer_.reset();
    event::Dispatcher& d = conn_->dispatcher();
    d.deferredDelete(std::unique_ptr<event::DeferredDeletable>(this));
  }
  void start() { conn_->close(ConnectionCloseType::FlushWrite); }

private:
  std::unique_ptr<network::ConnectionImpl> conn_;
  TcpProxyStats& stats_;
  event::TimerPtr timer_;
  bool done_{false};
};
} // namespace

void TcpProxyFilter::releaseUpstream(bool flush) {
  if (!upstream_) return;
  upstream_callbacks_->parent = nullptr;
  upstream_->removeConnectionCallbacks(*upstream_callbacks_);
  host_->cx_active--;
  cluster_->stats().upstream_cx_active.dec();
  cluster_->stats().upstream_cx_destroy.inc();
  std::unique_ptr<network::ConnectionImpl> conn = std::move(upstream_);
  if (conn->state() == network::Connection::State::Open) {
    cluster_->stats().upstream_cx_destroy_local.inc();
    if (flush && conn->bytesBuffered() > 0) {
      auto* f = new Flusher(std::move(conn), *config_->stats);
      f->start();
      return;
    }
    conn->close(ConnectionCloseType::NoFlush);
  } else {
    cluster_->stats().upstream_cx_destroy_remote.inc();
  }
  event::Dispatcher& d = conn->dispatcher();
  d.deferredDelete(std::move(conn));
}

} // namespace tcp_proxy
} // namespace extensions
} // namespace tern
