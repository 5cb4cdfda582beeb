#include "extensions/codecs/dubbo/hessian2.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tern {
namespace dubbo {
namespace hessian2 {
namespace {

absl::Status truncated() { return absl::InvalidArgumentError("hessian2: truncated value"); }

absl::Status unexpected(uint8_t tag, absl::string_view wanted) {
  return absl::InvalidArgumentError(
      absl::StrFormat("hessian2: unexpected code 0x%02x where %s was expected", tag, wanted));
}

// Bytes in the UTF-8 sequence led by `b` (0: not a lead byte).
int utf8Length(uint8_t b) {
  if (b < 0x80) return 1;
  if ((b & 0xe0) == 0xc0) return 2;
  if ((b & 0xf0) == 0xe0) return 3;
  if ((b & 0xf8) == 0xf0) return 4;
  return 0;
}

} // namespace

absl::Status Reader::readUtf8Chars(size_t chars, std::string* out) {
  // Hessian counts UTF-16 units: a 4-byte sequence is a surrogate pair, two units. Java
  // writes a pair as two 3-byte sequences instead, which counts the same.
  while (chars > 0) {
    // ASCII (one byte, one unit each) is nearly every string here: take a run at once.
    absl::string_view run = in_.contiguous();
    size_t ascii = 0;
    const size_t limit = std::min(run.size(), chars);
    while (ascii < limit && static_cast<uint8_t>(run[ascii]) < 0x80) ascii++;
    if (ascii > 0) {
      if (out != nullptr) out->append(run.data(), ascii);
      in_.skip(ascii);
      chars -= ascii;
      continue;
    }
    uint8_t b;
    if (!in_.peekByte(b)) return truncated();
    const int len = utf8Length(b);
    if (len == 0) return absl::InvalidArgumentError("hessian2: bad UTF-8 in a string");
    const size_t units = len == 4 ? 2 : 1;
    if (units > chars) {
      return absl::InvalidArgumentError("hessian2: string length splits a character");
    }
    if (out != nullptr ? !in_.readAppend(*out, len) : !in_.skip(len)) return truncated();
    chars -= units;
  }
  return absl::OkStatus();
}

absl::Status Reader::readStringFrom(uint8_t tag, std::string* out) {
  for (;;) {
    if (tag <= 0x1f) return readUtf8Chars(tag, out);
    if (tag >= 0x30 && tag <= 0x33) {
      uint8_t b0;
      if (!in_.readByte(b0)) return truncated();
      return readUtf8Chars((size_t(tag - 0x30) << 8) | b0, out);
    }
    if (tag != 'R' && tag != 'S') return unexpected(tag, "a string");
    uint16_t len;
    if (!in_.readBe16(len)) return truncated();
    absl::Status st = readUtf8Chars(len, out);
    if (!st.ok() || tag == 'S') return st;
    // 'R' is a chunk that another string part follows.
    if (!in_.readByte(tag)) return truncated();
  }
}

absl::Status Reader::readString(std::string& out, bool* null) {
  out.clear();
  uint8_t tag;
  if (!in_.readByte(tag)) return truncated();
  if (null != nullptr) *null = tag == 'N';
  if (tag == 'N') return absl::OkStatus();
  return readStringFrom(tag, &out);
}

absl::Status Reader::readIntFrom(uint8_t tag, int32_t& v) {
  uint8_t b[4];
  if (tag >= 0x80 && tag <= 0xbf) {
    v = int32_t(tag) - 0x90;
  } else if (tag >= 0xc0 && tag <= 0xcf) {
    if (!in_.read(b, 1)) return truncated();
    v = ((int32_t(tag) - 0xc8) * 256) + b[0];
  } else if (tag >= 0xd0 && tag <= 0xd7) {
    if (!in_.read(b, 2)) return truncated();
    v = ((int32_t(tag) - 0xd4) * 65536) + (b[0] << 8) + b[1];
  } else if (tag == 'I') {
    if (!in_.read(b, 4)) return truncated();
    v = static_cast<int32_t>(rpc::loadBe32(b));
  } else {
    return unexpected(tag, "an int");
  }
  return absl::OkStatus();
}

absl::Status Reader::readLongFrom(uint8_t tag, int64_t& v) {
  uint8_t b[8];
  if (isIntTag(tag)) {
    int32_t i;
    absl::Status st = readIntFrom(tag, i);
    v = i;
    return st;
  }
  if (tag >= 0xd8 && tag <= 0xef) {
    v = int64_t(tag) - 0xe0;
  } else if (tag >= 0xf0) {
    if (!in_.read(b, 1)) return truncated();
    v = ((int64_t(tag) - 0xf8) * 256) + b[0];
  } else if (tag >= 0x38 && tag <= 0x3f) {
    if (!in_.read(b, 2)) return truncated();
    v = ((int64_t(tag) - 0x3c) * 65536) + (b[0] << 8) + b[1];
  } else if (tag == 'Y') {
    if (!in_.read(b, 4)) return truncated();
    v = static_cast<int32_t>(rpc::loadBe32(b));
  } else if (tag == 'L') {
    if (!in_.read(b, 8)) return truncated();
    v = static_cast<int64_t>(rpc::loadBe64(b));
  } else {
    return unexpected(tag, "a long");
  }
  return absl::OkStatus();
}

absl::Status Reader::readInt(int32_t& v) {
  uint8_t tag;
  if (!in_.readByte(tag)) return truncated();
  return readIntFrom(tag, v);
}

absl::Status Reader::readLong(int64_t& out) {
  uint8_t tag;
  if (!in_.readByte(tag)) return truncated();
  return readLongFrom(tag, out);
}

absl::Status Reader::readCount(uint32_t& n) {
  int32_t v;
  absl::Status st = readInt(v);
  if (!st.ok()) return st;
  if (v < 0 || size_t(v) > in_.remaining()) {
    return absl::InvalidArgumentError(absl::StrCat("hessian2: impossible length ", v));
  }
  n = static_cast<uint32_t>(v);
  return absl::OkStatus();
}

absl::Status Reader::skipType() {
  uint8_t tag;
  if (!in_.readByte(tag)) return truncated();
  if (isStringTag(tag)) return readStringFrom(tag, nullptr);
  int32_t ref;
  return readIntFrom(tag, ref); // a reference to an earlier type
}

absl::Status Reader::skipBinaryFrom(uint8_t tag) {
  for (;;) {
    if (tag >= 0x20 && tag <= 0x2f) return in_.skip(tag - 0x20) ? absl::OkStatus() : truncated();
    if (tag >= 0x34 && tag <= 0x37) {
      uint8_t b0;
      if (!in_.readByte(b0)) return truncated();
      return in_.skip((size_t(tag - 0x34) << 8) | b0) ? absl::OkStatus() : truncated();
    }
    if (tag != 'A' && tag != 'B') return unexpected(tag, "binary data");
    uint16_t len;
    if (!in_.readBe16(len) || !in_.skip(len)) return truncated();
    if (tag == 'B') return absl::OkStatus();
    if (!in_.readByte(tag)) return truncated();
  }
}

bool Reader::atContainerEnd() {
  uint8_t tag;
  if (in_.peekByte(tag) && tag == 'Z') {
    in_.skip(1);
    return true;
  }
  return false;
}

absl::Status Reader::skip(int depth) {
  if (depth > kMaxDepth) return absl::InvalidArgumentError("hessian2: values nested too deep");
  uint8_t tag;
  if (!in_.readByte(tag)) return truncated();
  absl::Status st;
  // A class definition ('C' type field-count field-name*) precedes the value using it.
  while (tag == 'C') {
    uint32_t fields;
    uint8_t t;
    if (!in_.readByte(t)) return truncated();
    st = readStringFrom(t, nullptr); // the class name
    if (st.ok()) st = readCount(fields);
    for (uint32_t i = 0; st.ok() && i < fields; i++) {
      uint8_t t;
      if (!in_.readByte(t)) return truncated();
      st = readStringFrom(t, nullptr);
    }
    if (!st.ok()) return st;
    class_fields_.push_back(fields);
    if (!in_.readByte(tag)) return truncated();
  }
  if (isStringTag(tag)) return readStringFrom(tag, nullptr);
  if (isIntTag(tag)) {
    int32_t v;
    return readIntFrom(tag, v);
  }
  if (isLongTag(tag)) {
    int64_t v;
    return readLongFrom(tag, v);
  }
  if ((tag >= 0x20 && tag <= 0x2f) || (tag >= 0x34 && tag <= 0x37) || tag == 'A' || tag == 'B') {
    return skipBinaryFrom(tag);
  }
  auto skipBytes = [&](size_t n) { return in_.skip(n) ? absl::OkStatus() : truncated(); };
  auto skipValues = [&](uint32_t n) {
    absl::Status s;
    for (uint32_t i = 0; s.ok() && i < n; i++) s = skip(depth + 1);
    return s;
  };
  // Values (or key-value pairs) up to 'Z'.
  auto skipToEnd = [&](int per_entry) {
    absl::Status s;
    while (s.ok() && !atContainerEnd()) {
      if (in_.empty()) return truncated();
      for (int i = 0; s.ok() && i < per_entry; i++) s = skip(depth + 1);
    }
    return s;
  };
  auto skipObject = [&](size_t def) {
    if (def >= class_fields_.size()) {
      return absl::InvalidArgumentError("hessian2: object of an undefined class");
    }
    return skipValues(class_fields_[def]);
  };
  uint32_t n;
  int32_t ref;
  switch (tag) {
  case 'N':
  case 'T':
  case 'F':
  case 0x5b: // double 0.0
  case 0x5c: // double 1.0
    return absl::OkStatus();
  case 0x5d: return skipBytes(1); // double from a byte
  case 0x5e: return skipBytes(2); // double from a short
  case 0x5f: return skipBytes(4); // double from an int (thousandths)
  case 'D': return skipBytes(8);
  case 'J': return skipBytes(8); // date, milliseconds
  case 'K': return skipBytes(4); // date, minutes
  case 'Q': return readInt(ref); // reference to an earlier value
  case 'H': return skipToEnd(2);
  case 'M':
    st = skipType();
    return st.ok() ? skipToEnd(2) : st;
  case 'U': // variable-length typed list
    st = skipType();
    return st.ok() ? skipToEnd(1) : st;
  case 'W': return skipToEnd(1); // variable-length untyped list
  case 'V': // fixed-length typed list
    st = skipType();
    if (st.ok()) st = readCount(n);
    return st.ok() ? skipValues(n) : st;
  case 'X': // fixed-length untyped list
    st = readCount(n);
    return st.ok() ? skipValues(n) : st;
  case 'O':
    st = readInt(ref);
    return st.ok() ? skipObject(static_cast<uint32_t>(ref)) : st;
  }
  if (tag >= 0x60 && tag <= 0x6f) return skipObject(tag - 0x60);
  if (tag >= 0x70 && tag <= 0x77) {
    st = skipType();
    return st.ok() ? skipValues(tag - 0x70) : st;
  }
  if (tag >= 0x78 && tag <= 0x7f) return skipValues(tag - 0x78);
  return unexpected(tag, "a value");
}

absl::Status Reader::readMapStart(bool& null) {
  uint8_t tag;
  if (!in_.readByte(tag)) return truncated();
  null = tag == 'N';
  if (null || tag == 'H') return absl::OkStatus();
  if (tag == 'M') return skipType();
  return unexpected(tag, "a map");
}

absl::Status Reader::readScalar(std::string& out, bool& present) {
  out.clear();
  present = false;
  uint8_t tag;
  if (!in_.peekByte(tag)) return truncated();
  absl::Status st;
  if (isStringTag(tag)) {
    in_.skip(1);
    st = readStringFrom(tag, &out);
  } else if (isIntTag(tag) || isLongTag(tag)) {
    in_.skip(1);
    int64_t v;
    st = readLongFrom(tag, v);
    out = absl::StrCat(v);
  } else if (tag == 'T' || tag == 'F') {
    in_.skip(1);
    out = tag == 'T' ? "true" : "false";
  } else {
    return skipValue();
  }
  present = st.ok();
  return st;
}

void writeString(absl::string_view utf8, std::string& out) {
  // Split into chunks of at most 32768 UTF-16 units (as Java's Hessian2Output), never
  // inside a character.
  constexpr size_t kChunk = 0x8000;
  std::string chunk;
  size_t units = 0;
  auto flush = [&](bool final) {
    if (final && units < 32) {
      out.push_back(static_cast<char>(units));
    } else if (final && units < 1024) {
      out.push_back(static_cast<char>(0x30 + (units >> 8)));
      out.push_back(static_cast<char>(units & 0xff));
    } else {
      out.push_back(final ? 'S' : 'R');
      out.push_back(static_cast<char>(units >> 8));
      out.push_back(static_cast<char>(units & 0xff));
    }
    out += chunk;
    chunk.clear();
    units = 0;
  };
  size_t i = 0;
  while (i < utf8.size()) {
    const uint8_t b = static_cast<uint8_t>(utf8[i]);
    size_t len = utf8Length(b);
    bool valid = len != 0 && i + len <= utf8.size();
    for (size_t k = 1; valid && k < len; k++) {
      valid = (static_cast<uint8_t>(utf8[i + k]) & 0xc0) == 0x80;
    }
    if (!valid) len = 1;
    const size_t u = valid && len == 4 ? 2 : 1;
    if (units + u > kChunk) flush(false);
    if (valid) {
      chunk.append(utf8.data() + i, len);
    } else {
      chunk.push_back('?');
    }
    units += u;
    i += len;
  }
  flush(true);
}

} // namespace hessian2
} // namespace dubbo
} // namespace tern
