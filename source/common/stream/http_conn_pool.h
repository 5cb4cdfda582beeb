#pragma once

#include <list>
#include <memory>

#include "extensions/codecs/http1/codec_impl.h"
#include "source/common/http/codec.h"
#include "source/common/network/connection_impl.h"
#include "source/common/stream/conn_pool.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace stream {

// HTTP/1 connections to one host, for one shard: one request per connection at a time,
// idle connections kept for reuse, requests queued while the cluster's connection limit is
// reached (up to its pending limit). Counted against the cluster's circuit breakers.
class Http1ConnPool : public ConnPool {
public:
  Http1ConnPool(upstream::ShardClusterManager& shard, upstream::Cluster& cluster,
                upstream::HostSharedPtr host);
  ~Http1ConnPool();

  Cancellable* newStream(http::StreamDecoder& response_decoder, PoolCallbacks& callbacks) override;
  http::Protocol protocol() const override { return http::Protocol::Http11; }
  size_t idleCount() const { return idle_.size(); }

  class ActiveClient;

private:
  void createClient();
  void attach(ActiveClient& client, http::StreamDecoder& decoder, PoolCallbacks& callbacks);
  void onClientIdle(ActiveClient& client);
  void onIdleTimer(ActiveClient& client);
  void onClientClosed(ActiveClient& client, bool connected, const char* reason);
  void servePending();

  upstream::ShardClusterManager& shard_;
  upstream::Cluster& cluster_;
  upstream::HostSharedPtr host_;
  std::list<std::unique_ptr<ActiveClient>> idle_;
  std::list<std::unique_ptr<ActiveClient>> busy_;
  std::list<std::unique_ptr<ActiveClient>> connecting_;
  PendingRequests pending_;
};

} // namespace stream
} // namespace tern
