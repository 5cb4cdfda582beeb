#include "source/common/upstream/load_balancer.h"

#include <vector>

namespace tern {
namespace upstream {
namespace {

// Smooth weighted round robin (as nginx does it): every pick adds each host's weight to
// its credit, takes the host with the most credit and charges it the total. With equal
// weights this is plain round robin; with weights 1:2:3 picks spread as 1:2:3 without
// bursts. O(hosts) per pick: an EDF heap would be O(log hosts) for very large clusters.
class RoundRobinLb : public LoadBalancer {
public:
  RoundRobinLb(const HostVector& hosts, uint64_t seed) : hosts_(hosts), credit_(hosts.size(), 0) {
    for (const auto& h : hosts_) {
      if (h->weight != hosts_[0]->weight) weighted_ = true;
    }
    if (!hosts_.empty()) next_ = seed % hosts_.size();
  }
  HostSharedPtr choose() override {
    if (hosts_.empty()) return nullptr;
    if (!weighted_) {
      for (size_t tries = 0; tries < hosts_.size(); tries++) {
        const HostSharedPtr& h = hosts_[next_++ % hosts_.size()];
        if (h->healthy.load(std::memory_order_relaxed)) return h;
      }
      return nullptr;
    }
    size_t best = SIZE_MAX;
    int64_t healthy_total = 0;
    for (size_t i = 0; i < hosts_.size(); i++) {
      if (!hosts_[i]->healthy.load(std::memory_order_relaxed)) continue;
      credit_[i] += hosts_[i]->weight;
      healthy_total += hosts_[i]->weight;
      if (best == SIZE_MAX || credit_[i] > credit_[best]) best = i;
    }
    if (best == SIZE_MAX) return nullptr;
    // Charge what was handed out this round (healthy hosts only): charging the weight of
    // unhealthy hosts too would drift every credit down and flatten the split.
    credit_[best] -= healthy_total;
    return hosts_[best];
  }

private:
  HostVector hosts_;
  std::vector<int64_t> credit_;
  bool weighted_{false};
  size_t next_{0};
};

class RandomLb : public LoadBalancer {
public:
  RandomLb(const HostVector& hosts, uint64_t seed) : hosts_(hosts), rng_(seed) {}
  HostSharedPtr choose() override {
    // Weighted over the healthy hosts only: a point on [0, healthy total) falls into one
    // healthy host's share. (Redrawing when the point hits an unhealthy host, then giving
    // up on the first healthy one, skewed the split towards that host.)
    uint64_t total = 0;
    for (const auto& h : hosts_) {
      if (h->healthy.load(std::memory_order_relaxed)) total += h->weight;
    }
    if (total == 0) return nullptr;
    uint64_t point = rng_() % total;
    const HostSharedPtr* last = nullptr;
    for (const auto& h : hosts_) {
      if (!h->healthy.load(std::memory_order_relaxed)) continue;
      if (point < h->weight) return h;
      point -= h->weight;
      last = &h;
    }
    // Health changed between the two passes: any healthy host will do.
    return last ? *last : nullptr;
  }

private:
  HostVector hosts_;
  std::mt19937_64 rng_;
};

// Power of two choices: two random hosts, the one with fewer active requests (or, for L4,
// connections) wins; weights scale the load it compares.
class LeastRequestLb : public LoadBalancer {
public:
  LeastRequestLb(const HostVector& hosts, uint64_t seed) : hosts_(hosts), rng_(seed) {}
  HostSharedPtr choose() override {
    if (hosts_.empty()) return nullptr;
    if (hosts_.size() == 1) return hosts_[0]->healthy ? hosts_[0] : nullptr;
    HostSharedPtr best;
    double best_load = 0;
    int candidates = 0;
    // Two healthy candidates, a few extra draws allowed to step over unhealthy ones.
    for (int i = 0; i < 8 && candidates < 2; i++) {
      const HostSharedPtr& h = hosts_[rng_() % hosts_.size()];
      if (!h->healthy.load(std::memory_order_relaxed)) continue;
      candidates++;
      double load = static_cast<double>(h->rq_active.load(std::memory_order_relaxed) +
                                        h->cx_active.load(std::memory_order_relaxed) + 1) /
                    h->weight;
      if (!best || load < best_load) {
        best = h;
        best_load = load;
      }
    }
    if (!best) {
      // Every draw hit an unhealthy host (likely when most are down): take the least
      // loaded healthy host rather than report none.
      for (const auto& h : hosts_) {
        if (!h->healthy.load(std::memory_order_relaxed)) continue;
        double load = static_cast<double>(h->rq_active.load(std::memory_order_relaxed) +
                                          h->cx_active.load(std::memory_order_relaxed) + 1) /
                      h->weight;
        if (!best || load < best_load) {
          best = h;
          best_load = load;
        }
      }
    }
    return best;
  }

private:
  HostVector hosts_;
  std::mt19937_64 rng_;
};

} // namespace

LoadBalancerPtr createLoadBalancer(LbPolicy policy, const HostVector& hosts, uint64_t seed) {
  switch (policy) {
  case envoy::config::cluster::v3::Cluster::RANDOM:
    return std::make_unique<RandomLb>(hosts, seed);
  case envoy::config::cluster::v3::Cluster::LEAST_REQUEST:
    return std::make_unique<LeastRequestLb>(hosts, seed);
  default:
    return std::make_unique<RoundRobinLb>(hosts, seed);
  }
}

} // namespace upstream
} // namespace tern
