// http1::Parser: every input is fed whole, byte by byte, and in two pieces at every
// offset, and must give the same outcome each way (same messages, same bodies, same
// error). Inputs go through a pool of 16-byte blocks so that even a short head spans
// several buffer slices.
#include "extensions/codecs/http1/parser.h"

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/buffer/buffer.h"

namespace tern {
namespace http1 {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;
using testing::Pair;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Type = Parser::Type;

// The status a server answers a parse error with.
int httpCode(const absl::Status& st) {
  switch (st.code()) {
  case absl::StatusCode::kOk: return 0;
  case absl::StatusCode::kInvalidArgument: return 400;
  case absl::StatusCode::kResourceExhausted: return 431;
  case absl::StatusCode::kUnimplemented: return 501;
  default: return -1; // a code the codec does not map: itself a failure
  }
}

// One onHeaders call and what followed it.
struct Message {
  Headers headers;
  MessageInfo info;
  bool headers_end{false};
  std::string body;
  bool body_end{false};
  bool has_trailers{false};
  Headers trailers;
  bool complete{false};
};

struct Outcome {
  std::vector<Message> messages;
  absl::Status status;
  size_t leftover{0}; // bytes parse() left in the buffer (only when no error)
  bool idle{false};
  std::vector<std::string> violations; // callback order broken

  bool ok() const { return status.ok(); }
  int code() const { return httpCode(status); }
  bool anyHeaders() const { return !messages.empty(); }

  // Everything that must not depend on how the input was split.
  std::string canonical() const {
    std::string s;
    for (const Message& m : messages) {
      absl::StrAppend(&s, "[headers", m.headers_end ? "+end" : "", " ");
      for (const auto& [k, v] : m.headers) absl::StrAppend(&s, k, "=", v, "|");
      absl::StrAppend(&s, " proto=", static_cast<int>(m.info.protocol), " ka=", m.info.keep_alive,
                      " up=", m.info.upgrade, " connect=", m.info.connect,
                      " expect=", m.info.expect_continue, " h2c=", m.info.h2c,
                      " h2c_upgrade=", m.info.h2c_upgrade, "]");
      absl::StrAppend(&s, "[body ", m.body.size(), ":", m.body, m.body_end ? " +end" : "", "]");
      if (m.has_trailers) {
        absl::StrAppend(&s, "[trailers ");
        for (const auto& [k, v] : m.trailers) absl::StrAppend(&s, k, "=", v, "|");
        absl::StrAppend(&s, "]");
      }
      if (m.complete) absl::StrAppend(&s, "[complete]");
      absl::StrAppend(&s, "\n");
    }
    absl::StrAppend(&s, "status=", status.ToString());
    if (status.ok()) absl::StrAppend(&s, " leftover=", leftover, " idle=", idle);
    for (const auto& v : violations) absl::StrAppend(&s, "\nviolation: ", v);
    return s;
  }
};

class Recorder : public Parser::Callbacks {
public:
  explicit Recorder(Outcome& out) : out_(out) {}

  absl::Status onHeaders(http::HeaderMapPtr headers, const MessageInfo& info,
                         bool end_stream) override {
    if (!out_.messages.empty()) {
      const Message& prev = out_.messages.back();
      bool interim = prev.headers.size() > 0 && prev.headers[0].first == ":status" &&
                     prev.headers[0].second[0] == '1' && prev.headers[0].second != "101";
      if (!prev.complete && !interim) out_.violations.push_back("headers before previous completed");
    }
    Message m;
    for (const auto& [k, v] : headers->entries()) m.headers.emplace_back(k, v);
    m.info = info;
    m.headers_end = end_stream;
    // A switch to a tunnel here means the stream goes on (as the client codec treats it).
    if (on_headers_ && on_headers_()) m.headers_end = false;
    out_.messages.push_back(std::move(m));
    return headers_status_;
  }

  void onData(buffer::Buffer& data, bool end_stream) override {
    if (out_.messages.empty()) {
      out_.violations.push_back("data before headers");
      return;
    }
    Message& m = out_.messages.back();
    if (m.headers_end || m.body_end || m.has_trailers || m.complete) {
      out_.violations.push_back("data after end of stream");
    }
    if (data.empty() && !end_stream) out_.violations.push_back("empty data without end_stream");
    m.body += data.toString();
    data.drain(data.length());
    if (end_stream) m.body_end = true;
  }

  void onTrailers(http::HeaderMapPtr trailers) override {
    if (out_.messages.empty()) {
      out_.violations.push_back("trailers before headers");
      return;
    }
    Message& m = out_.messages.back();
    if (m.headers_end || m.body_end || m.has_trailers) out_.violations.push_back("late trailers");
    m.has_trailers = true;
    for (const auto& [k, v] : trailers->entries()) m.trailers.emplace_back(k, v);
  }

  void onMessageComplete() override {
    if (out_.messages.empty()) {
      out_.violations.push_back("complete before headers");
      return;
    }
    Message& m = out_.messages.back();
    if (m.complete) out_.violations.push_back("completed twice");
    if (!m.headers_end && !m.body_end && !m.has_trailers) {
      out_.violations.push_back("complete without end of stream");
    }
    m.complete = true;
    if (on_complete_) on_complete_();
  }

  Outcome& out_;
  // Runs in onHeaders; returns whether it switched the parser to a tunnel.
  std::function<bool()> on_headers_;
  absl::Status headers_status_;
  std::function<void()> on_complete_;
};

struct Options {
  Limits limits{};
  bool eof{false};                        // call onEof() after the last piece
  std::function<void(Parser&)> setup;     // before the first byte (e.g. expectNoBody)
};

Options withEof() {
  Options o;
  o.eof = true;
  return o;
}

// Feeds `pieces` in order into one buffer that persists between parse() calls (as the
// codec's input buffer does: bytes the parser leaves are parsed again with the next read).
Outcome runPieces(Type type, const std::vector<std::string>& pieces, const Options& opt) {
  Outcome out;
  buffer::BlockPool pool(16);
  {
    Recorder rec(out);
    Parser parser(type, rec, opt.limits);
    if (opt.setup) opt.setup(parser);
    buffer::Buffer in(&pool);
    for (const std::string& p : pieces) {
      in.add(p);
      out.status = parser.parse(in);
      if (!out.status.ok()) break;
    }
    if (out.status.ok() && opt.eof) out.status = parser.onEof();
    if (out.status.ok()) {
      out.leftover = in.length();
      out.idle = parser.idle();
    }
  }
  if (pool.inUse() != 0) out.violations.push_back("buffer blocks leaked");
  return out;
}

// Parses `input` whole, byte by byte, and split in two at every offset; every way must
// give the outcome of the whole input, which is returned.
Outcome parseAllSplits(Type type, const std::string& input, const Options& opt = {}) {
  Outcome whole = runPieces(type, {input}, opt);
  const std::string expected = whole.canonical();
  EXPECT_TRUE(whole.violations.empty()) << expected;

  std::vector<std::string> bytes;
  for (char c : input) bytes.emplace_back(1, c);
  Outcome bytewise = runPieces(type, bytes, opt);
  EXPECT_EQ(bytewise.canonical(), expected) << "fed byte by byte";

  for (size_t cut = 0; cut <= input.size(); cut++) {
    Outcome two = runPieces(type, {input.substr(0, cut), input.substr(cut)}, opt);
    std::string got = two.canonical();
    if (got != expected) {
      ADD_FAILURE() << "split at " << cut << " of " << input.size() << ":\n"
                    << got << "\nexpected:\n" << expected;
      break; // one report per input is enough
    }
  }
  return whole;
}

Outcome parseRequest(const std::string& input, const Options& opt = {}) {
  return parseAllSplits(Type::Request, input, opt);
}
Outcome parseResponse(const std::string& input, const Options& opt = {}) {
  return parseAllSplits(Type::Response, input, opt);
}

// A rejected input: the error maps to `code`, its message names the rule, and no head
// reached the callbacks (every split).
void expectRejected(Type type, const std::string& input, int code, const std::string& why,
                    const Options& opt = {}) {
  SCOPED_TRACE(testing::Message() << "input: " << absl::CEscape(input));
  Outcome out = parseAllSplits(type, input, opt);
  EXPECT_EQ(out.code(), code) << out.status;
  EXPECT_THAT(std::string(out.status.message()), HasSubstr(why));
  EXPECT_FALSE(out.anyHeaders()) << out.canonical();
}
void expectRequestRejected(const std::string& input, int code, const std::string& why,
                           const Options& opt = {}) {
  expectRejected(Type::Request, input, code, why, opt);
}
void expectResponseRejected(const std::string& input, int code, const std::string& why,
                            const Options& opt = {}) {
  expectRejected(Type::Response, input, code, why, opt);
}

std::string requestWithHeader(absl::string_view line) {
  return absl::StrCat("GET / HTTP/1.1\r\nHost: h\r\n", line, "\r\n\r\n");
}

// ---------------------------------------------------------------------------------------
// Request lines

TEST(ParserRequestTest, OriginForm) {
  Outcome out = parseRequest(
      "GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  const Message& m = out.messages[0];
  EXPECT_THAT(m.headers, ElementsAre(Pair(":method", "GET"), Pair(":path", "/a/b?c=d&e"),
                                     Pair(":scheme", "http"), Pair(":authority", "example.com"),
                                     Pair("user-agent", "t/1"), Pair("accept", "*/*")));
  EXPECT_TRUE(m.headers_end);
  EXPECT_TRUE(m.complete);
  EXPECT_EQ(m.info.protocol, http::Protocol::Http11);
  EXPECT_TRUE(m.info.keep_alive);
  EXPECT_FALSE(m.info.upgrade);
  EXPECT_FALSE(m.info.connect);
  EXPECT_EQ(out.leftover, 0u);
  EXPECT_TRUE(out.idle);
}

TEST(ParserRequestTest, HeaderNamesAreLowerCasedAndValuesTrimmed) {
  Outcome out = parseRequest(
      "GET / HTTP/1.1\r\nHOST: h\r\nX-Mixed-Case:  \t spaced value\t \r\nX-Empty:\r\n"
      "X-Tab: a\tb\r\nX-Obs-Text: caf\xc3\xa9\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_THAT(out.messages[0].headers,
              ElementsAre(Pair(":method", "GET"), Pair(":path", "/"), Pair(":scheme", "http"),
                          Pair(":authority", "h"), Pair("x-mixed-case", "spaced value"),
                          Pair("x-empty", ""), Pair("x-tab", "a\tb"),
                          Pair("x-obs-text", "caf\xc3\xa9")));
}

// Names are lower-cased as they are scanned, on the stack up to 128 bytes: names of 128
// and 129 bytes, and a long one with a bad byte, take both paths.
TEST(ParserRequestTest, LongHeaderNamesAreLowerCasedToo) {
  std::string n128 = "X-" + std::string(126, 'A'), n129 = "Y-" + std::string(127, 'B');
  Outcome out = parseRequest("GET / HTTP/1.1\r\nHost: h\r\n" + n128 + ": one\r\n" + n129 +
                             ":two\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_THAT(out.messages[0].headers,
              ElementsAre(Pair(":method", "GET"), Pair(":path", "/"), Pair(":scheme", "http"),
                          Pair(":authority", "h"), Pair("x-" + std::string(126, 'a'), "one"),
                          Pair("y-" + std::string(127, 'b'), "two")));
  Outcome bad = parseRequest("GET / HTTP/1.1\r\nHost: h\r\n" + std::string(200, 'Z') +
                             " Q: v\r\n\r\n");
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status.message()), HasSubstr("invalid header name"));
}

TEST(ParserRequestTest, AbsoluteFormGivesAuthorityAndPath) {
  Outcome out =
      parseRequest("GET http://example.com:8080/x/y?z=1 HTTP/1.1\r\nHost: ignored\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_THAT(out.messages[0].headers,
              ElementsAre(Pair(":method", "GET"), Pair(":authority", "example.com:8080"),
                          Pair(":path", "/x/y?z=1"), Pair(":scheme", "http")));

  // No path: "/". The scheme is matched case-insensitively; Host is not required.
  out = parseRequest("GET HTTPS://example.com HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_THAT(out.messages[0].headers,
              ElementsAre(Pair(":method", "GET"), Pair(":authority", "example.com"),
                          Pair(":path", "/"), Pair(":scheme", "http")));

  // A query with no path keeps the query (RFC 9112 3.2.1: the path becomes "/").
  out = parseRequest("GET http://example.com?q=1 HTTP/1.1\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].headers[2].second, "/?q=1");

  // An absolute URI without a host names nothing; userinfo is refused (RFC 9110 4.2.4).
  expectRequestRejected("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400, "request target");
  expectRequestRejected("GET http://?q HTTP/1.1\r\nHost: h\r\n\r\n", 400, "request target");
  expectRequestRejected("GET http://good.example@evil.example/ HTTP/1.1\r\nHost: h\r\n\r\n", 400,
                        "request target");
}

TEST(ParserRequestTest, ConnectAuthorityFormThenTunnel) {
  Outcome out = parseRequest(
      "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
      "\x16\x03\x01 tls bytes, then GET / HTTP/1.1\r\n\r\n",
      withEof());
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  const Message& m = out.messages[0];
  EXPECT_THAT(m.headers, ElementsAre(Pair(":method", "CONNECT"),
                                     Pair(":authority", "example.com:443"),
                                     Pair(":scheme", "http")));
  EXPECT_TRUE(m.info.connect);
  EXPECT_FALSE(m.headers_end);
  // Everything after the head is opaque, until the peer closes.
  EXPECT_EQ(m.body, "\x16\x03\x01 tls bytes, then GET / HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(m.body_end);
  EXPECT_TRUE(m.complete);
}

TEST(ParserRequestTest, OptionsAsterisk) {
  Outcome out = parseRequest("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_THAT(out.messages[0].headers, ElementsAre(Pair(":method", "OPTIONS"), Pair(":path", "*"),
                                                   Pair(":scheme", "http"), Pair(":authority", "h")));
  // "*" is only for OPTIONS; other targets must be origin or absolute form.
  expectRequestRejected("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400, "request target");
  expectRequestRejected("GET foo HTTP/1.1\r\nHost: h\r\n\r\n", 400, "request target");
  expectRequestRejected("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400, "request target");
  expectRequestRejected("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "request target");
}

TEST(ParserRequestTest, UpgradeRequestBecomesTunnel) {
  Outcome out = parseRequest(
      "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
      "\r\n\x81\x05hello");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].info.upgrade);
  EXPECT_FALSE(out.messages[0].headers_end);
  EXPECT_EQ(out.messages[0].body, "\x81\x05hello");
  EXPECT_FALSE(out.messages[0].complete);

  // "Upgrade" without the Connection token is an ordinary request.
  out = parseRequest("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_FALSE(out.messages[0].info.upgrade);
  EXPECT_TRUE(out.messages[0].complete);
}

TEST(ParserRequestTest, H2cUpgradeIsAnOrdinaryMessageFlaggedForTheCodec) {
  const std::string kUpgradeFields =
      "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAA\r\n";
  Outcome out = parseRequest("GET /x HTTP/1.1\r\nHost: h\r\n" + kUpgradeFields + "\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  const Message& m = out.messages[0];
  EXPECT_TRUE(m.info.h2c);
  EXPECT_TRUE(m.info.h2c_upgrade);
  EXPECT_FALSE(m.info.upgrade); // not a tunnel: the request ends at its head
  EXPECT_TRUE(m.headers_end);
  EXPECT_TRUE(m.complete);
  EXPECT_THAT(m.headers, ElementsAre(Pair(":method", "GET"), Pair(":path", "/x"),
                                     Pair(":scheme", "http"), Pair(":authority", "h"),
                                     Pair("connection", "Upgrade, HTTP2-Settings"),
                                     Pair("upgrade", "h2c"),
                                     Pair("http2-settings", "AAMAAABkAARAAAAA")));

  // Upgrade: h2c that may not switch: flagged h2c only, and framed as the message says.
  auto check = [](const std::string& input, const std::string& why) -> Message {
    SCOPED_TRACE(why);
    Outcome o = parseRequest(input);
    EXPECT_TRUE(o.ok()) << o.status;
    EXPECT_EQ(o.messages.size(), 1u);
    if (o.messages.empty()) return Message();
    EXPECT_TRUE(o.messages[0].info.h2c);
    EXPECT_FALSE(o.messages[0].info.h2c_upgrade);
    EXPECT_FALSE(o.messages[0].info.upgrade);
    EXPECT_TRUE(o.messages[0].complete);
    return o.messages[0];
  };
  Message body = check("POST / HTTP/1.1\r\nHost: h\r\n" + kUpgradeFields +
                           "Content-Length: 5\r\n\r\nhello",
                       "a body");
  EXPECT_EQ(body.body, "hello");
  check("POST / HTTP/1.1\r\nHost: h\r\n" + kUpgradeFields +
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "a chunked body");
  check("GET / HTTP/1.0\r\nHost: h\r\n" + kUpgradeFields + "\r\n", "HTTP/1.0");
  check("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABk\r\n\r\n",
        "HTTP2-Settings not a Connection option");
  check("GET / HTTP/1.1\r\nHost: h\r\nConnection: HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABk\r\n\r\n",
        "no Connection: upgrade");
  check("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
        "no HTTP2-Settings");
  check("GET / HTTP/1.1\r\nHost: h\r\n" + kUpgradeFields + "HTTP2-Settings: AAMAAABk\r\n\r\n",
        "two HTTP2-Settings");
  for (const char* bad : {"AAMAAABk!AAA", "AAMA AABk", "AAMAAABkAA", "A", "AAMA+ABk"}) {
    check(absl::StrCat("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                       "Upgrade: h2c\r\nHTTP2-Settings: ", bad, "\r\n\r\n"),
          absl::StrCat("HTTP2-Settings ", bad));
  }
  // Another protocol is a generic upgrade, as before.
  Outcome ws = parseRequest(
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_TRUE(ws.ok()) << ws.status;
  EXPECT_TRUE(ws.messages[0].info.upgrade);
  EXPECT_FALSE(ws.messages[0].info.h2c);
}

TEST(ParserRequestTest, LeadingEmptyLinesAreIgnored) {
  Outcome out = parseRequest("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(out.messages[0].complete);
}

TEST(ParserRequestTest, ExpectContinue) {
  Outcome out = parseRequest(
      "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_TRUE(out.messages[0].info.expect_continue);
  EXPECT_EQ(out.messages[0].headers.size(), 5u); // expect is consumed, content-length kept
  EXPECT_EQ(out.messages[0].body, "abc");
}

// ---------------------------------------------------------------------------------------
// Keep-alive

TEST(ParserRequestTest, KeepAliveRules) {
  struct Case {
    std::string head;
    http::Protocol protocol;
    bool keep_alive;
  } cases[] = {
      {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", http::Protocol::Http11, true},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", http::Protocol::Http11, false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
       http::Protocol::Http11, false},
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", http::Protocol::Http11,
       true},
      // HTTP/1.0: closes unless asked to keep alive; Host is optional.
      {"GET / HTTP/1.0\r\n\r\n", http::Protocol::Http10, false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", http::Protocol::Http10, true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: h\r\n\r\n", http::Protocol::Http10,
       true},
      // close wins over keep-alive, whichever comes first.
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", http::Protocol::Http10, false},
      {"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
       http::Protocol::Http10, false},
      // Not a token of the list.
      {"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", http::Protocol::Http11, true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.head);
    Outcome out = parseRequest(c.head);
    ASSERT_TRUE(out.ok()) << out.status;
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_EQ(out.messages[0].info.protocol, c.protocol);
    EXPECT_EQ(out.messages[0].info.keep_alive, c.keep_alive);
  }
}

// ---------------------------------------------------------------------------------------
// Bodies

TEST(ParserRequestTest, ContentLengthBody) {
  Outcome out =
      parseRequest("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  const Message& m = out.messages[0];
  EXPECT_FALSE(m.headers_end);
  EXPECT_EQ(m.body, "hello world");
  EXPECT_TRUE(m.body_end);
  EXPECT_TRUE(m.complete);
  EXPECT_THAT(m.headers, testing::Contains(Pair("content-length", "11")));

  // Content-Length: 0 ends the request with its head.
  out = parseRequest("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_TRUE(out.messages[0].headers_end);
  EXPECT_TRUE(out.messages[0].complete);

  // Leading zeros are digits too.
  out = parseRequest("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n1234567");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].body, "1234567");

  // A body not yet all here: no end, no completion, not idle.
  out = parseRequest("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nhello");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].body, "hello");
  EXPECT_FALSE(out.messages[0].body_end);
  EXPECT_FALSE(out.messages[0].complete);
  EXPECT_FALSE(out.idle);
}

TEST(ParserRequestTest, IdenticalDuplicateContentLengthAccepted) {
  Outcome out = parseRequest(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\nhello");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].body, "hello");
  int cl = 0;
  for (const auto& [k, v] : out.messages[0].headers) cl += k == "content-length";
  EXPECT_EQ(cl, 1); // forwarded once
}

TEST(ParserRequestTest, ChunkedWithExtensionsAndTrailers) {
  Outcome out = parseRequest(
      "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n"
      "5;ext=1\r\nhello\r\n"
      "6;a;b=\"q;uo\\\"ted\"\r\n world\r\n"
      "A\r\n0123456789\r\n"
      "0;last=yes\r\nX-Checksum: abc\r\nContent-Length: 5\r\nX-Other:  two words \r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  const Message& m = out.messages[0];
  EXPECT_FALSE(m.headers_end);
  // Transfer-Encoding is framing: it is not passed on.
  for (const auto& [k, v] : m.headers) EXPECT_NE(k, "transfer-encoding");
  EXPECT_EQ(m.body, "hello world0123456789");
  EXPECT_FALSE(m.body_end); // the trailers end the stream
  ASSERT_TRUE(m.has_trailers);
  // Framing fields never travel as trailers.
  EXPECT_THAT(m.trailers, ElementsAre(Pair("x-checksum", "abc"), Pair("x-other", "two words")));
  EXPECT_TRUE(m.complete);
  EXPECT_TRUE(out.idle);
}

TEST(ParserRequestTest, ChunkedWithEmptyTrailers) {
  Outcome out = parseRequest(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  const Message& m = out.messages[0];
  EXPECT_EQ(m.body, "abc");
  EXPECT_TRUE(m.body_end);
  EXPECT_FALSE(m.has_trailers);
  EXPECT_TRUE(m.complete);

  // No data chunks at all.
  out = parseRequest("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].body, "");
  EXPECT_TRUE(out.messages[0].body_end);
  EXPECT_TRUE(out.messages[0].complete);

  // Chunked, but the last chunk has not arrived.
  out = parseRequest("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_FALSE(out.messages[0].complete);
}

TEST(ParserRequestTest, PipelinedMessages) {
  const std::string input =
      "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
      "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"
      "\r\n" // a stray CRLF after a body (some clients send one)
      "PUT /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nT: v\r\n\r\n"
      "DELETE /4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
      "GET /5 HTT"; // the start of a fifth
  Outcome out = parseRequest(input);
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 4u);
  EXPECT_EQ(out.messages[0].headers[1].second, "/1");
  EXPECT_TRUE(out.messages[0].headers_end);
  EXPECT_EQ(out.messages[1].headers[1].second, "/2");
  EXPECT_EQ(out.messages[1].body, "body");
  EXPECT_EQ(out.messages[2].headers[1].second, "/3");
  EXPECT_EQ(out.messages[2].body, "ab");
  EXPECT_THAT(out.messages[2].trailers, ElementsAre(Pair("t", "v")));
  EXPECT_EQ(out.messages[3].headers[1].second, "/4");
  EXPECT_FALSE(out.messages[3].info.keep_alive);
  for (const Message& m : out.messages) EXPECT_TRUE(m.complete);
  EXPECT_FALSE(out.idle); // part of the fifth head is held
}

TEST(ParserRequestTest, PauseHoldsTheNextMessageUntilResumed) {
  Outcome out;
  Recorder rec(out);
  Parser parser(Type::Request, rec);
  rec.on_complete_ = [&] { parser.pause(); };
  buffer::Buffer in;
  in.add("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(parser.parse(in).ok());
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(in.toString(), "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"); // untouched
  ASSERT_TRUE(parser.parse(in).ok());
  EXPECT_EQ(out.messages.size(), 1u);
  parser.resume();
  ASSERT_TRUE(parser.parse(in).ok());
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_EQ(out.messages[1].headers[1].second, "/2");
  EXPECT_TRUE(in.empty());
}

TEST(ParserRequestTest, OnHeadersErrorStopsParsing) {
  Outcome out;
  Recorder rec(out);
  rec.headers_status_ = absl::InvalidArgumentError("rejected by callback");
  Parser parser(Type::Request, rec);
  buffer::Buffer in;
  in.add("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
  absl::Status st = parser.parse(in);
  EXPECT_EQ(st.message(), "rejected by callback");
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].body, "");
}

TEST(ParserRequestTest, EofBetweenAndInsideMessages) {
  Outcome out = parseRequest("GET / HTTP/1.1\r\nHost: h\r\n\r\n", withEof());
  EXPECT_TRUE(out.ok()) << out.status; // closing between requests is normal

  out = parseRequest("GET / HTTP/1.1\r\nHost:", withEof());
  EXPECT_EQ(out.code(), 400);
  EXPECT_FALSE(out.anyHeaders());

  out = parseRequest("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nabc",
                     withEof());
  EXPECT_EQ(out.code(), 400);
  EXPECT_THAT(std::string(out.status.message()), HasSubstr("closed mid-message"));

  out = parseRequest("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc",
                     withEof());
  EXPECT_EQ(out.code(), 400);
}

// ---------------------------------------------------------------------------------------
// Responses

TEST(ParserResponseTest, ContentLengthBody) {
  Outcome out = parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: s\r\n\r\nhello");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_THAT(out.messages[0].headers,
              ElementsAre(Pair(":status", "200"), Pair("content-length", "5"), Pair("server", "s")));
  EXPECT_EQ(out.messages[0].body, "hello");
  EXPECT_TRUE(out.messages[0].body_end);
  EXPECT_TRUE(out.messages[0].complete);
  EXPECT_TRUE(out.messages[0].info.keep_alive);

  // Status line without a reason phrase; an empty reason phrase.
  for (const char* line : {"HTTP/1.1 404\r\n", "HTTP/1.1 404 \r\n", "HTTP/1.1 404 Not Found\r\n"}) {
    out = parseResponse(absl::StrCat(line, "Content-Length: 0\r\n\r\n"));
    ASSERT_TRUE(out.ok()) << out.status;
    EXPECT_EQ(out.messages[0].headers[0].second, "404");
    EXPECT_TRUE(out.messages[0].headers_end);
  }
}

TEST(ParserResponseTest, HeadResponseHasNoBody) {
  Options opt;
  opt.setup = [](Parser& p) { p.expectNoBody(); };
  // The Content-Length describes the GET's body; none follows. The next response on the
  // connection (to a GET) is framed normally again.
  Outcome out = parseResponse(
      "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
      opt);
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_TRUE(out.messages[0].headers_end);
  EXPECT_TRUE(out.messages[0].complete);
  EXPECT_EQ(out.messages[1].body, "hi");
  EXPECT_TRUE(out.messages[1].complete);

  // Chunked framing on a HEAD response: still no body.
  out = parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", opt);
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_TRUE(out.messages[0].headers_end);
  EXPECT_TRUE(out.idle);
}

TEST(ParserResponseTest, NoContentAndNotModifiedHaveNoBody) {
  Outcome out = parseResponse(
      "HTTP/1.1 204 No Content\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 3u);
  EXPECT_EQ(out.messages[0].headers[0].second, "204");
  EXPECT_TRUE(out.messages[0].headers_end);
  EXPECT_EQ(out.messages[1].headers[0].second, "304");
  EXPECT_TRUE(out.messages[1].headers_end);
  EXPECT_EQ(out.messages[1].body, "");
  EXPECT_EQ(out.messages[2].body, "abc");
  for (const Message& m : out.messages) EXPECT_TRUE(m.complete);
}

TEST(ParserResponseTest, CloseDelimitedBodyEndsAtEof) {
  const std::string input = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody until close";
  Outcome out = parseResponse(input, withEof());
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_FALSE(out.messages[0].info.keep_alive);
  EXPECT_EQ(out.messages[0].body, "body until close");
  EXPECT_TRUE(out.messages[0].body_end);
  EXPECT_TRUE(out.messages[0].complete);

  // Without the close it is still going.
  out = parseResponse(input);
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_FALSE(out.messages[0].body_end);
  EXPECT_FALSE(out.messages[0].complete);

  // HTTP/1.0, and a transfer coding other than chunked: both read to the close.
  for (const char* head : {"HTTP/1.0 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"}) {
    out = parseResponse(absl::StrCat(head, "HTTP/1.1 200 OK\r\n\r\n"), withEof());
    ASSERT_TRUE(out.ok()) << out.status;
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_EQ(out.messages[0].body, "HTTP/1.1 200 OK\r\n\r\n");
    EXPECT_TRUE(out.messages[0].complete);
  }

  // An empty close-delimited body.
  out = parseResponse("HTTP/1.1 200 OK\r\n\r\n", withEof());
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].body, "");
  EXPECT_TRUE(out.messages[0].body_end);
  EXPECT_TRUE(out.messages[0].complete);
}

TEST(ParserResponseTest, KeepAliveRules) {
  Outcome out = parseResponse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(out.messages.at(0).info.keep_alive);
  out = parseResponse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(out.messages.at(0).info.keep_alive);
  EXPECT_EQ(out.messages.at(0).info.protocol, http::Protocol::Http10);
  out = parseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  EXPECT_FALSE(out.messages.at(0).info.keep_alive);
}

TEST(ParserResponseTest, InterimResponsesThenFinal) {
  Outcome out = parseResponse(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 3u);
  EXPECT_EQ(out.messages[0].headers[0].second, "100");
  EXPECT_FALSE(out.messages[0].headers_end);
  EXPECT_FALSE(out.messages[0].complete);
  EXPECT_THAT(out.messages[1].headers,
              ElementsAre(Pair(":status", "103"), Pair("link", "</style.css>; rel=preload")));
  EXPECT_FALSE(out.messages[1].complete);
  EXPECT_EQ(out.messages[2].headers[0].second, "200");
  EXPECT_EQ(out.messages[2].body, "ok");
  EXPECT_TRUE(out.messages[2].complete);

  // A HEAD's interim response does not use up expectNoBody.
  Options head;
  head.setup = [](Parser& p) { p.expectNoBody(); };
  out = parseResponse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n",
                      head);
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 2u);
  EXPECT_TRUE(out.messages[1].headers_end);
  EXPECT_TRUE(out.messages[1].complete);
}

TEST(ParserResponseTest, SwitchingProtocolsBecomesTunnel) {
  Outcome out = parseResponse(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
      "\x81\x02hiHTTP/1.1 200 OK\r\n\r\n",
      withEof());
  ASSERT_TRUE(out.ok()) << out.status;
  ASSERT_EQ(out.messages.size(), 1u);
  const Message& m = out.messages[0];
  EXPECT_TRUE(m.info.upgrade);
  EXPECT_FALSE(m.headers_end);
  EXPECT_THAT(m.headers, testing::Contains(Pair("upgrade", "websocket")));
  EXPECT_EQ(m.body, "\x81\x02hiHTTP/1.1 200 OK\r\n\r\n"); // opaque
  EXPECT_TRUE(m.body_end);
  EXPECT_TRUE(m.complete);
}

TEST(ParserResponseTest, SwitchToTunnelFromOnHeaders) {
  // The client codec switches to a tunnel when a CONNECT gets a 2xx: it called
  // expectNoBody() for the CONNECT and calls switchToTunnel() inside onHeaders. The
  // message then goes on as a tunnel: the bytes after the head are its data, and it
  // completes at EOF, not with the head.
  for (size_t cut = 0; cut <= 60; cut++) {
    Outcome out;
    Recorder rec(out);
    Parser parser(Type::Response, rec);
    parser.expectNoBody();
    rec.on_headers_ = [&] {
      parser.switchToTunnel();
      return true;
    };
    const std::string input = "HTTP/1.1 200 Connection Established\r\n\r\nopaque\r\n\r\nHTTP/1.1";
    buffer::Buffer in;
    in.add(input.substr(0, std::min(cut, input.size())));
    ASSERT_TRUE(parser.parse(in).ok());
    in.add(input.substr(std::min(cut, input.size())));
    ASSERT_TRUE(parser.parse(in).ok());
    EXPECT_TRUE(parser.inTunnel());
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_FALSE(out.messages[0].complete);
    EXPECT_EQ(out.messages[0].body, "opaque\r\n\r\nHTTP/1.1");
    ASSERT_TRUE(parser.onEof().ok());
    EXPECT_TRUE(out.messages[0].complete);
    EXPECT_TRUE(out.violations.empty()) << out.canonical();
  }
}

TEST(ParserResponseTest, ChunkedWithTrailers) {
  Outcome out = parseResponse(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5\r\npedia\r\ne\r\n in\r\n\r\nchunks.\r\n0\r\nGrpc-Status: 0\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].body, "Wikipedia in\r\n\r\nchunks.");
  EXPECT_THAT(out.messages[0].trailers, ElementsAre(Pair("grpc-status", "0")));
  EXPECT_TRUE(out.messages[0].complete);
}

TEST(ParserResponseTest, MalformedStatusLines) {
  for (const char* line : {"HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/1.1 099 X", "HTTP/1.1 +20 X",
                           "HTTP/1.1  200 OK", "HTTP/1.1 2x0 OK", "HTTP/1.1 200OK", "HTTP/1.1",
                           "HTTP/1.1 ", "ICY 200 OK", "HTTP/1.1\t200 OK"}) {
    expectResponseRejected(absl::StrCat(line, "\r\nContent-Length: 0\r\n\r\n"), 400, "");
  }
  expectResponseRejected("HTTP/2.0 200 OK\r\n\r\n", 400, "unsupported HTTP version");
  expectResponseRejected("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                         400, "both content-length and transfer-encoding");
  expectResponseRejected("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                         "transfer-encoding in HTTP/1.0");
  expectResponseRejected("HTTP/1.1 200 OK\nContent-Length: 0\n\n", 400, "bare LF");
  expectResponseRejected("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
                         "conflicting content-length");
}

TEST(ParserResponseTest, EofMidBodyIsAnError) {
  Outcome out = parseResponse("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                              withEof());
  EXPECT_EQ(out.code(), 400);
  EXPECT_EQ(out.messages.size(), 1u);
  EXPECT_FALSE(out.messages[0].complete);
}

// ---------------------------------------------------------------------------------------
// Smuggling and malformed input, one rule at a time

TEST(ParserRejectTest, ContentLengthAndTransferEncoding) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\n",
      400, "both content-length and transfer-encoding");
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
      "0\r\n\r\n",
      400, "both content-length and transfer-encoding");
}

TEST(ParserRejectTest, DifferingDuplicateContentLength) {
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      400, "conflicting content-length");
}

TEST(ParserRejectTest, NonDigitContentLength) {
  for (const char* v : {"abc", "-1", "+5", "5 5", "0x10", "1,1", "5, 5", "1.0", "", "\xd9\xa5",
                        "1234567890123456789" /* 19 digits: too long */}) {
    expectRequestRejected(absl::StrCat("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: ", v,
                                       "\r\n\r\n"),
                          400, "invalid content-length");
  }
}

TEST(ParserRejectTest, TransferCodingNotEndingInChunked) {
  // A request body whose length we cannot determine: 501 for codings we do not implement.
  expectRequestRejected("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc",
                        501, "unsupported transfer coding");
  expectRequestRejected("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", 501,
                        "unsupported transfer coding");
  expectRequestRejected("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                        501, "unsupported transfer coding");
  expectRequestRejected("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", 501,
                        "unsupported transfer coding");
  // chunked present but not last: RFC 9112 6.3 says 400.
  expectRequestRejected("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                        400, "chunked must be the final transfer coding");
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
      501, "unsupported transfer coding");
}

TEST(ParserRejectTest, ChunkedTwice) {
  expectRequestRejected("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                        400, "chunked must be the final transfer coding, once");
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
      "\r\n",
      400, "chunked must be the final transfer coding, once");
}

TEST(ParserRejectTest, TransferEncodingInHttp10) {
  expectRequestRejected("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
                        "transfer-encoding in HTTP/1.0");
}

TEST(ParserRejectTest, BareLfInHead) {
  expectRequestRejected("GET / HTTP/1.1\nHost: h\n\n", 400, "bare LF");
  expectRequestRejected("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", 400, "bare LF");
  expectRequestRejected("GET / HTTP/1.1\r\nHost: h\r\n\n", 400, "bare LF");
  expectRequestRejected("GET / HTTP/1.1\r\nHost: h\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n",
                        400, "bare LF");
  // In a pipelined second request: the first is delivered, the second never is.
  Outcome out = parseRequest("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\nHost: h\r\n\r\n");
  EXPECT_EQ(out.code(), 400);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_EQ(out.messages[0].headers[1].second, "/1");
}

TEST(ParserRejectTest, BareCrInHead) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: h\rX-Foo: y\r\n\r\n", 400, "bare CR");
  expectRequestRejected("GET / HTTP/1.1\rHost: h\r\n\r\n", 400, "bare CR");
  expectRequestRejected("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", 400, "bare CR");
  expectRequestRejected("GET / HTTP/1.1\r\nHost: h\r\n\r\r\n", 400, "bare CR");
}

TEST(ParserRejectTest, ObsFold) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\r\n b\r\n\r\n", 400,
                        "obsolete line folding");
  expectRequestRejected("GET / HTTP/1.1\r\nHost: h\r\nX-Foo: a\r\n\tb\r\n\r\n", 400,
                        "obsolete line folding");
  // A folded Transfer-Encoding is the classic smuggling case.
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Pad: x\r\n Transfer-Encoding: chunked\r\n"
      "\r\n",
      400, "obsolete line folding");
  // Whitespace before the first header line.
  expectRequestRejected("GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400, "obsolete line folding");
}

TEST(ParserRejectTest, WhitespaceBeforeColon) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, "invalid header name");
  expectRequestRejected("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 400, "invalid header name");
  expectRequestRejected(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n", 400,
      "invalid header name");
}

TEST(ParserRejectTest, InvalidHeaderNameCharacters) {
  for (const char* line : {"X Foo: a", "X@Foo: a", "X(Foo): a", "X\"Foo: a", "X/Foo: a",
                           "X[Foo]: a", "X{F}: a", ": nameless", "X\x01: a", "X\x7f: a",
                           "Caf\xc3\xa9: a", "X=Y: a", "X,Y: a", "X;Y: a"}) {
    expectRequestRejected(requestWithHeader(line), 400, "invalid header name");
  }
  expectRequestRejected(requestWithHeader("NoColonHere"), 400, "header without colon");
  // Every tchar is allowed in a name.
  Outcome out = parseRequest(requestWithHeader("!#$%&'*+-.^_`|~09azAZ: ok"));
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].headers.back().first, "!#$%&'*+-.^_`|~09azaz");
}

TEST(ParserRejectTest, ControlCharactersInValue) {
  for (std::string v : {std::string("a\x01" "b"), std::string("a\0b", 3), std::string("a\x7f"),
                        std::string("\x1b[31m"), std::string("a\x0b" "b"), std::string("a\x0c" "b")}) {
    expectRequestRejected(requestWithHeader("X-Foo: " + v), 400, "invalid header value");
  }
}

TEST(ParserRejectTest, InvalidMethod) {
  for (const char* line : {"G(ET / HTTP/1.1", "G\x01T / HTTP/1.1", " / HTTP/1.1",
                           "GET  / HTTP/1.1", "GET / HTTP/1.1 ", " GET / HTTP/1.1",
                           "GET\t/ HTTP/1.1", "GET /", "GET", "G\xc3\x89T / HTTP/1.1"}) {
    expectRequestRejected(absl::StrCat(line, "\r\nHost: h\r\n\r\n"), 400, "");
  }
  expectRequestRejected("G(ET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "invalid method");
  // Methods are case-sensitive tokens: an unknown one is passed on, not rejected.
  Outcome out = parseRequest("purge /x HTTP/1.1\r\nHost: h\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].headers[0].second, "purge");
}

TEST(ParserRejectTest, BadVersion) {
  for (const char* v : {"HTTP/1.2", "HTTP/2.0", "HTTP/0.9"}) {
    expectRequestRejected(absl::StrCat("GET / ", v, "\r\nHost: h\r\n\r\n"), 400,
                          "unsupported HTTP version");
  }
  for (const char* v : {"http/1.1", "HTTP/1.1x", "HTTP/11", "HTTP/1.", "HTTP/a.b", "HTTPS/1.1",
                        "HTTP/1.10", ""}) {
    expectRequestRejected(absl::StrCat("GET / ", v, "\r\nHost: h\r\n\r\n"), 400,
                          "malformed HTTP version");
  }
}

TEST(ParserRejectTest, MissingHostInHttp11) {
  expectRequestRejected("GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "missing host header");
  // Absolute form and CONNECT carry the authority themselves.
  EXPECT_TRUE(parseRequest("GET http://h/ HTTP/1.1\r\n\r\n").ok());
  EXPECT_TRUE(parseRequest("CONNECT h:443 HTTP/1.1\r\n\r\n").ok());
}

TEST(ParserRejectTest, DuplicateHost) {
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate host");
  expectRequestRejected("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400, "duplicate host");
  expectRequestRejected("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate host");
}

// A chunked request whose chunk section starts with `chunks`: the head is delivered, the
// body stops at the error.
Outcome chunkedRequest(const std::string& chunks) {
  return parseRequest("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks);
}

TEST(ParserRejectTest, BadChunkSize) {
  struct Case {
    std::string chunks;
    std::string why;
  } cases[] = {
      {"g\r\n", "bad chunk size"},
      {"0x5\r\nhello\r\n0\r\n\r\n", "bad chunk size"},
      {"-1\r\n", "bad chunk size"},
      {" 5\r\nhello\r\n", "bad chunk size"},
      {"5 \r\nhello\r\n", "bad chunk size"},
      {"5 ;x\r\nhello\r\n", "bad chunk size"},   // BWS before ';' is not accepted
      {"+5\r\nhello\r\n", "bad chunk size"},
      {"1000000000000000\r\n", "bad chunk size"}, // 16 hex digits: too long
      {"00000000000000001\r\nx\r\n", "bad chunk size"},
      {"\r\n", "bad chunk size"},                 // empty
      {";ext\r\n", "bad chunk size"},             // empty before the extension
      {"5\nhello\r\n", "bare LF"},
      {"5\rhello\r\n", "bare CR"},
      {"5;a\x01\r\nhello\r\n", "bad chunk extension"},
      {"5;" + std::string(5000, 'a') + "\r\n", "chunk line too long"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::CEscape(c.chunks));
    Outcome out = chunkedRequest(c.chunks);
    EXPECT_EQ(out.code(), 400) << out.status;
    EXPECT_THAT(std::string(out.status.message()), HasSubstr(c.why));
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_EQ(out.messages[0].body, "");
    EXPECT_FALSE(out.messages[0].complete);
  }
  // 15 hex digits is the longest size accepted.
  Outcome out = chunkedRequest("00000000000000a\r\n0123456789\r\n0\r\n\r\n");
  ASSERT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.messages[0].body, "0123456789");
}

TEST(ParserRejectTest, MissingCrlfAfterChunkData) {
  for (const char* chunks : {"5\r\nhelloX\r\n0\r\n\r\n", "5\r\nhello0\r\n\r\n",
                             "5\r\nhello\n0\r\n\r\n", "5\r\nhello\rX", "5\r\nhello\r\r\n",
                             "3\r\nhello\r\n0\r\n\r\n"}) {
    SCOPED_TRACE(absl::CEscape(chunks));
    Outcome out = chunkedRequest(chunks);
    EXPECT_EQ(out.code(), 400) << out.status;
    EXPECT_THAT(std::string(out.status.message()), HasSubstr("chunk data not followed by CRLF"));
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_FALSE(out.messages[0].complete);
  }
}

TEST(ParserRejectTest, MalformedTrailers) {
  for (const char* trailers : {"X : y\r\n\r\n", "X\r\n\r\n", " X: y\r\n\r\n", "X: a\x01\r\n\r\n",
                               "X: y\nZ: w\r\n\r\n", "X: y\r\n\n", "\n"}) {
    SCOPED_TRACE(absl::CEscape(trailers));
    Outcome out = chunkedRequest(std::string("1\r\na\r\n0\r\n") + trailers);
    EXPECT_EQ(out.code(), 400) << out.status;
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_FALSE(out.messages[0].has_trailers);
    EXPECT_FALSE(out.messages[0].complete);
  }
}

TEST(ParserRejectTest, HeaderBlockOverLimitIs431) {
  Options opt;
  opt.limits.max_headers_kb = 1;
  const std::string start = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ";
  // The whole block (request line to the blank line) may be up to 1024 + 4 bytes.
  auto block = [&](size_t total) {
    std::string pad(total - start.size() - 4, 'a');
    return start + pad + "\r\n\r\n";
  };
  EXPECT_TRUE(parseRequest(block(1024), opt).ok());
  EXPECT_TRUE(parseRequest(block(1028), opt).ok());
  expectRequestRejected(block(1029), 431, "headers too large", opt);
  expectRequestRejected(block(1500), 431, "headers too large", opt);
  // No end in sight: rejected without waiting for one.
  expectRequestRejected(start + std::string(1100, 'a'), 431, "headers too large", opt);
  // Trailers have the same limit.
  Outcome out = parseRequest(
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " +
          std::string(1100, 'a') + "\r\n\r\n",
      opt);
  EXPECT_EQ(out.code(), 431);
  EXPECT_FALSE(out.messages.at(0).has_trailers);
}

TEST(ParserRejectTest, DefaultHeaderLimitIs60K) {
  // Not split at every offset (too slow at this size): whole and in 1000-byte pieces.
  auto run = [](const std::string& input) {
    Outcome whole = runPieces(Type::Request, {input}, {});
    std::vector<std::string> pieces;
    for (size_t i = 0; i < input.size(); i += 1000) pieces.push_back(input.substr(i, 1000));
    EXPECT_EQ(runPieces(Type::Request, pieces, {}).canonical(), whole.canonical());
    return whole;
  };
  std::string ok = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(60000, 'a') + "\r\n\r\n";
  EXPECT_TRUE(run(ok).ok());
  std::string big = "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + std::string(62000, 'a') + "\r\n\r\n";
  Outcome out = run(big);
  EXPECT_EQ(out.code(), 431);
  EXPECT_FALSE(out.anyHeaders());
}

TEST(ParserRejectTest, TooManyHeadersIs431) {
  Options opt;
  opt.limits.max_headers_count = 5;
  std::string head = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 4; i++) absl::StrAppend(&head, "X-", i, ": v\r\n");
  EXPECT_TRUE(parseRequest(head + "\r\n", opt).ok()); // 5 fields
  expectRequestRejected(head + "X-5: v\r\n\r\n", 431, "too many headers", opt);
  // Default: 100.
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 100; i++) absl::StrAppend(&many, "X: v\r\n");
  expectRequestRejected(many + "\r\n", 431, "too many headers");
}

TEST(ParserRejectTest, ErrorsLeaveNoHeadersAcrossEveryRule) {
  // One input per rule, all through the same check, as a table: a head that breaks a
  // rule never reaches onHeaders, however the bytes arrive.
  struct Case {
    std::string input;
    int code;
  } cases[] = {
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1a\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: deflate\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"GET / HTTP/1.1\nHost: h\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\rx\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n c\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nA<B: c\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nA: \x02\r\n\r\n", 400},
      {"G<T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
      {"GET / HTTP/1.3\r\nHost: h\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", 400},
  };
  for (const Case& c : cases) expectRequestRejected(c.input, c.code, "");
}

} // namespace
} // namespace http1
} // namespace tern
