#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "source/common/network/address.h"
#include "source/common/stats/stats.h"

namespace tern {
namespace upstream {

// One endpoint of a cluster. Immutable but for its live counters and health.
struct Host {
  Host(network::Address a, std::string hostname, uint32_t w, uint32_t p)
      : address(a), address_string(a.toString()), hostname(std::move(hostname)),
        weight(w ? w : 1), priority(p) {}

  const network::Address address;
  const std::string address_string; // "ip:port", formatted once (logs, access logs)
  const std::string hostname; // from config, for logs and STRICT_DNS
  const uint32_t weight;
  const uint32_t priority;
  // Open upstream connections / requests in flight (least-request balancing reads them).
  std::atomic<int64_t> cx_active{0};
  std::atomic<int64_t> rq_active{0};
  std::atomic<bool> healthy{true};
};
using HostSharedPtr = std::shared_ptr<Host>;
using HostVector = std::vector<HostSharedPtr>;

// Hosts by priority (index = priority), replaced whole when membership changes.
struct PrioritySet {
  std::vector<HostVector> levels;
  size_t size() const {
    size_t n = 0;
    for (const auto& l : levels) n += l.size();
    return n;
  }
};
using PrioritySetConstSharedPtr = std::shared_ptr<const PrioritySet>;

} // namespace upstream
} // namespace tern
