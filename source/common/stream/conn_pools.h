#pragma once

#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "source/common/stream/conn_pool.h"

namespace tern {
namespace stream {

// The HTTP connection pools of one shard, by host and protocol (a cluster with
// use_downstream_protocol_config keeps an HTTP/1 and an HTTP/2 pool per host).
class ConnPools : public upstream::ShardClusterManager::Local {
public:
  explicit ConnPools(upstream::ShardClusterManager& shard) : shard_(shard) {}
  ConnPool& get(upstream::Cluster& cluster, const upstream::HostSharedPtr& host, http::Protocol protocol);
  static ConnPools& forShard(upstream::ShardClusterManager& shard);
  // What the cluster speaks to its hosts for a request that arrived as `downstream`.
  static http::Protocol upstreamProtocol(const upstream::Cluster& cluster, http::Protocol downstream);

private:
  upstream::ShardClusterManager& shard_;
  absl::flat_hash_map<std::pair<const upstream::Host*, bool>, std::unique_ptr<ConnPool>> pools_;
};

} // namespace stream
} // namespace tern
