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

// Owns every stat by full name. Lookups take a lock and happen when objects are built,
// never per request; the hot path holds references.
class Store {
public:
  Counter& counter(absl::string_view name);
  Gauge& gauge(absl::string_view name);

  // nullptr when no such stat exists (tests read stats this way).
  const Counter* findCounter(absl::string_view name) const;
  const Gauge* findGauge(absl::string_view name) const;
  uint64_t counterValue(absl::string_view name) const;
  int64_t gaugeValue(absl::string_view name) const;

  // "name: value" lines, sorted by name.
  std::string dump() const;

private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Counter>, std::less<>> counters_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<Gauge>, std::less<>> gauges_ ABSL_GUARDED_BY(mu_);
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
