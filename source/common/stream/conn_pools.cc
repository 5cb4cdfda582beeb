#include "source/common/stream/conn_pools.h"

#include "extensions/codecs/http2/settings_proto.h"
#include "source/common/common/logger.h"
#include "source/common/stream/http2_conn_pool.h"
#include "source/common/stream/http_conn_pool.h"

namespace tern {
namespace stream {

ConnPool& ConnPools::get(upstream::Cluster& cluster, const upstream::HostSharedPtr& host,
                         http::Protocol protocol) {
  const bool h2 = protocol == http::Protocol::Http2;
  auto& slot = pools_[{host.get(), h2}];
  if (!slot) {
    if (h2) {
      // Validated when the cluster was loaded.
      auto settings = http2::settingsFromProto(cluster.http2Options(), cluster.name());
      slot = std::make_unique<Http2ConnPool>(shard_, cluster, host, settings.ok() ? *settings : http2::Settings{});
    } else {
      slot = std::make_unique<Http1ConnPool>(shard_, cluster, host);
    }
  }
  return *slot;
}

http::Protocol ConnPools::upstreamProtocol(const upstream::Cluster& cluster, http::Protocol downstream) {
  switch (cluster.httpProtocol()) {
  case upstream::Cluster::HttpProtocol::Http2:
    return http::Protocol::Http2;
  case upstream::Cluster::HttpProtocol::UseDownstream:
    return downstream == http::Protocol::Http2 ? http::Protocol::Http2 : http::Protocol::Http11;
  case upstream::Cluster::HttpProtocol::Http1:
    break;
  }
  return http::Protocol::Http11;
}

ConnPools& ConnPools::forShard(upstream::ShardClusterManager& shard) {
  static const char kKey = 0;
  return shard.local<ConnPools>(&kKey);
}

} // namespace stream
} // namespace tern
