#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "source/common/common/recycler.h"

namespace tern {
namespace http {

// Request and response headers in arrival order. Names are stored lower-case (HTTP/2
// requires it, HTTP/1 is case-insensitive); the request line and status line travel as
// pseudo-headers (":method", ":path", ":authority", ":scheme", ":status") so that every
// codec and filter sees one representation.
//
// Names and values live in an arena owned by the map (an inline block, then heap blocks),
// and entries are views into it: a typical message costs one allocation (the map itself)
// instead of two strings per field. Views stay valid until the entry is changed or
// removed; a changed value gets fresh arena bytes (the old ones are dead until the map
// goes away, so a filter rewriting one field in a loop would grow it: none does).
class HeaderMap {
public:
  using Entry = std::pair<absl::string_view, absl::string_view>;

  TERN_RECYCLED(HeaderMap)
  HeaderMap() = default;
  HeaderMap(const HeaderMap& other) { copyFrom(other); }
  HeaderMap& operator=(const HeaderMap& other) {
    if (this != &other) {
      clear();
      copyFrom(other);
    }
    return *this;
  }
  // Entries point into the inline block, so a move is a copy.
  HeaderMap(HeaderMap&& other) : HeaderMap(static_cast<const HeaderMap&>(other)) {}
  HeaderMap& operator=(HeaderMap&& other) { return *this = static_cast<const HeaderMap&>(other); }

  // `name` must already be lower-case.
  void add(absl::string_view name, absl::string_view value) {
    if (!name.empty() && *name.data() == ':') noteStatus(name, value);
    entries_.emplace_back(store(name), store(value));
  }
  // Adds a field whose name is lower-cased on the way in.
  void addLowerCasing(absl::string_view name, absl::string_view value);
  // Replaces every entry named `name` with one.
  void set(absl::string_view name, absl::string_view value);
  void remove(absl::string_view name);
  void clear();
  // First value of `name`, or nullptr. The pointer is valid until the map changes.
  const absl::string_view* get(absl::string_view name) const;
  absl::string_view getView(absl::string_view name) const {
    const absl::string_view* v = get(name);
    return v ? *v : absl::string_view();
  }
  bool has(absl::string_view name) const { return get(name) != nullptr; }
  size_t count(absl::string_view name) const;

  absl::Span<const Entry> entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  // Bytes of names and values (for limits).
  size_t byteSize() const;

  // Pseudo-header shortcuts.
  absl::string_view method() const { return getView(":method"); }
  absl::string_view path() const { return getView(":path"); }
  absl::string_view host() const { return getView(":authority"); }
  absl::string_view status() const { return getView(":status"); }
  // The :status as a number, 0 when absent or malformed (kept up to date by add/set).
  int statusCode() const { return status_code_; }

private:
  static constexpr size_t kInlineBytes = 320;
  static constexpr size_t kInlineEntries = 12;

  // Arena bytes for `n` more.
  char* reserve(size_t n) {
    if (n > left_) return reserveSlow(n);
    char* p = next_;
    next_ += n;
    left_ -= n;
    return p;
  }
  char* reserveSlow(size_t n);
  // Copies `s` into the arena; returns the copy.
  absl::string_view store(absl::string_view s) {
    if (s.empty()) return absl::string_view();
    char* p = reserve(s.size());
    std::memcpy(p, s.data(), s.size());
    return absl::string_view(p, s.size());
  }
  void noteStatus(absl::string_view name, absl::string_view value);
  void copyFrom(const HeaderMap& other);

  absl::InlinedVector<Entry, kInlineEntries> entries_;
  char* next_{inline_};
  size_t left_{kInlineBytes};
  std::vector<std::unique_ptr<char[]>> blocks_;
  int status_code_{0};
  char inline_[kInlineBytes];
};
using HeaderMapPtr = std::unique_ptr<HeaderMap>;

// Lower-cases ASCII in place.
void toLower(std::string& s);
// Whether `list` (a comma-separated header value) contains `token`, case-insensitively.
bool hasToken(absl::string_view list, absl::string_view token);

} // namespace http
} // namespace tern
