#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tern {
namespace stats {

// Counters and gauges are relaxed atomics: written on the hot path by the shard that owns
// the object, read by anyone (tests, the dump on SIGUSR1, later the admin endpoint).
class Counter {
public:
  void inc() { value_.fetch_add(1, std::memory_order_relaxed); }
  void add(uint64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
public:
  void inc() { value_.fetch_add(1, std::memory_order_relaxed); }
  void dec() { value_.fetch_sub(1, std::memory_order_relaxed); }
  void add(int64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void sub(int64_t n) { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(int64_t n) { value_.store(n, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<int64_t> value_{0};
};

// Latency distribution in milliseconds: fixed buckets (Envoy's default bounds), relaxed
// atomic counts, so recording costs a few adds and no lock.
class Histogram {
public:
  static constexpr double kBounds[] = {0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
                                       5000, 10000, 30000, 60000, 300000, 600000, 1800000,
                                       3600000};
  static constexpr size_t kBuckets = sizeof(kBounds) / sizeof(kBounds[0]);

  void record(double ms);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_us_.load(std::memory_order_relaxed) / 1000.0; }
  // Cumulative count of values <= kBounds[i].
  uint64_t cumulative(size_t i) const;
  // Estimated quantile (q in [0,1]) by linear interpolation inside the bucket; 0 if empty.
  double quantile(double q) const;

private:
  std::atomic<uint64_t> buckets_[kBuckets + 1]{}; // last: above every bound
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

// Owns every stat by full name. Lookups take a lock and happen when objects are built,
// never per request; the hot path holds references.
class Store {
public:
  Counter& counter(absl::string_view name);
  Gauge& gauge(absl::string_view name);
  Histogram& histogram(absl::string_view name);

  // nullptr when no such stat exists (tests read stats this way).
  const Counter* findCounter(absl::string_view name) const;
  const Gauge* findGauge(absl::string_view name) const;
  uint64_t counterValue(absl::string_view name) const;
  int64_t gaugeValue(absl::string_view name) const;

  // "name: value" lines, sorted by name (histograms: "name: P50(x) P99(y) count(n)").
  std::string dump() const;
  // Prometheus text exposition format (version 0.0.4).
  std::string prometheus() const;

private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Gauge>, std::less<>> gauges_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Histogram>, std::less<>> histograms_ ABSL_GUARDED_BY(mu_);
};

} // namespace stats
} // namespace tern

// Declares a struct of stat references from an X-macro list, so a component's whole set
// of metrics reads in one place:
//   #define MY_STATS(COUNTER, GAUGE) COUNTER(cx_total) GAUGE(cx_active)
//   TERN_STATS_STRUCT(MyStats, MY_STATS);
//   MyStats s = MyStats::create(store, "prefix.");
#define TERN_STAT_MEMBER_COUNTER(n) ::tern::stats::Counter& n;
#define TERN_STAT_MEMBER_GAUGE(n) ::tern::stats::Gauge& n;
#define TERN_STAT_INIT_COUNTER(n) store.counter(prefix + #n),
#define TERN_STAT_INIT_GAUGE(n) store.gauge(prefix + #n),
#define TERN_STATS_STRUCT(NAME, LIST)                                                        \
  struct NAME {                                                                              \
    LIST(TERN_STAT_MEMBER_COUNTER, TERN_STAT_MEMBER_GAUGE)                                   \
    static NAME create(::tern::stats::Store& store, const std::string& prefix) {             \
      return NAME{LIST(TERN_STAT_INIT_COUNTER, TERN_STAT_INIT_GAUGE)};                       \
    }                                                                                        \
  }
// Histograms are declared next to such a struct: `stats::Histogram& rq_time;` set from
// store.histogram(prefix + "rq_time").
