#include "source/common/stats/stats.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tern {
namespace stats {

Counter& Store::counter(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = counters_.find(name);
  if (it == counters_.end()) {
    it = counters_.emplace(std::string(name), std::make_unique<Counter>()).first;
  }
  return *it->second;
}

Gauge& Store::gauge(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = gauges_.find(name);
  if (it == gauges_.end()) {
    it = gauges_.emplace(std::string(name), std::make_unique<Gauge>()).first;
  }
  return *it->second;
}

Histogram& Store::histogram(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  auto it = histograms_.find(name);
  if (it == histograms_.end()) {
    it = histograms_.emplace(std::string(name), std::make_unique<Histogram>()).first;
  }
  return *it->second;
}

void Histogram::record(double ms) {
  size_t i = 0;
  while (i < kBuckets && ms > kBounds[i]) i++;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(ms * 1000), std::memory_order_relaxed);
}

uint64_t Histogram::cumulative(size_t i) const {
  uint64_t n = 0;
  for (size_t k = 0; k <= i && k <= kBuckets; k++) n += buckets_[k].load(std::memory_order_relaxed);
  return n;
}

double Histogram::quantile(double q) const {
  uint64_t total = 0;
  uint64_t counts[kBuckets + 1];
  for (size_t k = 0; k <= kBuckets; k++) total += counts[k] = buckets_[k].load(std::memory_order_relaxed);
  if (total == 0) return 0;
  double target = q * total;
  uint64_t seen = 0;
  for (size_t k = 0; k <= kBuckets; k++) {
    if (counts[k] == 0) continue;
    if (seen + counts[k] >= target) {
      double lo = k == 0 ? 0 : kBounds[k - 1];
      double hi = k < kBuckets ? kBounds[k] : kBounds[kBuckets - 1] * 2;
      return lo + (hi - lo) * ((target - seen) / counts[k]);
    }
    seen += counts[k];
  }
  return kBounds[kBuckets - 1];
}

const Counter* Store::findCounter(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = counters_.find(name);
  return it == counters_.end() ? nullptr : it->second.get();
}

const Gauge* Store::findGauge(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = gauges_.find(name);
  return it == gauges_.end() ? nullptr : it->second.get();
}

uint64_t Store::counterValue(absl::string_view name) const {
  const Counter* c = findCounter(name);
  return c ? c->value() : 0;
}

int64_t Store::gaugeValue(absl::string_view name) const {
  const Gauge* g = findGauge(name);
  return g ? g->value() : 0;
}

std::string Store::dump() const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> lines;
  for (const auto& [name, c] : counters_) lines[name] = absl::StrCat(c->value());
  for (const auto& [name, g] : gauges_) lines[name] = absl::StrCat(g->value());
  for (const auto& [name, h] : histograms_) {
    lines[name] = h->count() == 0 ? "No recorded values"
                                  : absl::StrFormat("P50(%.1f) P99(%.1f) count(%d) sum(%.1f)",
                                                    h->quantile(0.5), h->quantile(0.99), h->count(),
                                                    h->sum());
  }
  std::string out;
  for (const auto& [name, v] : lines) absl::StrAppend(&out, name, ": ", v, "\n");
  return out;
}

namespace {
// Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; Tern's dotted names map to '_'.
std::string promName(absl::string_view name) {
  std::string out = "tern_";
  for (char c : name) out.push_back(absl::ascii_isalnum(c) || c == '_' ? c : '_');
  return out;
}
} // namespace

std::string Store::prometheus() const {
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, c] : counters_) {
    std::string n = promName(name);
    absl::StrAppend(&out, "# TYPE ", n, " counter\n", n, " ", c->value(), "\n");
  }
  for (const auto& [name, g] : gauges_) {
    std::string n = promName(name);
    absl::StrAppend(&out, "# TYPE ", n, " gauge\n", n, " ", g->value(), "\n");
  }
  for (const auto& [name, h] : histograms_) {
    std::string n = promName(name);
    absl::StrAppend(&out, "# TYPE ", n, " histogram\n");
    for (size_t i = 0; i < Histogram::kBuckets; i++) {
      absl::StrAppend(&out, n, "_bucket{le=\"", Histogram::kBounds[i], "\"} ", h->cumulative(i), "\n");
    }
    absl::StrAppend(&out, n, "_bucket{le=\"+Inf\"} ", h->count(), "\n");
    absl::StrAppend(&out, n, "_sum ", absl::StrFormat("%.3f", h->sum()), "\n");
    absl::StrAppend(&out, n, "_count ", h->count(), "\n");
  }
  return out;
}

} // namespace stats
} // namespace tern
