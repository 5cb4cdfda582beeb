#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace tern {
namespace http {

// Request and response headers in arrival order. Names are stored lower-case (HTTP/2
// requires it, HTTP/1 is case-insensitive); the request line and status line travel as
// pseudo-headers (":method", ":path", ":authority", ":scheme", ":status") so that every
// codec and filter sees one representation.
class HeaderMap {
public:
  using Entry = std::pair<std::string, std::string>;

  // Room for a typical request's fields up front: growing 1-2-4-8-16 moved every string.
  HeaderMap() { entries_.reserve(12); }

  // `name` must already be lower-case.
  void add(absl::string_view name, absl::string_view value);
  // Replaces every entry named `name` with one.
  void set(absl::string_view name, absl::string_view value);
  void remove(absl::string_view name);
  // First value of `name`, or nullptr.
  const std::string* get(absl::string_view name) const;
  absl::string_view getView(absl::string_view name) const {
    const std::string* v = get(name);
    return v ? absl::string_view(*v) : absl::string_view();
  }
  bool has(absl::string_view name) const { return get(name) != nullptr; }
  size_t count(absl::string_view name) const;

  const std::vector<Entry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  // Bytes of names and values (for limits).
  size_t byteSize() const;

  // Pseudo-header shortcuts.
  absl::string_view method() const { return getView(":method"); }
  absl::string_view path() const { return getView(":path"); }
  absl::string_view host() const { return getView(":authority"); }
  absl::string_view status() const { return getView(":status"); }
  // The :status as a number, 0 when absent or malformed.
  int statusCode() const;

private:
  std::vector<Entry> entries_;
};
using HeaderMapPtr = std::unique_ptr<HeaderMap>;

// Lower-cases ASCII in place.
void toLower(std::string& s);
// Whether `list` (a comma-separated header value) contains `token`, case-insensitively.
bool hasToken(absl::string_view list, absl::string_view token);

} // namespace http
} // namespace tern
