#include "extensions/codecs/dubbo/hessian2.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/buffer/buffer.h"

namespace tern {
namespace dubbo {
namespace hessian2 {
namespace {

std::string unhex(absl::string_view hex) { return absl::HexStringToBytes(hex); }

// Runs `fn` on a reader over `bytes`, held in a buffer of 16-byte blocks so values span
// slices; returns the status and how many bytes were left.
template <typename Fn> std::pair<absl::Status, size_t> withReader(absl::string_view bytes, Fn fn) {
  buffer::BlockPool pool(16);
  buffer::Buffer b(&pool);
  b.add(bytes);
  rpc::ByteCursor cursor(b, 0, b.length());
  Reader r(cursor);
  absl::Status st = fn(r);
  return {st, cursor.remaining()};
}

std::string skipOutcome(absl::string_view bytes) {
  auto [st, left] = withReader(bytes, [](Reader& r) { return r.skipValue(); });
  return st.ok() ? absl::StrCat("ok left=", left) : st.ToString();
}

// Each of these is exactly one value (in hex); a trailing byte must stay unread.
TEST(Hessian2Test, SkipsEveryKindOfValue) {
  const char* values[] = {
      "4e", "54", "46",                              // null, true, false
      "90", "80", "bf", "c800", "cfff", "d40000",     // ints
      "d7ffff", "4900000001",                         //
      "e0", "d8", "ef", "f800", "f0ff", "3c0000",     // longs
      "3fffff", "5900000001", "4c0000000000000001",   //
      "5b", "5c", "5d01", "5e0102", "5f00000cb2",     // doubles
      "44400921fb54442d18",                           //
      "4a0000018cc820d88e", "4b01b16438",             // dates
      "00", "0568656c6c6f", "3005" "6162636465",      // strings
      "530003616263",                                 //
      "52000161" "520001" "62" "0163",                // chunks: "a" "b" "c"
      "20", "23010203", "340161",                      // binary
      "4100016142000162",                             // chunked binary
      "48" "0161" "90" "5a",                          // untyped map
      "4d" "0474797065" "0161" "90" "5a",             // typed map
      "4d" "90" "5a",                                  // typed map, type by reference
      "55" "0474797065" "90" "91" "5a",               // variable typed list
      "56" "0474797065" "92" "90" "91",               // fixed typed list
      "57" "90" "91" "5a",                            // variable untyped list
      "58" "92" "90" "91",                            // fixed untyped list
      "72" "0474797065" "90" "91",                    // short typed list
      "7a" "90" "91",                                 // short untyped list
      "43" "0141" "92" "0161" "0162" "60" "90" "4e",  // class def + compact object
      "43" "0141" "90" "4f" "90",                     // class def + object
      "5190",                                          // reference
      "57" "43" "0141" "91" "0178" "60" "90" "60" "91" "4f" "90" "92" "5a", // objects reuse defs
      "48" "0161" "57" "48" "5a" "5a" "5a",           // nesting
  };
  for (const char* v : values) {
    EXPECT_EQ(skipOutcome(unhex(v) + "N"), "ok left=1") << v;
  }
}

TEST(Hessian2Test, SkipErrors) {
  struct Case {
    const char* hex;
    const char* error;
  };
  const Case cases[] = {
      {"", "truncated value"},
      {"c8", "truncated value"},
      {"49000000", "truncated value"},
      {"4c00000000000000", "truncated value"},
      {"05616263", "truncated value"},
      {"530005616263", "truncated value"},
      {"52000161", "truncated value"},        // chunk with nothing after
      {"5200016190", "unexpected code 0x90 where a string was expected"},
      {"2301", "truncated value"},
      {"4100016190", "unexpected code 0x90 where binary data was expected"},
      {"48016190", "truncated value"},        // map without its end
      {"40", "unexpected code 0x40 where a value was expected"},
      {"45", "unexpected code 0x45 where a value was expected"},
      {"5a", "unexpected code 0x5a where a value was expected"},
      {"60", "object of an undefined class"},
      {"4f91", "object of an undefined class"},
      {"4f", "truncated value"},
      {"58" "49" "7fffffff" "90", "impossible length 2147483647"},
      {"58" "8f", "impossible length -1"},
      {"56" "0174" "d0" "0000", "impossible length -262144"},
      {"43" "0141" "49" "7fffffff", "impossible length 2147483647"},
      {"43" "90", "unexpected code 0x90 where a string was expected"}, // type must be a string
      {"6f", "object of an undefined class"},
      {"0180", "bad UTF-8 in a string"},
      {"01f0908d88", "string length splits a character"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(skipOutcome(unhex(c.hex)), absl::StrCat("INVALID_ARGUMENT: hessian2: ", c.error))
        << c.hex;
  }
}

TEST(Hessian2Test, NestingIsBounded) {
  std::string deep(Reader::kMaxDepth, 'W');
  deep += "N" + std::string(Reader::kMaxDepth, 'Z');
  EXPECT_EQ(skipOutcome(deep), "ok left=0");
  std::string deeper(Reader::kMaxDepth + 2, 'W');
  EXPECT_EQ(skipOutcome(deeper), "INVALID_ARGUMENT: hessian2: values nested too deep");
}

TEST(Hessian2Test, ReadLong) {
  const std::pair<const char*, int64_t> cases[] = {
      {"90", 0}, {"80", -16}, {"bf", 47}, {"c800", 0}, {"c000", -2048}, {"cfff", 2047},
      {"d40000", 0}, {"d00000", -262144}, {"d7ffff", 262143}, {"49ffffffff", -1},
      {"4980000000", INT32_MIN}, {"e0", 0}, {"d8", -8}, {"ef", 15}, {"f800", 0},
      {"f000", -2048}, {"ffff", 2047}, {"3c0000", 0}, {"380000", -262144},
      {"3fffff", 262143}, {"597fffffff", INT32_MAX}, {"59ffffffff", -1},
      {"4c8000000000000000", INT64_MIN}, {"4c7fffffffffffffff", INT64_MAX},
  };
  for (const auto& [hex, want] : cases) {
    int64_t v = 12345;
    auto [st, left] = withReader(unhex(hex), [&](Reader& r) { return r.readLong(v); });
    EXPECT_TRUE(st.ok()) << hex << ": " << st;
    EXPECT_EQ(v, want) << hex;
    EXPECT_EQ(left, 0u) << hex;
  }
  int64_t v;
  EXPECT_FALSE(withReader(unhex("0161"), [&](Reader& r) { return r.readLong(v); }).first.ok());
}

TEST(Hessian2Test, ReadString) {
  const std::pair<const char*, std::string> cases[] = {
      {"00", ""},
      {"0568656c6c6f", "hello"},
      {"02c3a9e282ac", "\xc3\xa9\xe2\x82\xac"},           // é €: two units
      {"02f09f9880", "\xf0\x9f\x98\x80"},                 // one 4-byte character: two units
      {"02eda0bdedb880", "\xed\xa0\xbd\xed\xb8\x80"},     // the same as Java writes it
      {"300161", "a"},
      {"53000162", "b"},
      {"520001615200016253000163", "abc"},
      {"5200016101" "62", "ab"},
      {"4e", ""},
  };
  for (const auto& [hex, want] : cases) {
    std::string s = "junk";
    bool null = false;
    auto [st, left] = withReader(unhex(hex), [&](Reader& r) { return r.readString(s, &null); });
    EXPECT_TRUE(st.ok()) << hex << ": " << st;
    EXPECT_EQ(s, want) << hex;
    EXPECT_EQ(null, std::string(hex) == "4e") << hex;
    EXPECT_EQ(left, 0u) << hex;
  }
  std::string s;
  EXPECT_EQ(withReader(unhex("90"), [&](Reader& r) { return r.readString(s); }).first.ToString(),
            "INVALID_ARGUMENT: hessian2: unexpected code 0x90 where a string was expected");
}

TEST(Hessian2Test, ReadScalarAndMaps) {
  // H { "a": 1, "b": true, "c": [1], "d": null, "e": "x" }
  const std::string map = unhex("48"
                                "0161"
                                "91"
                                "0162"
                                "54"
                                "0163"
                                "7991"
                                "0164"
                                "4e"
                                "0165"
                                "0178"
                                "5a");
  auto [st, left] = withReader(map, [](Reader& r) {
    bool null;
    absl::Status s = r.readMapStart(null);
    std::string out;
    while (s.ok() && !r.atContainerEnd()) {
      std::string k, v;
      bool kp, vp;
      s = r.readScalar(k, kp);
      if (s.ok()) s = r.readScalar(v, vp);
      absl::StrAppend(&out, k, "=", vp ? v : "<skipped>", ";");
    }
    EXPECT_EQ(out, "a=1;b=true;c=<skipped>;d=<skipped>;e=x;");
    return s;
  });
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_EQ(left, 0u);
}

std::string written(absl::string_view s) {
  std::string out;
  writeString(s, out);
  return out;
}

TEST(Hessian2Test, WriteString) {
  // As hessian.js 2.5.0's EncoderV2 writes them.
  EXPECT_EQ(absl::BytesToHexString(written("service not found")),
            "1173657276696365206e6f7420666f756e64");
  EXPECT_EQ(absl::BytesToHexString(written("")), "00");
  EXPECT_EQ(absl::BytesToHexString(written("\xc3\xa9")), "01c3a9");
  EXPECT_EQ(absl::BytesToHexString(written("\xf0\x9f\x98\x80")), "02f09f9880");
  EXPECT_EQ(absl::BytesToHexString(written("a\xff" "b")), "03613f62"); // not UTF-8
  EXPECT_EQ(absl::BytesToHexString(written("\xe2\x82")), "023f3f");    // cut short
  EXPECT_EQ(written(std::string(31, 'x')).substr(0, 1), "\x1f");
  EXPECT_EQ(written(std::string(32, 'x')).substr(0, 2), "\x30\x20");
  EXPECT_EQ(written(std::string(1023, 'x')).substr(0, 2), "\x33\xff");
  EXPECT_EQ(written(std::string(1024, 'x')).substr(0, 3), std::string("S\x04\x00", 3));
  EXPECT_EQ(written(std::string(0x8000, 'x')).substr(0, 3), std::string("S\x80\x00", 3));
  const std::string two_chunks = written(std::string(0x8001, 'x'));
  EXPECT_EQ(two_chunks.substr(0, 3), std::string("R\x80\x00", 3));
  EXPECT_EQ(two_chunks.substr(3 + 0x8000), "\x01x");
  // A chunk never ends inside a character: a surrogate pair moves to the next chunk.
  const std::string pair = std::string(0x7fff, 'x') + "\xf0\x9f\x98\x80";
  const std::string split = written(pair);
  EXPECT_EQ(split.substr(0, 3), "R\x7f\xff");
  EXPECT_EQ(split.substr(3 + 0x7fff), "\x02\xf0\x9f\x98\x80");
}

TEST(Hessian2Test, WriteThenRead) {
  for (size_t n : {0, 1, 31, 32, 1023, 1024, 0x8000, 0x8001, 70000}) {
    std::string s;
    for (size_t i = 0; i < n; i++) {
      s += (i % 7 == 3) ? "\xc3\xa9" : (i % 11 == 5) ? "\xf0\x9f\x98\x80" : "q";
    }
    std::string got;
    auto [st, left] = withReader(written(s), [&](Reader& r) { return r.readString(got); });
    EXPECT_TRUE(st.ok()) << n << ": " << st;
    EXPECT_EQ(got, s) << n;
    EXPECT_EQ(left, 0u);
    EXPECT_EQ(skipOutcome(written(s)), "ok left=0");
  }
}

} // namespace
} // namespace hessian2
} // namespace dubbo
} // namespace tern
