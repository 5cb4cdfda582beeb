// Load balancers over one priority level: exact sequences where the algorithm is
// deterministic (round robin, smooth weighted round robin), statistics with generous
// bounds and fixed seeds where it is random.
#include "source/common/upstream/load_balancer.h"

#include <map>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tern {
namespace upstream {
namespace {

using envoy::config::cluster::v3::Cluster;

HostVector makeHosts(const std::vector<uint32_t>& weights) {
  HostVector hosts;
  for (size_t i = 0; i < weights.size(); i++) {
    auto a = network::Address::fromIpPort(absl::StrCat("10.0.0.", i + 1), 80);
    hosts.push_back(std::make_shared<Host>(*a, absl::StrCat("h", i), weights[i], 0));
  }
  return hosts;
}

// Index of each pick in `hosts` (-1 for nullptr).
std::vector<int> picks(LoadBalancer& lb, const HostVector& hosts, int n) {
  std::vector<int> out;
  for (int i = 0; i < n; i++) {
    HostSharedPtr h = lb.choose();
    int idx = -1;
    for (size_t k = 0; k < hosts.size(); k++) {
      if (hosts[k] == h) idx = static_cast<int>(k);
    }
    out.push_back(idx);
  }
  return out;
}

std::map<int, int> counts(const std::vector<int>& v) {
  std::map<int, int> c;
  for (int x : v) c[x]++;
  return c;
}

int longestRun(const std::vector<int>& v, int host) {
  int best = 0, run = 0;
  for (int x : v) {
    run = x == host ? run + 1 : 0;
    best = std::max(best, run);
  }
  return best;
}

TEST(RoundRobinLbTest, CyclesThroughAllHosts) {
  HostVector hosts = makeHosts({1, 1, 1, 1});
  for (uint64_t seed : {0, 1, 7}) {
    auto lb = createLoadBalancer(Cluster::ROUND_ROBIN, hosts, seed);
    std::vector<int> p = picks(*lb, hosts, 40);
    // Every window of 4 consecutive picks is a permutation of the hosts: a strict cycle.
    for (size_t i = 0; i + 4 <= p.size(); i++) {
      std::map<int, int> c = counts({p.begin() + i, p.begin() + i + 4});
      EXPECT_EQ(c.size(), 4u) << "seed " << seed << " window at " << i;
    }
  }
}

TEST(RoundRobinLbTest, SeedVariesTheStartingHost) {
  HostVector hosts = makeHosts({1, 1, 1});
  std::set<int> firsts;
  for (uint64_t seed = 0; seed < 3; seed++) {
    auto lb = createLoadBalancer(Cluster::ROUND_ROBIN, hosts, seed);
    firsts.insert(picks(*lb, hosts, 1)[0]);
  }
  EXPECT_EQ(firsts.size(), 3u);
}

TEST(RoundRobinLbTest, SkipsUnhealthyHosts) {
  HostVector hosts = makeHosts({1, 1, 1});
  hosts[1]->healthy = false;
  auto lb = createLoadBalancer(Cluster::ROUND_ROBIN, hosts, 0);
  std::vector<int> p = picks(*lb, hosts, 20);
  std::map<int, int> c = counts(p);
  EXPECT_EQ(c.count(1), 0u);
  EXPECT_EQ(c[0], 10);
  EXPECT_EQ(c[2], 10);
  hosts[1]->healthy = true; // health is read at pick time
  EXPECT_EQ(counts(picks(*lb, hosts, 30)).size(), 3u);
}

TEST(RoundRobinLbTest, NoHealthyHostOrNoHostGivesNull) {
  HostVector hosts = makeHosts({1, 1});
  for (auto& h : hosts) h->healthy = false;
  for (auto policy : {Cluster::ROUND_ROBIN, Cluster::RANDOM, Cluster::LEAST_REQUEST}) {
    EXPECT_EQ(createLoadBalancer(policy, hosts, 1)->choose(), nullptr) << policy;
    EXPECT_EQ(createLoadBalancer(policy, {}, 1)->choose(), nullptr) << policy;
  }
  HostVector weighted = makeHosts({1, 2});
  for (auto& h : weighted) h->healthy = false;
  EXPECT_EQ(createLoadBalancer(Cluster::ROUND_ROBIN, weighted, 1)->choose(), nullptr);
}

// Smooth weighted round robin: weights 1:2:3 give exactly 1, 2 and 3 picks in every
// cycle of 6, and the heavy host's picks are spread (never 3 in a row).
TEST(WeightedRoundRobinLbTest, ExactSharePerCycle) {
  HostVector hosts = makeHosts({1, 2, 3});
  auto lb = createLoadBalancer(Cluster::ROUND_ROBIN, hosts, 0);
  std::vector<int> p = picks(*lb, hosts, 600);
  for (size_t cycle = 0; cycle < 100; cycle++) {
    std::map<int, int> c = counts({p.begin() + cycle * 6, p.begin() + cycle * 6 + 6});
    ASSERT_EQ(c[0], 1) << "cycle " << cycle;
    ASSERT_EQ(c[1], 2) << "cycle " << cycle;
    ASSERT_EQ(c[2], 3) << "cycle " << cycle;
  }
  EXPECT_LE(longestRun(p, 2), 2);
  EXPECT_EQ(longestRun(p, 0), 1);
}

// Weights 1:1:4. Smooth WRR does NOT prevent three picks of the heavy host in a row: the
// cycle is C A C B C C, so "C C | C" happens across cycles. What it does guarantee is
// the exact share per cycle and no burst of all four C's (plain WRR gives C C C C A B).
TEST(WeightedRoundRobinLbTest, HeavyHostIsSpreadNotBurst) {
  HostVector hosts = makeHosts({1, 1, 4});
  auto lb = createLoadBalancer(Cluster::ROUND_ROBIN, hosts, 0);
  std::vector<int> p = picks(*lb, hosts, 600);
  for (size_t cycle = 0; cycle < 100; cycle++) {
    std::map<int, int> c = counts({p.begin() + cycle * 6, p.begin() + cycle * 6 + 6});
    ASSERT_EQ(c[0], 1);
    ASSERT_EQ(c[1], 1);
    ASSERT_EQ(c[2], 4);
  }
  EXPECT_LE(longestRun(p, 2), 3);
  EXPECT_EQ(longestRun(p, 0), 1);
  EXPECT_EQ(longestRun(p, 1), 1);
}

// With a host down, the others keep their relative weights 1:2:3. (The bug this caught:
// each pick was charged the total weight of all hosts, healthy or not, which drifted the
// split towards equal shares, 3:4:5 here.)
TEST(WeightedRoundRobinLbTest, UnhealthyHostDoesNotSkewTheOthers) {
  HostVector hosts = makeHosts({1, 2, 3, 6});
  hosts[3]->healthy = false;
  auto lb = createLoadBalancer(Cluster::ROUND_ROBIN, hosts, 0);
  std::map<int, int> c = counts(picks(*lb, hosts, 600));
  EXPECT_EQ(c.count(3), 0u);
  EXPECT_EQ(c[0], 100);
  EXPECT_EQ(c[1], 200);
  EXPECT_EQ(c[2], 300);
  // Back to healthy: the full 1:2:3:6 split, over whole cycles.
  hosts[3]->healthy = true;
  picks(*lb, hosts, 12); // let the credits settle after the change
  c = counts(picks(*lb, hosts, 1200));
  EXPECT_NEAR(c[0], 100, 2);
  EXPECT_NEAR(c[1], 200, 2);
  EXPECT_NEAR(c[2], 300, 2);
  EXPECT_NEAR(c[3], 600, 2);
}

TEST(RandomLbTest, RespectsWeightsStatistically) {
  HostVector hosts = makeHosts({1, 3});
  auto lb = createLoadBalancer(Cluster::RANDOM, hosts, 42);
  std::map<int, int> c = counts(picks(*lb, hosts, 40000));
  // Expected 10000 : 30000; the bounds are many standard deviations (~87) wide.
  EXPECT_GT(c[0], 9000);
  EXPECT_LT(c[0], 11000);
  EXPECT_EQ(c[0] + c[1], 40000);
}

TEST(RandomLbTest, NeverPicksUnhealthy) {
  HostVector hosts = makeHosts({5, 1, 1});
  hosts[0]->healthy = false; // the heaviest one, so most draws land on it
  auto lb = createLoadBalancer(Cluster::RANDOM, hosts, 3);
  std::map<int, int> c = counts(picks(*lb, hosts, 5000));
  EXPECT_EQ(c.count(0), 0u);
  EXPECT_EQ(c.count(-1), 0u);
  EXPECT_GT(c[1], 1000);
  EXPECT_GT(c[2], 1000);
}

// The healthy hosts share by their own weights even when an unhealthy host holds most
// of the total weight. (Bug this caught: a draw landing on the unhealthy host was retried
// 8 times, then the first healthy host was taken, so here host 1 got ~73%, host 2 ~27%.)
TEST(RandomLbTest, UnhealthyHeavyHostDoesNotSkewTheRest) {
  HostVector hosts = makeHosts({20, 1, 1});
  hosts[0]->healthy = false;
  auto lb = createLoadBalancer(Cluster::RANDOM, hosts, 11);
  std::map<int, int> c = counts(picks(*lb, hosts, 20000));
  EXPECT_EQ(c.count(0), 0u);
  EXPECT_GT(c[1], 9000);
  EXPECT_GT(c[2], 9000);
}

// Power of two choices: the idle host wins whenever it is one of the two draws (3/4 of
// the time with two hosts).
TEST(LeastRequestLbTest, PrefersTheLessLoadedHost) {
  HostVector hosts = makeHosts({1, 1});
  hosts[0]->rq_active = 10;
  auto lb = createLoadBalancer(Cluster::LEAST_REQUEST, hosts, 9);
  std::map<int, int> c = counts(picks(*lb, hosts, 10000));
  EXPECT_GT(c[1], 6500);
  EXPECT_LT(c[1], 8500);

  // Three hosts, one idle: it should win 1 - (2/3)^2 = 5/9 of picks, not 1/3.
  HostVector three = makeHosts({1, 1, 1});
  three[0]->rq_active = 5;
  three[2]->rq_active = 5;
  lb = createLoadBalancer(Cluster::LEAST_REQUEST, three, 9);
  c = counts(picks(*lb, three, 9000));
  EXPECT_GT(c[1], 4500);
  EXPECT_LT(c[1], 5500);
}

TEST(LeastRequestLbTest, EqualLoadSpreadsAndUnhealthyNeverPicked) {
  HostVector hosts = makeHosts({1, 1, 1});
  hosts[2]->healthy = false;
  auto lb = createLoadBalancer(Cluster::LEAST_REQUEST, hosts, 5);
  std::map<int, int> c = counts(picks(*lb, hosts, 10000));
  EXPECT_EQ(c.count(2), 0u);
  EXPECT_GT(c[0], 4000);
  EXPECT_GT(c[1], 4000);
}

// Nine of ten hosts down: the draws mostly land on unhealthy hosts, yet the healthy one
// must still be found. (Bug this caught: after 8 unlucky draws the balancer gave up and
// returned nullptr, about 43% of the time here.)
TEST(LeastRequestLbTest, FindsTheOnlyHealthyHost) {
  HostVector hosts = makeHosts({1, 1, 1, 1, 1, 1, 1, 1, 1, 1});
  for (size_t i = 0; i < hosts.size(); i++) hosts[i]->healthy = i == 6;
  auto lb = createLoadBalancer(Cluster::LEAST_REQUEST, hosts, 4);
  std::map<int, int> c = counts(picks(*lb, hosts, 1000));
  EXPECT_EQ(c[6], 1000);
}

} // namespace
} // namespace upstream
} // namespace tern
