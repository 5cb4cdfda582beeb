#include "source/common/common/logger.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace tern {
namespace log {

std::atomic<int> g_level{static_cast<int>(Level::Info)};

void setLevel(Level l) { g_level.store(static_cast<int>(l), std::memory_order_relaxed); }
Level level() { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

static constexpr absl::string_view kNames[] = {"trace", "debug", "info", "warn", "error", "off"};

bool parseLevel(absl::string_view name, Level* out) {
  for (int i = 0; i <= static_cast<int>(Level::Off); i++) {
    if (name == kNames[i]) {
      *out = static_cast<Level>(i);
      return true;
    }
  }
  if (name == "warning" || name == "critical") {
    *out = name == "warning" ? Level::Warn : Level::Error;
    return true;
  }
  return false;
}

absl::string_view levelName(Level l) { return kNames[static_cast<int>(l)]; }

void write(Level l, const char* file, int line, const std::string& msg) {
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm t;
  gmtime_r(&tv.tv_sec, &t);
  const char* base = file;
  for (const char* p = file; *p; p++) {
    if (*p == '/') base = p + 1;
  }
  // One write(2) per line so lines from different threads do not interleave.
  std::string out = absl::StrFormat("[%04d-%02d-%02d %02d:%02d:%02d.%03d][%s][%s:%d] %s\n",
                                    t.tm_year + 1900, t.tm_mon + 1, t.tm_mday, t.tm_hour,
                                    t.tm_min, t.tm_sec, static_cast<int>(tv.tv_usec / 1000),
                                    levelName(l), base, line, msg);
  ssize_t rc = ::write(STDERR_FILENO, out.data(), out.size());
  (void)rc;
}

} // namespace log
} // namespace tern
