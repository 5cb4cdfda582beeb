#include "source/common/stats/stats.h"

#include "absl/strings/str_cat.h"

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
  std::string out;
  for (const auto& [name, v] : lines) absl::StrAppend(&out, name, ": ", v, "\n");
  return out;
}

} // namespace stats
} // namespace tern
