#pragma once

#include <cstdint>
#include <memory>
#include <random>

#include "envoy/config/cluster/v3/cluster.pb.h"
#include "source/common/upstream/host.h"

namespace tern {
namespace upstream {

// Picks a host among one priority level's healthy hosts. One instance per shard, so
// its state (round-robin position, random generator) needs no lock.
class LoadBalancer {
public:
  virtual ~LoadBalancer() = default;
  virtual HostSharedPtr choose() = 0;
};
using LoadBalancerPtr = std::unique_ptr<LoadBalancer>;

using LbPolicy = envoy::config::cluster::v3::Cluster::LbPolicy;

// ROUND_ROBIN (smooth weighted when weights differ), RANDOM, LEAST_REQUEST (power of two
// choices). `seed` varies the starting point per shard.
LoadBalancerPtr createLoadBalancer(LbPolicy policy, const HostVector& hosts, uint64_t seed);

} // namespace upstream
} // namespace tern
