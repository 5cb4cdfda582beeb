#include "source/common/stream/rpc_conn_pool.h"

#include <algorithm>

#include "source/common/common/logger.h"

namespace tern {
namespace stream {

const char* rpcPoolFailureName(RpcPoolFailure failure) {
  switch (failure) {
  case RpcPoolFailure::Overflow: return "overflow";
  case RpcPoolFailure::ConnectionFailure: return "connection failure";
  case RpcPoolFailure::Reset: return "upstream reset";
  }
  return "unknown";
}

// One upstream connection: the requests in flight on it by the id it gave them.
class RpcConnPool::Client : public network::ReadFilter, public network::ConnectionCallbacks {
public:
  Client(RpcConnPool& pool, std::unique_ptr<network::ConnectionImpl> conn)
      : pool_(pool), conn_(std::move(conn)) {}

  // The next free id (ids wrap at the protocol's maximum; one still in flight is skipped).
  uint64_t nextId() {
    const uint64_t max = pool_.codec_.maxRequestId();
    for (;;) {
      uint64_t id = next_id_;
      next_id_ = id >= max ? 1 : id + 1;
      if (!inflight_.contains(id)) return id;
    }
  }

  network::FilterStatus onData(buffer::Buffer& data, bool) override {
    for (;;) {
      auto decoded = pool_.codec_.decode(data);
      if (!decoded.ok()) {
        TERN_LOG(Debug, "rpc upstream %s: %s", pool_.host_->address_string,
                 decoded.status().message());
        conn_->setCloseReason("upstream protocol error");
        conn_->close(network::ConnectionCloseType::NoFlush);
        return network::FilterStatus::StopIteration;
      }
      if (*decoded == nullptr) break;
      rpc::FramePtr frame = std::move(*decoded);
      switch (frame->kind) {
      case rpc::FrameKind::Response: {
        auto it = inflight_.find(frame->request_id);
        if (it == inflight_.end()) {
          pool_.unknown_responses_++;
          break;
        }
        RpcUpstreamRequest* request = it->second;
        inflight_.erase(it);
        request->client_ = nullptr;
        pool_.onRequestDone(*this);
        request->onUpstreamResponse(std::move(frame));
        break;
      }
      case rpc::FrameKind::HeartbeatRequest: {
        buffer::Buffer out(&conn_->dispatcher().blockPool());
        pool_.codec_.encodeHeartbeatResponse(*frame, out);
        conn_->write(out, false);
        break;
      }
      default:
        // Heartbeat answers and requests from the server side (Dubbo's read-only event)
        // need nothing from a proxy.
        break;
      }
      if (conn_->state() != network::Connection::State::Open) break;
    }
    return network::FilterStatus::StopIteration;
  }
  void initializeReadFilterCallbacks(network::ReadFilterCallbacks&) override {}

  void onEvent(network::ConnectionEvent event) override {
    if (event == network::ConnectionEvent::Connected) {
      connected_ = true;
      return;
    }
    pool_.onClientClosed(*this);
  }

  RpcConnPool& pool_;
  std::unique_ptr<network::ConnectionImpl> conn_;
  absl::flat_hash_map<uint64_t, RpcUpstreamRequest*> inflight_;
  uint64_t next_id_{1};
  bool connected_{false};
};

RpcConnPool::RpcConnPool(upstream::ShardClusterManager& shard, upstream::Cluster& cluster,
                         upstream::HostSharedPtr host, const rpc::Codec& codec, Options options)
    : shard_(shard), cluster_(cluster), host_(std::move(host)), codec_(codec), options_(options) {}

RpcConnPool::~RpcConnPool() {
  // Owners are gone or going: close without calling back.
  for (auto& c : clients_) {
    for (auto& [id, request] : c->inflight_) request->client_ = nullptr;
    c->conn_->removeConnectionCallbacks(*c);
    c->conn_->close(network::ConnectionCloseType::NoFlush);
    host_->cx_active--;
    cluster_.stats().upstream_cx_active.dec();
    cluster_.stats().upstream_rq_active.sub(c->inflight_.size());
  }
  clients_.clear();
  for (auto& q : queue_) q.request->queued_ = false;
  cluster_.stats().upstream_rq_pending_active.sub(queue_.size());
}

uint32_t RpcConnPool::maxConnections() const {
  return options_.max_connections ? options_.max_connections : cluster_.maxConnections();
}

RpcConnPool::Client* RpcConnPool::createClient() {
  auto& s = cluster_.stats();
  if (s.upstream_cx_active.value() >= static_cast<int64_t>(cluster_.maxConnections())) {
    s.upstream_cx_overflow.inc();
    return nullptr;
  }
  auto conn = shard_.createConnection(cluster_, host_);
  if (!conn) return nullptr;
  clients_.push_back(std::make_unique<Client>(*this, std::move(conn)));
  Client& c = *clients_.back();
  c.conn_->addConnectionCallbacks(c);
  // The pool owns the client; the connection only borrows it as its filter.
  c.conn_->addReadFilter(network::ReadFilterSharedPtr(&c, [](network::ReadFilter*) {}));
  host_->cx_active++;
  s.upstream_cx_active.inc();
  // Requests written before the connect completes wait in its write buffer.
  c.conn_->connect(cluster_.connectTimeout());
  return &c;
}

RpcConnPool::Client* RpcConnPool::pickClient() {
  // A connection is full at its request limit, or when every id is in flight.
  const uint64_t limit = options_.max_requests_per_connection != 0
                             ? std::min<uint64_t>(options_.max_requests_per_connection, codec_.maxRequestId())
                             : codec_.maxRequestId();
  if (options_.max_requests_per_connection == 0) {
    // Multiplexing: open up to the limit, then take turns.
    if (clients_.size() < maxConnections()) {
      if (Client* c = createClient()) return c;
    }
    for (size_t k = 0; k < clients_.size(); k++) {
      next_client_ = (next_client_ + 1) % clients_.size();
      if (clients_[next_client_]->inflight_.size() < limit) return clients_[next_client_].get();
    }
    return nullptr;
  }
  for (auto& c : clients_) {
    if (c->inflight_.size() < limit) return c.get();
  }
  if (clients_.size() < maxConnections()) return createClient();
  return nullptr;
}

void RpcConnPool::send(buffer::Buffer& raw, RpcUpstreamRequest* request) {
  if (Client* c = pickClient()) {
    sendOn(*c, raw, request);
    return;
  }
  auto& s = cluster_.stats();
  if (s.upstream_rq_pending_active.value() >= static_cast<int64_t>(cluster_.maxPendingRequests())) {
    s.upstream_rq_pending_overflow.inc();
    raw.clear();
    if (request) request->onUpstreamFailure(RpcPoolFailure::Overflow, "pending requests overflow");
    return;
  }
  s.upstream_rq_pending_total.inc();
  s.upstream_rq_pending_active.inc();
  queue_.emplace_back(request, &raw.pool());
  queue_.back().raw.move(raw);
  if (request) request->queued_ = true;
}

void RpcConnPool::sendOn(Client& c, buffer::Buffer& raw, RpcUpstreamRequest* request) {
  uint64_t id = c.nextId();
  absl::Status st = codec_.patchRequestId(raw, id);
  if (!st.ok()) {
    // The codec made this frame: it cannot fail to patch it.
    TERN_LOG(Error, "rpc upstream %s: %s", host_->address_string, st.message());
  }
  cluster_.stats().upstream_rq_total.inc();
  if (request != nullptr) {
    request->client_ = &c;
    request->upstream_id_ = id;
    c.inflight_.emplace(id, request);
    cluster_.stats().upstream_rq_active.inc();
    host_->rq_active++;
  }
  c.conn_->write(raw, false);
}

void RpcConnPool::cancel(RpcUpstreamRequest& request) {
  if (request.queued_) {
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->request == &request) {
        queue_.erase(it);
        cluster_.stats().upstream_rq_pending_active.dec();
        break;
      }
    }
    request.queued_ = false;
    return;
  }
  auto* c = static_cast<Client*>(request.client_);
  if (c == nullptr) return;
  request.client_ = nullptr;
  c->inflight_.erase(request.upstream_id_);
  cluster_.stats().upstream_rq_active.dec();
  host_->rq_active--;
  if (options_.max_requests_per_connection != 0) {
    // A ping-pong connection would deliver the abandoned response to the next request's
    // slot: give the connection up instead.
    c->conn_->close(network::ConnectionCloseType::NoFlush);
    return;
  }
}

void RpcConnPool::onRequestDone(Client&) {
  cluster_.stats().upstream_rq_active.dec();
  host_->rq_active--;
  if (!queue_.empty()) serveQueue();
}

void RpcConnPool::serveQueue() {
  while (!queue_.empty()) {
    Client* c = pickClient();
    if (c == nullptr) return;
    Queued& q = queue_.front();
    cluster_.stats().upstream_rq_pending_active.dec();
    if (q.request) q.request->queued_ = false;
    RpcUpstreamRequest* request = q.request;
    buffer::Buffer raw(&q.raw.pool());
    raw.move(q.raw);
    queue_.pop_front();
    sendOn(*c, raw, request);
  }
}

void RpcConnPool::onClientClosed(Client& client) {
  auto& s = cluster_.stats();
  host_->cx_active--;
  s.upstream_cx_active.dec();
  s.upstream_cx_destroy.inc();
  if (!client.connected_) s.upstream_cx_connect_fail.inc();
  auto it = std::find_if(clients_.begin(), clients_.end(),
                         [&](const std::unique_ptr<Client>& c) { return c.get() == &client; });
  std::unique_ptr<Client> owned = std::move(*it);
  clients_.erase(it);
  // The connection (and this client, its filter) go at the end of the loop turn.
  shard_.dispatcher().deferredDelete(std::move(owned->conn_));
  struct Deleter : public event::DeferredDeletable {
    explicit Deleter(std::unique_ptr<Client> c) : client(std::move(c)) {}
    std::unique_ptr<Client> client;
  };
  auto inflight = std::move(owned->inflight_);
  const bool connected = owned->connected_;
  shard_.dispatcher().deferredDelete(std::make_unique<Deleter>(std::move(owned)));
  const RpcPoolFailure reason = connected ? RpcPoolFailure::Reset : RpcPoolFailure::ConnectionFailure;
  const char* details = connected ? "upstream connection closed" : "upstream connect failed";
  s.upstream_rq_active.sub(inflight.size());
  host_->rq_active -= static_cast<int64_t>(inflight.size());
  for (auto& [id, request] : inflight) request->client_ = nullptr;
  for (auto& [id, request] : inflight) request->onUpstreamFailure(reason, details);
  // Queued requests waited for this connection: with none left, they fail as it did.
  if (clients_.empty() && !connected) {
    std::list<Queued> queue = std::move(queue_);
    queue_.clear();
    s.upstream_rq_pending_active.sub(queue.size());
    for (auto& q : queue) {
      if (q.request) {
        q.request->queued_ = false;
        q.request->onUpstreamFailure(reason, details);
      }
    }
  } else if (!queue_.empty()) {
    serveQueue();
  }
}

RpcConnPools& RpcConnPools::forShard(upstream::ShardClusterManager& shard) {
  static const char key = 0;
  return shard.local<RpcConnPools>(&key);
}

RpcConnPool& RpcConnPools::get(upstream::Cluster& cluster, const upstream::HostSharedPtr& host,
                               const rpc::Codec& codec, const RpcConnPool::Options& options) {
  auto& slot = pools_[Key{host.get(), &codec, options.max_connections,
                          options.max_requests_per_connection}];
  if (!slot) slot = std::make_unique<RpcConnPool>(shard_, cluster, host, codec, options);
  return *slot;
}

} // namespace stream
} // namespace tern
