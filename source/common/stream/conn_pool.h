#pragma once

#include <list>
#include <memory>

#include "source/common/http/codec.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace stream {

enum class PoolFailureReason { Overflow, ConnectionFailure, Timeout };

class PoolCallbacks {
public:
  virtual ~PoolCallbacks() = default;
  // `reused`: the connection carried an earlier request (a close racing with this
  // request is then likely the server's keep-alive timeout, and safe to retry once).
  virtual void onPoolReady(http::StreamEncoder& encoder, const upstream::HostSharedPtr& host,
                           bool reused) = 0;
  virtual void onPoolFailure(PoolFailureReason reason, const char* details,
                             const upstream::HostSharedPtr& host) = 0;
};

class Cancellable {
public:
  virtual ~Cancellable() = default;
  virtual void cancel() = 0;
};

// Requests waiting for a connection, in arrival order, counted in the cluster's
// upstream_rq_pending_* stats. Shared by the HTTP/1 and HTTP/2 pools.
class PendingRequests {
public:
  struct Request {
    http::StreamDecoder& decoder;
    PoolCallbacks& callbacks;
  };

  explicit PendingRequests(upstream::Cluster& cluster) : cluster_(cluster) {}
  ~PendingRequests() { cluster_.stats().upstream_rq_pending_active.sub(queue_.size()); }

  // Whether the cluster's max_pending_requests allows another (counts the overflow if not).
  bool admit() {
    auto& s = cluster_.stats();
    if (s.upstream_rq_pending_active.value() < static_cast<int64_t>(cluster_.maxPendingRequests())) {
      return true;
    }
    s.upstream_rq_pending_overflow.inc();
    return false;
  }
  Cancellable* push(http::StreamDecoder& decoder, PoolCallbacks& callbacks);
  // The oldest request (the queue must not be empty).
  Request pop();
  // Fails every waiting request.
  void failAll(PoolFailureReason reason, const char* details, const upstream::HostSharedPtr& host);
  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }

private:
  struct Entry : public Cancellable {
    Entry(PendingRequests& q, http::StreamDecoder& d, PoolCallbacks& c) : queue(q), request{d, c} {}
    void cancel() override;
    PendingRequests& queue;
    Request request;
    std::list<std::unique_ptr<Entry>>::iterator self;
  };

  upstream::Cluster& cluster_;
  std::list<std::unique_ptr<Entry>> queue_;
};

// Upstream connections of one protocol to one host, for one shard. Counted against the
// cluster's circuit breakers (max_connections, max_pending_requests).
class ConnPool {
public:
  virtual ~ConnPool() = default;
  // Starts a request: onPoolReady now or later, or onPoolFailure. Returns a handle to
  // cancel a queued request, or nullptr when the callbacks already ran. The stream's
  // response goes to `response_decoder`.
  virtual Cancellable* newStream(http::StreamDecoder& response_decoder, PoolCallbacks& callbacks) = 0;
  virtual http::Protocol protocol() const = 0;
};

} // namespace stream
} // namespace tern
