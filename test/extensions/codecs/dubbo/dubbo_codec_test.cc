#include "extensions/codecs/dubbo/dubbo_codec.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "extensions/codecs/dubbo/hessian2.h"
#include "gtest/gtest.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/buffer/buffer.h"
#include "source/common/rpc/buffer_util.h"

namespace tern {
namespace dubbo {
namespace {

using rpc::DetectResult;
using rpc::FrameKind;
using rpc::LocalReplyError;

// Golden frames from shared/design/protocols.md: dubbo2.js talking to a Node provider.
constexpr char kDocDubboRequest[] =
    "dabbc2000000000000000001000000b205322e302e3217636f6d2e6578616d706c652e4563686f5365727669"
    "636505312e302e30046563686f124c6a6176612f6c616e672f537472696e673b0568656c6c6f480b6170706c"
    "69636174696f6e09647562626f322e6a7309696e7465726661636517636f6d2e6578616d706c652e4563686f"
    "53657276696365047061746817636f6d2e6578616d706c652e4563686f536572766963650774696d656f7574"
    "d413880776657273696f6e05312e302e305a";
constexpr char kDocDubboResponse[] =
    "dabb021400000000000000010000002a940c68656c6c6f7c676f6c64656e4805647562626f05322e302e3206"
    "73657276657206676f6c64656e5a";
constexpr char kDocDubboHeartbeat[] =
    "dabbe2000000000000000000000000014e";
constexpr char kDocDubboHeartbeatAck[] =
    "dabb62000000000000000000000000014e";

// Golden frames encoded by dubbo2.js 2.3.9 (npm; its DubboEncoder over hessian.js 2.5.0
// and js-to-java 2.4.0), produced with
//   npm install --prefix /tmp/rpcnpm dubbo2.js
// and a script calling new (require('dubbo2.js/es7/encode').default)(ctx).encode() with
//   ctx = { requestId, dubboVersion: '2.0.2', dubboInterface: 'com.example.UserService',
//           path: 'com.example.UserService', version: '1.0.0', methodName: 'find',
//           timeout: 3000, application: { name: 'node-app' }, methodArgs, ... }
//   simple:  id 5, args [java.String('hello')]
//   complex: id 0x1122334455, group 'blue', attachments { 'trace-id': 'abc-123',
//            'ÄÖ': 'üñî' }, args: int -5, long 1234567890123, Boolean true, double 3.25,
//            a 40-char String, two com.example.User objects (class definition, then a
//            compact reference; a typed java.util.List field), int[] {1,2,3},
//            Map {k:'v', n:7}, String null, List [1,'two',null], String[] {'p','q'},
//            two java.util.Date (minute and millisecond forms), long -300, long 100000,
//            int 100000, double 0, 1 and 1e300
//   noarg:   id 6, no arguments, version '' (the attachments then say '0.0.0')
//   heartbeat: require('dubbo2.js/es7/heartbeat').default.encode()
//   hessian_msg: new (require('hessian.js').EncoderV2)().write('service not found')
constexpr char kNodeSimpleRequest[] =
    "dabbc2000000000000000005000000b105322e302e3217636f6d2e6578616d706c652e557365725365727669"
    "636505312e302e300466696e64124c6a6176612f6c616e672f537472696e673b0568656c6c6f480b6170706c"
    "69636174696f6e086e6f64652d61707009696e7465726661636517636f6d2e6578616d706c652e5573657253"
    "657276696365047061746817636f6d2e6578616d706c652e55736572536572766963650774696d656f7574d4"
    "0bb80776657273696f6e05312e302e305a";
constexpr char kNodeComplexRequest[] =
    "dabbc20000000011223344550000024e05322e302e3217636f6d2e6578616d706c652e557365725365727669"
    "636505312e302e300466696e6430b8494a4c6a6176612f6c616e672f426f6f6c65616e3b444c6a6176612f6c"
    "616e672f537472696e673b4c636f6d2f6578616d706c652f557365723b4c636f6d2f6578616d706c652f5573"
    "65723b5b494c6a6176612f7574696c2f4d61703b4c6a6176612f6c616e672f537472696e673b4c6a6176612f"
    "7574696c2f4c6973743b5b4c6a6176612f6c616e672f537472696e673b4c6a6176612f7574696c2f44617465"
    "3b4c6a6176612f7574696c2f446174653b4a4a494444448b4c0000011f71fb04cb545f00000cb23028787878"
    "787878787878787878787878787878787878787878787878787878787878787878787878784310636f6d2e65"
    "78616d706c652e5573657293046e616d650361676504746167736003616e6eae720e6a6176612e7574696c2e"
    "4c697374016101626003626f62ae72900161016273045b696e7491929348016b0176016e975a4e7390910374"
    "776f4e72115b6a6176612e6c616e672e537472696e67017001714b01b164384a0000018cc820d88ef6d43d86"
    "a0d586a05b5c447e37e43c8800759c480b6170706c69636174696f6e086e6f64652d6170700567726f757004"
    "626c756509696e7465726661636517636f6d2e6578616d706c652e5573657253657276696365047061746817"
    "636f6d2e6578616d706c652e55736572536572766963650774696d656f7574d40bb80874726163652d696407"
    "6162632d3132330776657273696f6e05312e302e3002c384c39603c3bcc3b1c3ae5a";
constexpr char kNodeNoargRequest[] =
    "dabbc20000000000000000060000009405322e302e3217636f6d2e6578616d706c652e557365725365727669"
    "6365000466696e6400480b6170706c69636174696f6e086e6f64652d61707009696e7465726661636517636f"
    "6d2e6578616d706c652e5573657253657276696365047061746817636f6d2e6578616d706c652e5573657253"
    "6572766963650774696d656f7574d40bb80776657273696f6e05302e302e305a";
constexpr char kNodeHeartbeat[] =
    "dabbe2000000000000000000000000014e";
constexpr char kNodeHessianMsg[] =
    "1173657276696365206e6f7420666f756e64";

std::string unhex(absl::string_view hex) { return absl::HexStringToBytes(hex); }
std::string hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

std::string hstr(absl::string_view s) {
  std::string out;
  hessian2::writeString(s, out);
  return out;
}

std::string dubboFrame(uint8_t flag, uint8_t status, uint64_t id, absl::string_view body) {
  uint8_t h[16] = {0xda, 0xbb, flag, status};
  rpc::storeBe64(h + 4, id);
  rpc::storeBe32(h + 12, static_cast<uint32_t>(body.size()));
  return absl::StrCat(absl::string_view(reinterpret_cast<char*>(h), 16), body);
}

// A two-way hessian2 request with the given body after the method name.
std::string request(uint64_t id, absl::string_view rest, absl::string_view path = "com.x.Svc") {
  return dubboFrame(0xc2, 0, id,
                    absl::StrCat(hstr("2.0.2"), hstr(path), hstr("1.0"), hstr("m"), rest));
}

// Decodes every frame in `bytes` fed `piece` bytes at a time (0: at once) over blocks of
// `block_size`; each frame is described as decoded and, for requests, after
// loadAllHeaders (its status too).
std::string decodeAll(const DubboCodec& codec, absl::string_view bytes, size_t piece = 0,
                      uint32_t block_size = buffer::BlockPool::kDefaultBlockSize) {
  buffer::BlockPool pool(block_size);
  std::vector<std::string> lines;
  std::string outcome = "ok";
  {
    buffer::Buffer in(&pool);
    size_t at = 0;
    bool failed = false;
    while (!failed && at < bytes.size()) {
      const size_t n = piece == 0 ? bytes.size() : std::min(piece, bytes.size() - at);
      in.add(bytes.substr(at, n));
      at += n;
      for (;;) {
        auto r = codec.decode(in);
        if (!r.ok()) {
          outcome = r.status().ToString();
          failed = true;
          break;
        }
        if (*r == nullptr) break;
        rpc::Frame& f = **r;
        lines.push_back(rpc::describe(f));
        if (!f.headers_complete) {
          absl::Status st = codec.loadAllHeaders(f);
          lines.push_back(st.ok() ? "  all: " + rpc::describe(f) : "  all: " + st.ToString());
        }
      }
    }
    absl::StrAppend(&outcome, " left=", in.length());
  }
  EXPECT_EQ(pool.inUse(), 0);
  lines.push_back(outcome);
  return absl::StrJoin(lines, "\n");
}

rpc::FramePtr decodeOne(const DubboCodec& codec, absl::string_view bytes) {
  buffer::Buffer in;
  in.add(bytes);
  auto r = codec.decode(in);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok() || *r == nullptr) {
    ADD_FAILURE() << "no frame in " << hex(bytes);
    return nullptr;
  }
  EXPECT_EQ(in.length(), 0u) << "one frame expected";
  EXPECT_EQ((*r)->raw.toString(), bytes);
  return std::move(*r);
}

struct Golden {
  const char* name;
  const char* hex;
  std::string description; // as decodeAll prints it
};

std::vector<Golden> goldens() {
  const std::string echo =
      "dubbo=2.0.2|path=com.example.EchoService|service=com.example.EchoService|"
      "version=1.0.0|method=echo|";
  const std::string user =
      "dubbo=2.0.2|path=com.example.UserService|service=com.example.UserService|"
      "version=1.0.0|method=find|";
  const std::string user_attachments =
      "application=node-app|interface=com.example.UserService|timeout=3000|";
  return {
      {"doc_request", kDocDubboRequest,
       absl::StrCat("request id=1 headers{", echo, "}+ bytes=194\n  all: request id=1 ",
                    "timeout=5000 headers{", echo,
                    "application=dubbo2.js|interface=com.example.EchoService|timeout=5000|} "
                    "bytes=194")},
      {"doc_response", kDocDubboResponse, "response id=1 status=20 headers{} bytes=58"},
      {"doc_heartbeat", kDocDubboHeartbeat, "heartbeat_request id=0 headers{} bytes=17"},
      {"doc_heartbeat_ack", kDocDubboHeartbeatAck,
       "heartbeat_response id=0 status=0 headers{} bytes=17"},
      {"simple_request", kNodeSimpleRequest,
       absl::StrCat("request id=5 headers{", user, "}+ bytes=193\n  all: request id=5 ",
                    "timeout=3000 headers{", user, user_attachments, "} bytes=193")},
      {"complex_request", kNodeComplexRequest,
       absl::StrCat("request id=73588229205 headers{", user, "}+ bytes=606\n",
                    "  all: request id=73588229205 timeout=3000 headers{", user,
                    "application=node-app|group=blue|interface=com.example.UserService|"
                    "timeout=3000|trace-id=abc-123|\\303\\204\\303\\226=\\303\\274\\303\\261"
                    "\\303\\256|} bytes=606")},
      {"noarg_request", kNodeNoargRequest,
       "request id=6 headers{dubbo=2.0.2|path=com.example.UserService|"
       "service=com.example.UserService|version=|method=find|}+ bytes=164\n"
       "  all: request id=6 timeout=3000 headers{dubbo=2.0.2|path=com.example.UserService|"
       "service=com.example.UserService|version=0.0.0|method=find|application=node-app|"
       "interface=com.example.UserService|timeout=3000|} bytes=164"},
      {"heartbeat", kNodeHeartbeat, "heartbeat_request id=0 headers{} bytes=17"},
  };
}

TEST(DubboCodecTest, GoldenFrames) {
  DubboCodec codec;
  for (const Golden& g : goldens()) {
    EXPECT_EQ(decodeAll(codec, unhex(g.hex)), g.description + "\nok left=0") << g.name;
  }
}

TEST(DubboCodecTest, FrameFields) {
  DubboCodec codec;
  rpc::FramePtr req = decodeOne(codec, unhex(kDocDubboRequest));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(req->kind, FrameKind::Request);
  EXPECT_FALSE(req->headers_complete);
  EXPECT_EQ(req->headers.getView("service"), "com.example.EchoService");
  EXPECT_EQ(req->headers.getView("method"), "echo");
  EXPECT_FALSE(req->headers.has("group"));
  ASSERT_TRUE(codec.loadAllHeaders(*req).ok());
  EXPECT_TRUE(req->headers_complete);
  EXPECT_EQ(req->timeout_ms, 5000u);
  EXPECT_TRUE(codec.loadAllHeaders(*req).ok()); // once is enough; again is a no-op
  EXPECT_EQ(req->headers.size(), 8u);

  rpc::FramePtr complex = decodeOne(codec, unhex(kNodeComplexRequest));
  ASSERT_NE(complex, nullptr);
  EXPECT_EQ(complex->request_id, 0x1122334455u);
  ASSERT_TRUE(codec.loadAllHeaders(*complex).ok());
  EXPECT_EQ(complex->headers.getView("group"), "blue");

  rpc::FramePtr res = decodeOne(codec, unhex(kDocDubboResponse));
  ASSERT_NE(res, nullptr);
  EXPECT_EQ(res->kind, FrameKind::Response);
  EXPECT_TRUE(codec.isSuccess(*res));
  EXPECT_EQ(codec.maxRequestId(), ~uint64_t(0));
  EXPECT_EQ(codec.name(), "dubbo");
}

TEST(DubboCodecTest, IncrementalDecodeMatchesWhole) {
  DubboCodec codec;
  std::string stream;
  std::string expected;
  for (const Golden& g : goldens()) {
    const std::string bytes = unhex(g.hex);
    stream += bytes;
    absl::StrAppend(&expected, g.description, "\n");
    const std::string whole = decodeAll(codec, bytes);
    EXPECT_EQ(decodeAll(codec, bytes, 1), whole) << g.name;
    EXPECT_EQ(decodeAll(codec, bytes, 1, 64), whole) << g.name;
  }
  expected += "ok left=0";
  EXPECT_EQ(decodeAll(codec, stream), expected);
  for (size_t piece : {1, 2, 3, 15, 16, 17, 100, 1000}) {
    EXPECT_EQ(decodeAll(codec, stream, piece), expected) << "piece " << piece;
    EXPECT_EQ(decodeAll(codec, stream, piece, 64), expected) << "piece " << piece;
  }
}

TEST(DubboCodecTest, TruncatedFrameWaitsAndLeavesInputAlone) {
  DubboCodec codec;
  const std::string bytes = unhex(kNodeSimpleRequest);
  for (size_t n = 0; n < bytes.size(); n++) {
    buffer::Buffer in;
    in.add(bytes.substr(0, n));
    auto r = codec.decode(in);
    ASSERT_TRUE(r.ok()) << n << ": " << r.status();
    EXPECT_EQ(*r, nullptr) << n;
    EXPECT_EQ(in.toString(), bytes.substr(0, n));
  }
}

TEST(DubboCodecTest, Detect) {
  DubboCodec codec;
  auto detect = [&](absl::string_view bytes) {
    buffer::Buffer b;
    b.add(bytes);
    return codec.detect(b);
  };
  for (const Golden& g : goldens()) {
    EXPECT_EQ(detect(unhex(g.hex)), DetectResult::Yes) << g.name;
    EXPECT_EQ(detect(unhex(g.hex).substr(0, 2)), DetectResult::Yes) << g.name;
  }
  EXPECT_EQ(detect(""), DetectResult::NeedMore);
  EXPECT_EQ(detect("\xda"), DetectResult::NeedMore);
  EXPECT_EQ(detect("\xda\xbc"), DetectResult::No);
  EXPECT_EQ(detect("GET / HTTP/1.1\r\n"), DetectResult::No);
  EXPECT_EQ(detect(unhex("0101000101")), DetectResult::No); // Bolt
}

TEST(DubboCodecTest, HeartbeatResponse) {
  DubboCodec codec;
  for (const char* req_hex : {kDocDubboHeartbeat, kNodeHeartbeat}) {
    rpc::FramePtr req = decodeOne(codec, unhex(req_hex));
    ASSERT_NE(req, nullptr);
    EXPECT_EQ(req->kind, FrameKind::HeartbeatRequest);
    buffer::Buffer out;
    codec.encodeHeartbeatResponse(*req, out);
    // As a Java provider answers: event + hessian2, status OK, the request's id, null.
    EXPECT_EQ(hex(out.toString()), "dabb2214000000000000000000000001" "4e");
  }
  rpc::Frame req;
  req.kind = FrameKind::HeartbeatRequest;
  req.request_id = 0x0102030405060708;
  buffer::Buffer out;
  codec.encodeHeartbeatResponse(req, out);
  rpc::FramePtr res = decodeOne(codec, out.toString());
  ASSERT_NE(res, nullptr);
  EXPECT_EQ(rpc::describe(*res),
            "heartbeat_response id=72623859790382856 status=20 headers{} bytes=17");
}

// Local replies decode with the request's id, the mapped status, and the message as a
// hessian2 string. The exact bytes at the end were checked with hessian.js 2.5.0
// (new DecoderV2(body).readString() gives the message) and dubbo2.js's decode() (an error
// for status 60).
TEST(DubboCodecTest, LocalReplies) {
  DubboCodec codec;
  struct Case {
    LocalReplyError error;
    uint8_t status;
  };
  const Case cases[] = {
      {LocalReplyError::NoRoute, kServiceNotFound},
      {LocalReplyError::NoHealthyUpstream, kServiceNotFound},
      {LocalReplyError::Overflow, kServerThreadpoolExhausted},
      {LocalReplyError::Timeout, kServerTimeout},
      {LocalReplyError::CodecError, kBadRequest},
  };
  rpc::FramePtr req = decodeOne(codec, unhex(kNodeComplexRequest));
  ASSERT_NE(req, nullptr);
  for (const Case& c : cases) {
    SCOPED_TRACE(rpc::localReplyErrorName(c.error));
    EXPECT_EQ(localReplyStatus(c.error), c.status);
    for (absl::string_view message : {"upstream said no", ""}) {
      buffer::Buffer out;
      codec.encodeLocalReply(*req, c.error, message, out);
      rpc::FramePtr res = decodeOne(codec, out.toString());
      ASSERT_NE(res, nullptr);
      EXPECT_EQ(res->kind, FrameKind::Response);
      EXPECT_EQ(res->request_id, req->request_id);
      EXPECT_EQ(res->status, c.status);
      EXPECT_FALSE(codec.isSuccess(*res));
      rpc::ByteCursor cursor(res->raw, 16, res->raw.length() - 16);
      hessian2::Reader reader(cursor);
      std::string text;
      ASSERT_TRUE(reader.readString(text).ok());
      EXPECT_TRUE(reader.atEnd());
      EXPECT_EQ(text, message.empty() ? absl::StrCat("tern: ", rpc::localReplyErrorName(c.error))
                                      : std::string(message));
    }
  }
  buffer::Buffer out;
  codec.encodeLocalReply(*req, LocalReplyError::NoRoute, "service not found", out);
  EXPECT_EQ(hex(out.toString()),
            absl::StrCat("dabb023c0000001122334455000000", "12", kNodeHessianMsg));
}

// A request in a serialization other than hessian2 is framed (its id is known, the
// stream goes on) and flagged, for a BAD_REQUEST answer.
TEST(DubboCodecTest, OtherSerializationIsAFrameError) {
  DubboCodec codec;
  const std::string fastjson = dubboFrame(0xc6, 0, 9, "\"2.0.2\"\n\"com.x.Svc\"\n");
  EXPECT_EQ(decodeAll(codec, fastjson + unhex(kNodeHeartbeat)),
            "request id=9 headers{} bytes=36 error=INVALID_ARGUMENT: dubbo: serialization 6 "
            "is not supported (only hessian2, 2)\n"
            "heartbeat_request id=0 headers{} bytes=17\nok left=0");
  rpc::FramePtr req = decodeOne(codec, fastjson);
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(codec.loadAllHeaders(*req).code(), absl::StatusCode::kInvalidArgument);
  buffer::Buffer out;
  codec.encodeLocalReply(*req, LocalReplyError::CodecError, req->error.message(), out);
  rpc::FramePtr res = decodeOne(codec, out.toString());
  ASSERT_NE(res, nullptr);
  EXPECT_EQ(res->status, kBadRequest);
  EXPECT_EQ(res->request_id, 9u);
  // Responses and heartbeats in other serializations need no body reading.
  EXPECT_EQ(decodeAll(codec, dubboFrame(0x06, 20, 3, "xyz") + dubboFrame(0xe6, 0, 4, "null")),
            "response id=3 status=20 headers{} bytes=19\n"
            "heartbeat_request id=4 headers{} bytes=20\nok left=0");
}

TEST(DubboCodecTest, FlagsGiveKinds) {
  DubboCodec codec;
  EXPECT_EQ(decodeAll(codec, dubboFrame(0x82, 0, 1, "") + dubboFrame(0xa2, 0, 2, "N") +
                                 dubboFrame(0x22, 20, 3, "N") + dubboFrame(0x02, 70, 4, "")),
            "oneway id=1 headers{} bytes=16 error=INVALID_ARGUMENT: dubbo: request body: "
            "hessian2: truncated value\n"
            "oneway id=2 headers{} bytes=17\n"
            "heartbeat_response id=3 status=20 headers{} bytes=17\n"
            "response id=4 status=70 headers{} bytes=16\nok left=0");
  rpc::FramePtr oneway =
      decodeOne(codec, dubboFrame(0x82, 0, 1,
                                  absl::StrCat(hstr("2.0.2"), hstr("p"), hstr(""), hstr("m"),
                                               hstr(""), "H", hstr("group"), hstr("g"), "Z")));
  ASSERT_NE(oneway, nullptr);
  EXPECT_EQ(oneway->kind, FrameKind::Oneway);
  ASSERT_TRUE(codec.loadAllHeaders(*oneway).ok());
  EXPECT_EQ(oneway->headers.getView("group"), "g");
}

TEST(DubboCodecTest, Attachments) {
  DubboCodec codec;
  struct Case {
    const char* name;
    std::string rest; // descriptor, arguments, attachments
    std::string all;  // the headers after loadAllHeaders, or its error
  };
  const std::string eager = "dubbo=2.0.2|path=com.x.Svc|service=com.x.Svc|version=1.0|method=m|";
  const Case cases[] = {
      {"interface wins for service",
       absl::StrCat(hstr("I"), "\x91", "H", hstr("interface"), hstr("com.x.Real"), "Z"),
       "dubbo=2.0.2|path=com.x.Svc|service=com.x.Real|version=1.0|method=m|interface=com.x.Real|"},
      {"no attachments at all", absl::StrCat(hstr("I"), "\x91"), eager},
      {"null attachments", absl::StrCat(hstr("I"), "\x91", "N"), eager},
      {"typed map, odd keys and values",
       absl::StrCat(hstr("J"), "\xe1", "M", hstr("java.util.HashMap"),  //
                    hstr("flag"), "T",                                  // boolean
                    hstr("big"), std::string("L\x00\x00\x00\x01\x00\x00\x00\x00", 9), // 2^32
                    "\x91", hstr("int key"),                            // skipped
                    hstr("list"), "\x79\x91",                           // skipped
                    hstr("nothing"), "N",                               // skipped
                    hstr("timeout"), hstr("250"), "Z"),
       eager + "flag=true|big=4294967296|timeout=250|"},
      {"arguments of every shape",
       absl::StrCat(hstr("[Ljava/lang/String;[[IZLcom/x/A;D"),                    //
                    "\x72", hstr("[string"), hstr("a"), hstr("b"),                 // String[]
                    "\x57", "\x71", hstr("[int"), "\x91", "\x71\x90\x92", "Z",   // int[][]
                    "F",                                                           // boolean
                    "C", hstr("com.x.A"), "\x92", hstr("f"), hstr("g"), "\x60", "N", "\x51\x90",
                    "D\x40\x09\x21\xfb\x54\x44\x2d\x18",                          // double
                    "H", hstr("k"), hstr("v"), "Z"),
       eager + "k=v|"},
      {"descriptor counts more arguments than there are",
       absl::StrCat(hstr("II"), "\x91"),
       "INVALID_ARGUMENT: dubbo: request arguments: hessian2: truncated value"},
      {"bad descriptor", absl::StrCat(hstr("Ljava/lang/String"), hstr("x")),
       "INVALID_ARGUMENT: dubbo: bad parameter type descriptor \"Ljava/lang/String\""},
      {"attachments not closed",
       absl::StrCat(hstr(""), "H", hstr("k"), hstr("v")),
       "INVALID_ARGUMENT: dubbo: request attachments: hessian2: truncated value"},
      {"attachments not a map", absl::StrCat(hstr(""), hstr("k")),
       "INVALID_ARGUMENT: dubbo: request attachments: hessian2: unexpected code 0x01 where a "
       "map was expected"},
      {"dubbox int before the descriptor",
       absl::StrCat("\x8f", hstr("I"), "\x91", "H", hstr("group"), hstr("g"), "Z"),
       eager + "group=g|"},
  };
  for (const Case& c : cases) {
    rpc::FramePtr f = decodeOne(codec, request(1, c.rest));
    ASSERT_NE(f, nullptr) << c.name;
    absl::Status st = codec.loadAllHeaders(*f);
    std::string got;
    if (st.ok()) {
      for (const auto& [k, v] : f->headers.entries()) absl::StrAppend(&got, k, "=", v, "|");
    } else {
      got = st.ToString();
    }
    EXPECT_EQ(got, c.all) << c.name;
  }
}

TEST(DubboCodecTest, BadBodyPrefixIsAFrameError) {
  DubboCodec codec;
  // The method name is an int: the frame is intact, its contents unreadable.
  const std::string bad =
      dubboFrame(0xc2, 0, 7, absl::StrCat(hstr("2.0.2"), hstr("p"), hstr("1"), "\x91"));
  const std::string out = decodeAll(codec, bad + unhex(kNodeHeartbeat));
  EXPECT_EQ(out,
            "request id=7 headers{} bytes=27 error=INVALID_ARGUMENT: dubbo: request body: "
            "hessian2: unexpected code 0x91 where a string was expected\n"
            "heartbeat_request id=0 headers{} bytes=17\nok left=0");
}

TEST(DubboCodecTest, LoadAllHeadersNeedsTheBytes) {
  DubboCodec codec;
  rpc::FramePtr f = decodeOne(codec, unhex(kNodeSimpleRequest));
  ASSERT_NE(f, nullptr);
  buffer::Buffer upstream;
  upstream.move(f->raw); // forwarded
  EXPECT_EQ(codec.loadAllHeaders(*f).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DubboCodecTest, CountArguments) {
  const std::pair<const char*, size_t> good[] = {
      {"", 0},
      {"I", 1},
      {"Ljava/lang/String;", 1},
      {"Ljava/lang/String;I", 2},
      {"[I[[JLjava/util/Map;[Lcom/x/A;ZBCDFS", 10},
      {"V", 1},
  };
  for (const auto& [d, n] : good) {
    size_t count = 99;
    EXPECT_TRUE(DubboCodec::countArguments(d, count).ok()) << d;
    EXPECT_EQ(count, n) << d;
  }
  for (const char* d : {"L", "Ljava/lang/String", "[", "I[", "Q", "i", "java.lang.String"}) {
    size_t count;
    EXPECT_FALSE(DubboCodec::countArguments(d, count).ok()) << d;
  }
}

TEST(DubboCodecTest, PatchRequestId) {
  DubboCodec codec;
  const std::string bytes = unhex(kNodeSimpleRequest);
  for (uint32_t block : {buffer::BlockPool::kDefaultBlockSize, 64u}) {
    buffer::BlockPool pool(block);
    {
      buffer::Buffer frame(&pool);
      frame.add(bytes);
      ASSERT_TRUE(codec.patchRequestId(frame, 0xfedcba9876543210).ok());
      std::string expected = bytes;
      expected.replace(4, 8, unhex("fedcba9876543210"));
      EXPECT_EQ(frame.toString(), expected);
      rpc::FramePtr f = decodeOne(codec, frame.toString());
      ASSERT_NE(f, nullptr);
      EXPECT_EQ(f->request_id, 0xfedcba9876543210u);
      ASSERT_TRUE(codec.patchRequestId(frame, 5).ok());
      EXPECT_EQ(frame.toString(), bytes);
    }
    EXPECT_EQ(pool.inUse(), 0);
  }
  buffer::Buffer longer;
  longer.add(bytes + "x");
  EXPECT_EQ(codec.patchRequestId(longer, 1).code(), absl::StatusCode::kInvalidArgument);
  buffer::Buffer shorter;
  shorter.add(bytes.substr(0, 10));
  EXPECT_EQ(codec.patchRequestId(shorter, 1).code(), absl::StatusCode::kInvalidArgument);
  buffer::Buffer not_dubbo;
  not_dubbo.add(std::string(16, '\0'));
  EXPECT_EQ(codec.patchRequestId(not_dubbo, 1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(DubboCodecTest, StreamErrors) {
  DubboCodec codec;
  EXPECT_EQ(decodeAll(codec, "\xdb"), "INVALID_ARGUMENT: dubbo: bad magic byte 0xdb left=1");
  EXPECT_EQ(decodeAll(codec, "\xda\xbc"), "INVALID_ARGUMENT: dubbo: bad magic 0xdabc left=2");
  EXPECT_EQ(decodeAll(codec, "GET / HTTP/1.1\r\n\r\n"),
            "INVALID_ARGUMENT: dubbo: bad magic byte 0x47 left=18");
  EXPECT_EQ(decodeAll(codec, unhex("dabbc2000000000000000001ffffffff")),
            "INVALID_ARGUMENT: dubbo: negative body length left=16");
  // Garbage after a good frame: the frame comes out, then the error.
  EXPECT_EQ(decodeAll(codec, unhex(kNodeHeartbeat) + "xx"),
            "heartbeat_request id=0 headers{} bytes=17\n"
            "INVALID_ARGUMENT: dubbo: bad magic byte 0x78 left=2");
}

TEST(DubboCodecTest, OversizedFrameRefusedFromItsHeader) {
  DubboCodec codec(rpc::CodecLimits{1000});
  EXPECT_EQ(decodeAll(codec, unhex("dabbc2000000000000000001000003d9")),
            "RESOURCE_EXHAUSTED: dubbo: frame of 1001 bytes is over the limit of 1000 left=16");
  EXPECT_EQ(decodeAll(codec, dubboFrame(0x02, 20, 1, std::string(1000 - 16, 'x'))),
            "response id=1 status=20 headers{} bytes=1000\nok left=0");
}

} // namespace
} // namespace dubbo
} // namespace tern
