#pragma once

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
