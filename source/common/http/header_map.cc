#include "source/common/http/header_map.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace tern {
namespace http {

char* HeaderMap::reserveSlow(size_t n) {
  // Blocks double from 1 KiB; a single huge field gets a block of its own size.
  size_t size = std::max<size_t>(n, size_t(1024) << std::min<size_t>(blocks_.size(), 6));
  blocks_.emplace_back(new char[size]);
  next_ = blocks_.back().get() + n;
  left_ = size - n;
  return blocks_.back().get();
}

void HeaderMap::noteStatus(absl::string_view name, absl::string_view value) {
  if (name.size() != 7 || name != ":status") return;
  int code = 0;
  if (value.size() != 3) {
    status_code_ = 0;
    return;
  }
  for (char c : value) {
    if (c < '0' || c > '9') {
      status_code_ = 0;
      return;
    }
    code = code * 10 + (c - '0');
  }
  status_code_ = code;
}

void HeaderMap::addLowerCasing(absl::string_view name, absl::string_view value) {
  char* p = reserve(name.size());
  for (size_t i = 0; i < name.size(); i++) p[i] = absl::ascii_tolower(name[i]);
  absl::string_view lowered(p, name.size());
  if (!name.empty() && name[0] == ':') noteStatus(lowered, value);
  entries_.emplace_back(lowered, store(value));
}

void HeaderMap::set(absl::string_view name, absl::string_view value) {
  bool done = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->first == name) {
      if (!done) {
        it->second = store(value);
        done = true;
        ++it;
      } else {
        it = entries_.erase(it);
      }
    } else {
      ++it;
    }
  }
  if (!done) {
    add(name, value);
  } else if (!name.empty() && name[0] == ':') {
    noteStatus(name, value);
  }
}

void HeaderMap::remove(absl::string_view name) {
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const Entry& e) { return e.first == name; }),
                 entries_.end());
  if (name == ":status") status_code_ = 0;
}

void HeaderMap::clear() {
  entries_.clear();
  blocks_.clear();
  next_ = inline_;
  left_ = kInlineBytes;
  status_code_ = 0;
}

void HeaderMap::copyFrom(const HeaderMap& other) {
  for (const Entry& e : other.entries_) add(e.first, e.second);
}

const absl::string_view* HeaderMap::get(absl::string_view name) const {
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

void toLower(std::string& s) { absl::AsciiStrToLower(&s); }

bool hasToken(absl::string_view list, absl::string_view token) {
  const char* p = list.data();
  const char* end = p + list.size();
  while (p < end) {
    const char* comma = static_cast<const char*>(std::memchr(p, ',', end - p));
    const char* e = comma ? comma : end;
    const char* b = p;
    while (b < e && (*b == ' ' || *b == '\t')) b++;
    const char* t = e;
    while (t > b && (t[-1] == ' ' || t[-1] == '\t')) t--;
    if (size_t(t - b) == token.size()) {
      size_t i = 0;
      while (i < token.size() && absl::ascii_tolower(static_cast<unsigned char>(b[i])) ==
                                     absl::ascii_tolower(static_cast<unsigned char>(token[i]))) {
        i++;
      }
      if (i == token.size()) return true;
    }
    if (comma == nullptr) break;
    p = comma + 1;
  }
  return false;
}

} // namespace http
} // namespace tern
