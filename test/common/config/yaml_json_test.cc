// YAML -> JSON conversion in front of protobuf's JSON parser: which scalars become JSON
// literals, escaping, structure, and error positions.
#include "source/common/config/yaml_json.h"

#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace tern {
namespace config {
namespace {

std::string toJson(const std::string& yaml) {
  auto r = yamlToJson(yaml);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : "";
}

// The output must be JSON protobuf can read, not just look like it.
void expectValidJson(const std::string& json) {
  google::protobuf::Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(json, &s);
  EXPECT_TRUE(st.ok()) << json << ": " << st.message();
}

TEST(YamlToJsonTest, PlainScalarsThatReadAsLiteralsBecomeLiterals) {
  std::string json = toJson("a: 1\nb: -2.5\nc: true\nd: false\ne: 1e3\nf: ~\ng: null\nh:\ni: 0\n");
  EXPECT_EQ(json,
            R"({"a":1,"b":-2.5,"c":true,"d":false,"e":1e3,"f":null,"g":null,"h":null,"i":0})");
  expectValidJson(json);
}

TEST(YamlToJsonTest, QuotedAndTaggedScalarsStayStrings) {
  std::string json = toJson("a: '1'\nb: \"true\"\nc: 'null'\nd: !!str 5\ne: hello\n");
  EXPECT_EQ(json, R"({"a":"1","b":"true","c":"null","d":"5","e":"hello"})");
}

// Number spellings JSON has no literal for stay strings (protobuf then decides).
TEST(YamlToJsonTest, NonJsonNumberSpellingsStayStrings) {
  EXPECT_EQ(toJson("a: 08"), R"({"a":"08"})");
  EXPECT_EQ(toJson("a: 0x1F"), R"({"a":"0x1F"})");
  EXPECT_EQ(toJson("a: +1"), R"({"a":"+1"})");
  EXPECT_EQ(toJson("a: .inf"), R"({"a":".inf"})");
  EXPECT_EQ(toJson("a: 1_000"), R"({"a":"1_000"})");
  EXPECT_EQ(toJson("a: 1e"), R"({"a":"1e"})");
}

// ".5", "-.5" and "1." are YAML numbers; emitted as-is they were invalid JSON.
TEST(YamlToJsonTest, YamlOnlyNumberFormsBecomeValidJsonNumbers) {
  std::string json = toJson("a: .5\nb: -.5\nc: 1.\nd: 2.e3\n");
  EXPECT_EQ(json, R"({"a":0.5,"b":-0.5,"c":1.0,"d":2.0e3})");
  expectValidJson(json);
}

TEST(YamlToJsonTest, NestedMapsAndLists) {
  std::string json = toJson(R"(
a:
  b: [1, x, 'y']
  c:
  - {d: 2, e: [true]}
  - f
  g: {}
  h: []
)");
  EXPECT_EQ(json, R"({"a":{"b":[1,"x","y"],"c":[{"d":2,"e":[true]},"f"],"g":{},"h":[]}})");
  expectValidJson(json);
}

TEST(YamlToJsonTest, StringsAreEscaped) {
  std::string json = toJson("a: \"q\\\"b\\\\s\\nn\\tt\\x01\"\n\"k\\\"ey\": v\n");
  EXPECT_EQ(json, R"({"a":"q\"b\\s\nn\tt\u0001","k\"ey":"v"})");
  google::protobuf::Struct s;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &s).ok());
  EXPECT_EQ(s.fields().at("a").string_value(), "q\"b\\s\nn\tt\x01");
  EXPECT_EQ(s.fields().at("k\"ey").string_value(), "v");
}

TEST(YamlToJsonTest, JsonInputPassesThrough) {
  std::string json = toJson(R"({"a": [1, "2", {"b": false}]})");
  EXPECT_EQ(json, R"({"a":[1,"2",{"b":false}]})");
}

TEST(YamlToJsonTest, SyntaxErrorNamesTheLine) {
  auto r = yamlToJson("a: 1\nb: 2\nc: d: e\nf: 3\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("YAML syntax error at line 3"), std::string::npos)
      << r.status().message();

  r = yamlToJson("a: 1\n  b: 2\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos) << r.status().message();
}

TEST(YamlToJsonTest, NonScalarMapKeyRejectedWithLine) {
  auto r = yamlToJson("a: 1\n? [x, y]\n: z\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("map keys must be scalars"), std::string::npos);
}

} // namespace
} // namespace config
} // namespace tern
