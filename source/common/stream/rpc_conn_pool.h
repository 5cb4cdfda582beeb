#pragma once

// Upstream connections for frame-based RPC (Bolt, Dubbo), per shard, host and protocol.
// Requests go out as their original bytes with only the request id rewritten: each
// upstream connection numbers its requests itself, so requests from many downstream
// connections (whose ids may collide) share it, and the response finds its way back by
// the id it carries. Ids wrap at the protocol's maximum, skipping ids still in flight.
//
// Two shapes cover the three pool modes of the RPC proxy:
//   multiplex: up to N connections, any number of requests in flight on each (the
//              proxy's BOUND mode is a multiplexing pool owned by one downstream
//              connection);
//   ping-pong: one request in flight per connection, more connections up to the
//              cluster's max_connections, then a queue up to max_pending_requests.

#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "source/common/rpc/codec.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace stream {

enum class RpcPoolFailure {
  Overflow,          // the pool's connections and queue are full
  ConnectionFailure, // no connection to the host could be made
  Reset,             // the connection closed with the request in flight
};
const char* rpcPoolFailureName(RpcPoolFailure failure);

// One request's side of the pool: the proxy's request object derives from it, so the pool
// needs no allocation per request. Between send() and a callback, cancel() with the pool.
class RpcUpstreamRequest {
public:
  virtual ~RpcUpstreamRequest() = default;
  virtual void onUpstreamResponse(rpc::FramePtr response) = 0;
  virtual void onUpstreamFailure(RpcPoolFailure reason, const char* details) = 0;

private:
  friend class RpcConnPool;
  void* client_{nullptr}; // the connection it is in flight on (nullptr: queued or done)
  uint64_t upstream_id_{0};
  bool queued_{false};
};

class RpcConnPool {
public:
  struct Options {
    // Connections this pool may open; 0: the cluster's max_connections.
    uint32_t max_connections{1};
    // Requests in flight per connection; 0: unlimited (multiplexing).
    uint32_t max_requests_per_connection{0};
  };

  RpcConnPool(upstream::ShardClusterManager& shard, upstream::Cluster& cluster,
              upstream::HostSharedPtr host, const rpc::Codec& codec, Options options);
  ~RpcConnPool();

  // Sends one request frame (its bytes are moved out of `raw`). With `request`, the
  // response or a failure comes back to it, possibly before send() returns; without (a
  // one-way request) nothing comes back.
  void send(buffer::Buffer& raw, RpcUpstreamRequest* request);
  // Forgets a request sent and not yet answered; its response, if it comes, is dropped.
  void cancel(RpcUpstreamRequest& request);

  const upstream::HostSharedPtr& host() const { return host_; }
  upstream::Cluster& cluster() { return cluster_; }
  size_t connections() const { return clients_.size(); }
  // Responses whose id no request was waiting for (late ones after a timeout).
  uint64_t unknownResponses() const { return unknown_responses_; }

private:
  class Client;
  struct Queued {
    Queued(RpcUpstreamRequest* r, buffer::BlockPool* pool) : request(r), raw(pool) {}
    RpcUpstreamRequest* request;
    buffer::Buffer raw;
  };

  Client* pickClient();
  Client* createClient();
  void sendOn(Client& client, buffer::Buffer& raw, RpcUpstreamRequest* request);
  void onClientClosed(Client& client);
  void onRequestDone(Client& client);
  void serveQueue();
  uint32_t maxConnections() const;

  upstream::ShardClusterManager& shard_;
  upstream::Cluster& cluster_;
  const upstream::HostSharedPtr host_;
  const rpc::Codec& codec_;
  const Options options_;
  std::vector<std::unique_ptr<Client>> clients_;
  size_t next_client_{0};
  std::list<Queued> queue_;
  uint64_t unknown_responses_{0};
};

// The shared (multiplex and ping-pong) RPC pools of one shard, by host, codec and shape.
class RpcConnPools : public upstream::ShardClusterManager::Local {
public:
  explicit RpcConnPools(upstream::ShardClusterManager& shard) : shard_(shard) {}
  static RpcConnPools& forShard(upstream::ShardClusterManager& shard);
  RpcConnPool& get(upstream::Cluster& cluster, const upstream::HostSharedPtr& host,
                   const rpc::Codec& codec, const RpcConnPool::Options& options);

private:
  struct Key {
    const upstream::Host* host;
    const rpc::Codec* codec;
    uint32_t max_connections;
    uint32_t max_requests;
    bool operator==(const Key& o) const {
      return host == o.host && codec == o.codec && max_connections == o.max_connections &&
             max_requests == o.max_requests;
    }
    template <typename H> friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.host, k.codec, k.max_connections, k.max_requests);
    }
  };
  upstream::ShardClusterManager& shard_;
  absl::flat_hash_map<Key, std::unique_ptr<RpcConnPool>> pools_;
};

} // namespace stream
} // namespace tern
