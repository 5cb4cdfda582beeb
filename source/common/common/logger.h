#pragma once

#include <atomic>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace tern {
namespace log {

enum class Level { Trace = 0, Debug, Info, Warn, Error, Off };

// Process-wide level; checked before formatting so disabled logs cost one load.
extern std::atomic<int> g_level;

inline bool enabled(Level l) { return static_cast<int>(l) >= g_level.load(std::memory_order_relaxed); }
void setLevel(Level l);
Level level();
// Parses "trace".."off"; false for anything else.
bool parseLevel(absl::string_view name, Level* out);
absl::string_view levelName(Level l);
void write(Level l, const char* file, int line, const std::string& msg);

} // namespace log
} // namespace tern

#define TERN_LOG(LEVEL, ...)                                                                 \
  do {                                                                                       \
    if (::tern::log::enabled(::tern::log::Level::LEVEL)) {                                   \
      ::tern::log::write(::tern::log::Level::LEVEL, __FILE__, __LINE__,                      \
                         ::absl::StrFormat(__VA_ARGS__));                                    \
    }                                                                                        \
  } while (0)
