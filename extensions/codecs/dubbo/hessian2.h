#pragma once

// Just enough Hessian 2.0 (the final grammar, as Apache Dubbo's hessian-lite and
// hessian.js write it) for a proxy: read the strings and scalars it routes on, step over
// every other value without building it, and write a string.
//
// Not supported: the 2.0 draft's object and reference codes ('O' as a class definition,
// 'o', 'R' as a reference, 't' / 'T' types), which some old SOFA hessian libraries write
// and the reader rejects as errors.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "source/common/rpc/buffer_util.h"

namespace tern {
namespace dubbo {
namespace hessian2 {

class Reader {
public:
  explicit Reader(rpc::ByteCursor& in) : in_(in) {}

  bool atEnd() const { return in_.empty(); }
  bool peekTag(uint8_t& tag) const { return in_.peekByte(tag); }

  // A string, or null (read as empty, with `*null` set when given).
  absl::Status readString(std::string& out, bool* null = nullptr);
  // An int or a long.
  absl::Status readLong(int64_t& out);
  // A string, int, long or boolean as text (`present` true); any other value, null
  // included, is skipped with `present` false.
  absl::Status readScalar(std::string& out, bool& present);
  // Steps over one value of any kind, however nested (up to kMaxDepth levels).
  absl::Status skipValue() { return skip(0); }

  // The start of a map ('H', or 'M' and its type); `null` when the value is null instead.
  absl::Status readMapStart(bool& null);
  // True (and the end consumed) at the end of a map or variable-length list.
  bool atContainerEnd();

  static bool isStringTag(uint8_t tag) {
    return tag <= 0x1f || (tag >= 0x30 && tag <= 0x33) || tag == 'R' || tag == 'S';
  }
  static bool isIntTag(uint8_t tag) { return tag >= 0x80 ? tag <= 0xd7 : tag == 'I'; }
  static bool isLongTag(uint8_t tag) {
    return tag >= 0xd8 || (tag >= 0x38 && tag <= 0x3f) || tag == 'L' || tag == 'Y';
  }

  static constexpr int kMaxDepth = 64;

private:
  absl::Status skip(int depth);
  // The rest of a string whose first tag was `tag`; appended to `out` unless null.
  absl::Status readStringFrom(uint8_t tag, std::string* out);
  absl::Status readUtf8Chars(size_t chars, std::string* out);
  absl::Status readIntFrom(uint8_t tag, int32_t& v);
  absl::Status readLongFrom(uint8_t tag, int64_t& v);
  absl::Status readInt(int32_t& v);
  // A list or field count: an int that cannot exceed the bytes left (every value takes at
  // least one), so a forged count fails at once instead of looping.
  absl::Status readCount(uint32_t& n);
  absl::Status skipType();
  absl::Status skipBinaryFrom(uint8_t tag);

  rpc::ByteCursor& in_;
  // Field counts of the class definitions seen so far, by definition number.
  std::vector<uint32_t> class_fields_;
};

// Appends `utf8` as a Hessian string: its length counts UTF-16 units, and strings over
// 32768 units go in chunks. Bytes that are not UTF-8 are written as '?'.
void writeString(absl::string_view utf8, std::string& out);

} // namespace hessian2
} // namespace dubbo
} // namespace tern
