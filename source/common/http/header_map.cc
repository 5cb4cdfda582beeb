#include "source/common/http/header_map.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace tern {
namespace http {

void HeaderMap::add(absl::string_view name, absl::string_view value) {
  entries_.emplace_back(std::string(name), std::string(value));
}

void HeaderMap::set(absl::string_view name, absl::string_view value) {
  bool done = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first == name) {
      if (!done) {
        it->second = std::string(value);
        done = true;
        ++it;
      } else {
        it = entries_.erase(it);
      }
    } else {
      ++it;
    }
  }
  if (!done) add(name, value);
}

void HeaderMap::remove(absl::string_view name) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first == name) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
}

const std::string* HeaderMap::get(absl::string_view name) const {
  for (const auto& e : entries_) {
    if (e.first == name) return &e.second;
  }
  return nullptr;
}

size_t HeaderMap::count(absl::string_view name) const {
  size_t n = 0;
  for (const auto& e : entries_) n += e.first == name;
  return n;
}

size_t HeaderMap::byteSize() const {
  size_t n = 0;
  for (const auto& e : entries_) n += e.first.size() + e.second.size();
  return n;
}

int HeaderMap::statusCode() const {
  int code = 0;
  if (!absl::SimpleAtoi(status(), &code)) return 0;
  return code;
}

void toLower(std::string& s) { absl::AsciiStrToLower(&s); }

bool hasToken(absl::string_view list, absl::string_view token) {
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(part), token)) return true;
  }
  return false;
}

} // namespace http
} // namespace tern
