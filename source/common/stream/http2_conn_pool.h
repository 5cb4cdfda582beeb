#pragma once

#include <list>
#include <memory>

#include "extensions/codecs/http2/codec_impl.h"
#include "source/common/common/recycler.h"
#include "source/common/http/codec.h"
#include "source/common/network/connection_impl.h"
#include "source/common/stream/conn_pool.h"
#include "source/common/upstream/cluster_manager.h"

namespace tern {
namespace stream {

// HTTP/2 connections to one host, for one shard: streams share connections up to the
// peer's SETTINGS_MAX_CONCURRENT_STREAMS; when every connection is full (or none is up
// yet) a request waits in the pending queue while a new connection opens, within the
// cluster's circuit breakers (max_connections counted on the cluster's
// upstream_cx_active, max_pending_requests on upstream_rq_pending_active, as
// Http1ConnPool does).
//
// A connection serves its first stream as soon as TCP is up (nghttp2 sends right away);
// more streams once the server's SETTINGS (its first frame) have been read, so a server
// with a low stream limit never sees more than it allows. A connection that received
// GOAWAY, or was drained, takes no new stream and closes when its last stream ends. A
// connection without streams for cluster.httpIdleTimeout() closes.
//
// The encoder handed to onPoolReady is the pool's per-stream wrapper around the codec's:
// it forwards everything and follows the codec's lifetime rules (valid until the stream
// ended both ways or was reset, the caller removed its callbacks, and that dispatcher
// turn is over). Through it the pool learns when a stream ends and serves waiting
// requests.
class Http2ConnPool : public ConnPool {
public:
  Http2ConnPool(upstream::ShardClusterManager& shard, upstream::Cluster& cluster,
                upstream::HostSharedPtr host, const http2::Settings& settings);
  ~Http2ConnPool() override;

  Cancellable* newStream(http::StreamDecoder& response_decoder, PoolCallbacks& callbacks) override;
  http::Protocol protocol() const override { return http::Protocol::Http2; }

  // Closes connections without streams (and connecting ones nobody waits for); busy ones
  // take no new stream and close when their last stream ends. Waiting requests go to new
  // connections.
  void drainConnections();

  // Connections in any state (connecting, ready, draining), requests waiting for one,
  // streams open on the pool's connections (at the HTTP/2 level).
  size_t connectionCount() const { return clients_.size(); }
  size_t pendingCount() const { return pending_.size(); }
  size_t activeStreamCount() const;
  // Connections that take no new stream and close once their last one ends.
  size_t drainingCount() const;

  class ActiveClient;
  class ActiveStream;
  using StreamList = std::list<std::unique_ptr<ActiveStream>,
                               common::RecyclingAllocator<std::unique_ptr<ActiveStream>>>;

private:
  bool createClient();
  bool canCreateClient() const;
  // A ready connection that takes another stream now: the busiest with room.
  ActiveClient* pickClient();
  // Streams connections not yet able to take them are expected to take: connecting ones
  // and ready ones whose peer SETTINGS are not known yet.
  size_t expectedRoom() const;
  // Whether some connection can serve a waiting request now or later.
  bool hasUsableClient() const;
  void attach(ActiveClient& client, http::StreamDecoder& decoder, PoolCallbacks& callbacks);
  void servePending(bool may_connect);

  // Re-examines every connection after streams may have ended: drained ones with no
  // stream close, ready ones with no stream start their idle time, waiting requests are
  // served. Runs after a read was dispatched, or from a zero-delay timer for events
  // raised from the stream owner's calls (never re-entering the owner).
  void checkClients();
  void checkClient(ActiveClient& client);
  void scheduleCheck();
  void onClientConnected(ActiveClient& client);
  void onClientClosed(ActiveClient& client, network::ConnectionEvent event);
  void onGoAway(ActiveClient& client, uint32_t error_code);
  void markIdle(ActiveClient& client);
  void onIdleTimer(ActiveClient& client);

  upstream::ShardClusterManager& shard_;
  upstream::Cluster& cluster_;
  upstream::HostSharedPtr host_;
  const http2::Settings settings_;
  std::list<std::unique_ptr<ActiveClient>> clients_;
  PendingRequests pending_;
  event::TimerPtr check_timer_;
};

} // namespace stream
} // namespace tern
