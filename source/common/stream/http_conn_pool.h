#pragma once

#include <list>
#include <memory>

#include "extensions/codecs/http1/codec_impl.h"
#include "source/common/http/codec.h"
#include "source/common/network/connection_impl.h"
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

// HTTP/1 connections to one host, for one shard: one request per connection at a time,
// idle connections kept for reuse, requests queued while the cluster's connection limit is
// reached (up to its pending limit). Counted against the cluster's circuit breakers.
class Http1ConnPool {
public:
  Http1ConnPool(upstream::ShardClusterManager& shard, upstream::Cluster& cluster,
                upstream::HostSharedPtr host);
  ~Http1ConnPool();

  // Starts a request: onPoolReady now or later, or onPoolFailure. Returns a handle to
  // cancel a queued request, or nullptr when the callbacks already ran.
  Cancellable* newStream(http::StreamDecoder& response_decoder, PoolCallbacks& callbacks);
  size_t idleCount() const { return idle_.size(); }

  class ActiveClient;

private:
  struct Pending : public Cancellable {
    Pending(Http1ConnPool& p, http::StreamDecoder& d, PoolCallbacks& c)
        : pool(p), decoder(d), callbacks(c) {}
    void cancel() override;
    Http1ConnPool& pool;
    http::StreamDecoder& decoder;
    PoolCallbacks& callbacks;
    std::list<std::unique_ptr<Pending>>::iterator self;
  };

  void createClient();
  void attach(ActiveClient& client, http::StreamDecoder& decoder, PoolCallbacks& callbacks);
  void onClientIdle(ActiveClient& client);
  void onIdleTimer(ActiveClient& client);
  void onClientClosed(ActiveClient& client, bool connected, const char* reason);
  void failPending(PoolFailureReason reason, const char* details);
  void servePending();

  upstream::ShardClusterManager& shard_;
  upstream::Cluster& cluster_;
  upstream::HostSharedPtr host_;
  std::list<std::unique_ptr<ActiveClient>> idle_;
  std::list<std::unique_ptr<ActiveClient>> busy_;
  std::list<std::unique_ptr<ActiveClient>> connecting_;
  std::list<std::unique_ptr<Pending>> pending_;
};

// The pools of one shard, by cluster and host.
class Http1ConnPools : public upstream::ShardClusterManager::Local {
public:
  explicit Http1ConnPools(upstream::ShardClusterManager& shard) : shard_(shard) {}
  Http1ConnPool& get(upstream::Cluster& cluster, const upstream::HostSharedPtr& host);
  static Http1ConnPools& forShard(upstream::ShardClusterManager& shard);

private:
  upstream::ShardClusterManager& shard_;
  absl::flat_hash_map<const upstream::Host*, std::unique_ptr<Http1ConnPool>> pools_;
};

} // namespace stream
} // namespace tern
