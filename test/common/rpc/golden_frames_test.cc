// Every frame captured from the real SOFARPC and Dubbo peers (test/integration/rpc/golden,
// see its README) through both codecs: each decodes whole, with the kind, id, status and
// routing keys the capture says; a rewritten id (CRC updated for Bolt v2) decodes again.
#include <dirent.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "extensions/codecs/bolt/bolt_codec.h"
#include "extensions/codecs/dubbo/dubbo_codec.h"
#include "gtest/gtest.h"

namespace tern {
namespace rpc {
namespace {

std::string goldenDir() {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* ws = getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir ? srcdir : ".", "/", ws ? ws : "tern", "/test/integration/rpc/golden");
}

struct Golden {
  std::string name;
  std::string bytes;
};

std::vector<Golden> loadGoldens() {
  std::vector<Golden> out;
  DIR* d = opendir(goldenDir().c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (!absl::EndsWith(name, ".hex")) continue;
    std::ifstream f(goldenDir() + "/" + name);
    std::string hex;
    std::getline(f, hex);
    out.push_back({std::string(absl::StripSuffix(name, ".hex")), absl::HexStringToBytes(hex)});
  }
  closedir(d);
  return out;
}

FramePtr decodeAll(const Codec& codec, const std::string& bytes, const std::string& name) {
  buffer::Buffer in;
  in.add(bytes);
  auto r = codec.decode(in);
  EXPECT_TRUE(r.ok()) << name << ": " << r.status();
  if (!r.ok()) return nullptr;
  EXPECT_NE(*r, nullptr) << name << ": not a whole frame";
  EXPECT_TRUE(in.empty()) << name << ": " << in.length() << " bytes left";
  return r.ok() ? std::move(*r) : nullptr;
}

TEST(GoldenFramesTest, RealPeersFramesDecodeAndTakeANewId) {
  bolt::BoltCodec bolt;
  dubbo::DubboCodec dubbo;
  std::vector<Golden> goldens = loadGoldens();
  ASSERT_GE(goldens.size(), 30u) << "golden frames missing from " << goldenDir();
  for (const Golden& g : goldens) {
    SCOPED_TRACE(g.name);
    const bool is_bolt = absl::StartsWith(g.name, "bolt");
    const Codec& codec = is_bolt ? static_cast<const Codec&>(bolt) : dubbo;
    buffer::Buffer whole;
    whole.add(g.bytes);
    EXPECT_EQ(codec.detect(whole), DetectResult::Yes);
    FramePtr f = decodeAll(codec, g.bytes, g.name);
    ASSERT_NE(f, nullptr);
    EXPECT_TRUE(f->error.ok()) << describe(*f);
    const bool heartbeat = absl::StrContains(g.name, "heartbeat");
    const bool response = absl::EndsWith(g.name, "_response");
    if (heartbeat) {
      EXPECT_EQ(f->kind, response ? FrameKind::HeartbeatResponse : FrameKind::HeartbeatRequest) << describe(*f);
    } else if (response) {
      EXPECT_EQ(f->kind, FrameKind::Response) << describe(*f);
    } else {
      EXPECT_EQ(f->kind, absl::StrContains(g.name, "oneway") ? FrameKind::Oneway : FrameKind::Request) << describe(*f);
    }
    // Captures start at id 1 (Dubbo heartbeats use 0).
    EXPECT_EQ(f->request_id, (!is_bolt && heartbeat) ? 0u : 1u) << describe(*f);
    if (f->kind == FrameKind::Request || f->kind == FrameKind::Oneway) {
      if (!is_bolt) {
        ASSERT_TRUE(codec.loadAllHeaders(*f).ok());
      }
      RouteKeys keys = codec.routeKeys(*f);
      EXPECT_EQ(keys.service, absl::StrContains(g.name, "unknown_service") ? "com.tern.test.Missing"
                                                                          : "com.tern.test.EchoService");
      const bool group = absl::StrContains(g.name, "group");
      EXPECT_EQ(keys.version, is_bolt ? "1.0" : group ? "2.0.0" : "1.0.0");
      EXPECT_EQ(keys.group, group ? "g1" : "");
      if (group) {
        EXPECT_EQ(f->headers.getView("trace"), "abc");
      }
      // Bolt: sofa-rpc-node sends no sofa_head_method_name; the codec reads it from the
      // SofaRequest in the content.
      EXPECT_EQ(keys.method, absl::StrContains(g.name, "sleep") ? "sleep"
                                         : absl::StrContains(g.name, "fail") ? "fail"
                                         : absl::StrContains(g.name, "not_found") ? "missing" : "echo");
    }
    if (response && !heartbeat) {
      const bool success = !absl::StrContains(g.name, "fail") && !absl::StrContains(g.name, "unknown") &&
                           !absl::StrContains(g.name, "not_found");
      // Dubbo's "fail" answer is status 20 carrying an exception: a transport success.
      EXPECT_EQ(codec.isSuccess(*f), success || (!is_bolt && absl::StrContains(g.name, "fail"))) << describe(*f);
    }
    // A new id: the frame still decodes (Bolt v2 with CRC: the checksum was updated).
    ASSERT_TRUE(codec.patchRequestId(f->raw, 0x7654321).ok());
    std::string patched = f->raw.toString();
    EXPECT_EQ(patched.size(), g.bytes.size());
    FramePtr again = decodeAll(codec, patched, g.name + " (patched)");
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->request_id, 0x7654321u);
  }
}

} // namespace
} // namespace rpc
} // namespace tern
