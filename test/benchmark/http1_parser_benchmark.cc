// Tern's HTTP/1 parser against Debian's http-parser 2.9.4 (Node's old parser, the one
// Envoy used before its balsa/http-parser switch), on the same messages:
//   get8        a small GET with 8 headers
//   browser20   a browser-like GET with 20 headers (cookies, client hints, ...)
//   pipeline10  ten small GETs in one read
//   pipeline100 a hundred of them (per-request cost must not grow with the batch)
//   chunked16k  a POST with a 16 KiB body in 16 chunks of 1 KiB, plus a trailer
//
// For each message there are three measurements:
//   Tern            http1::Parser building the HeaderMap the proxy forwards (names
//                   lower-cased, pseudo-headers, framing checked), input copied into a
//                   tern Buffer first (as a read would have put it there);
//   HttpParserRaw   http_parser_execute with callbacks that only count: the tokenizer
//                   alone, a lower bound no proxy gets;
//   HttpParserMap   http_parser_execute with callbacks that build the same HeaderMap
//                   (what a codec on top of it has to do).
//
//   bazel run -c opt //test/benchmark:http1_parser_benchmark -- --benchmark_min_time=1
//
// Two more modes of the same binary (see docs/http1-parser.md):
//   --strictness        which malformed / smuggling inputs each parser accepts
//   --count PARSER CASE N
//                       parse CASE N times with PARSER (tern|raw|map, or copy: only the
//                       input copy the tern figure includes), for
//                       valgrind --tool=callgrind --toggle-collect='*parseOnce*'
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "extensions/codecs/http1/parser.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/buffer/buffer.h"

extern "C" {
#include <http_parser.h>
}

namespace tern {
namespace {

// ---------------------------------------------------------------------------------------
// Messages

std::string get8() {
  return "GET /api/v1/items?page=2&sort=name HTTP/1.1\r\n"
         "Host: api.example.com\r\n"
         "User-Agent: curl/7.88.1\r\n"
         "Accept: application/json\r\n"
         "Accept-Encoding: gzip, deflate\r\n"
         "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo\r\n"
         "X-Request-Id: 6f1b2c9e-5d4a-4e0b-9a7c-2f3d4e5f6a7b\r\n"
         "Connection: keep-alive\r\n"
         "Cache-Control: no-cache\r\n"
         "\r\n";
}

std::string browser20() {
  return "GET /products/shoes/running?color=blue&size=42 HTTP/1.1\r\n"
         "Host: www.example-shop.com\r\n"
         "Connection: keep-alive\r\n"
         "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
         "sec-ch-ua-mobile: ?0\r\n"
         "sec-ch-ua-platform: \"Linux\"\r\n"
         "Upgrade-Insecure-Requests: 1\r\n"
         "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Safari/537.36\r\n"
         "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
         "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
         "Sec-Fetch-Site: same-origin\r\n"
         "Sec-Fetch-Mode: navigate\r\n"
         "Sec-Fetch-User: ?1\r\n"
         "Sec-Fetch-Dest: document\r\n"
         "Referer: https://www.example-shop.com/products/shoes?category=running\r\n"
         "Accept-Encoding: gzip, deflate, br, zstd\r\n"
         "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7\r\n"
         "Cookie: session_id=a3f8c2e1b9d74f6e8a2c1b3d5e7f9a0b; cart=3; consent=analytics%3Dfalse; "
         "_ga=GA1.1.123456789.1700000000; theme=dark\r\n"
         "If-None-Match: W/\"5e15153d-120f\"\r\n"
         "If-Modified-Since: Tue, 07 May 2024 10:00:00 GMT\r\n"
         "Priority: u=0, i\r\n"
         "DNT: 1\r\n"
         "\r\n";
}

std::string pipeline(int n) {
  std::string s;
  for (int i = 0; i < n; i++) {
    absl::StrAppend(&s, "GET /static/asset-", i,
                    ".js HTTP/1.1\r\nHost: cdn.example.com\r\nUser-Agent: bench/1\r\n"
                    "Accept: */*\r\nAccept-Encoding: gzip\r\n\r\n");
  }
  return s;
}

std::string chunked16k() {
  std::string s =
      "POST /upload HTTP/1.1\r\nHost: up.example.com\r\nContent-Type: application/octet-stream\r\n"
      "Transfer-Encoding: chunked\r\n\r\n";
  std::string chunk(1024, 'x');
  for (int i = 0; i < 16; i++) absl::StrAppend(&s, "400\r\n", chunk, "\r\n");
  absl::StrAppend(&s, "0\r\nX-Checksum: 1234abcd\r\n\r\n");
  return s;
}

struct Case {
  const char* name;
  std::string data;
  int messages;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"get8", get8(), 1},
      {"browser20", browser20(), 1},
      {"pipeline10", pipeline(10), 10},
      {"pipeline100", pipeline(100), 100},
      {"chunked16k", chunked16k(), 1},
  };
  return c;
}

// ---------------------------------------------------------------------------------------
// Tern

class CountingCallbacks : public http1::Parser::Callbacks {
public:
  absl::Status onHeaders(http::HeaderMapPtr headers, const http1::MessageInfo&, bool) override {
    header_count += headers->size();
    return absl::OkStatus();
  }
  void onData(buffer::Buffer& data, bool) override {
    body_bytes += data.length();
    data.drain(data.length());
  }
  void onTrailers(http::HeaderMapPtr) override {}
  void onMessageComplete() override { messages++; }
  size_t header_count{0};
  size_t body_bytes{0};
  int messages{0};
};

struct TernState {
  buffer::BlockPool pool;
  CountingCallbacks cb;
  http1::Parser parser{http1::Parser::Type::Request, cb};
  buffer::Buffer in{&pool};
};

__attribute__((noinline)) bool ternParseOnce(TernState& s, const std::string& data) {
  s.in.add(data);
  absl::Status st = s.parser.parse(s.in);
  return st.ok() && s.in.empty();
}

__attribute__((noinline)) void copyParseOnce(buffer::Buffer& in, const std::string& data) {
  in.add(data);
  in.drain(in.length());
}

// ---------------------------------------------------------------------------------------
// http-parser

struct RawCounts {
  size_t header_fields{0};
  size_t body_bytes{0};
  int messages{0};
};

int rawOnHeaderField(http_parser* p, const char*, size_t) {
  static_cast<RawCounts*>(p->data)->header_fields++;
  return 0;
}
int rawOnBody(http_parser* p, const char*, size_t n) {
  static_cast<RawCounts*>(p->data)->body_bytes += n;
  return 0;
}
int rawOnComplete(http_parser* p) {
  static_cast<RawCounts*>(p->data)->messages++;
  return 0;
}

http_parser_settings rawSettings() {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_header_field = rawOnHeaderField;
  s.on_body = rawOnBody;
  s.on_message_complete = rawOnComplete;
  return s;
}

// Builds the HeaderMap Tern's codec would forward: the callbacks may deliver a field in
// pieces (reads split it), so names and values accumulate until the other one starts.
struct MapBuilder {
  http::HeaderMapPtr headers;
  std::string url, field, value;
  bool in_value{false};
  size_t header_count{0};
  size_t body_bytes{0};
  int messages{0};

  void flush() {
    if (!field.empty()) {
      absl::AsciiStrToLower(&field);
      if (field == "host") {
        headers->add(":authority", value);
      } else if (field != "transfer-encoding") {
        headers->add(field, value);
      }
    }
    field.clear();
    value.clear();
    in_value = false;
  }
};

int mapOnBegin(http_parser* p) {
  auto* b = static_cast<MapBuilder*>(p->data);
  b->headers = std::make_unique<http::HeaderMap>();
  b->url.clear();
  b->field.clear();
  b->value.clear();
  b->in_value = false;
  return 0;
}
int mapOnUrl(http_parser* p, const char* at, size_t n) {
  static_cast<MapBuilder*>(p->data)->url.append(at, n);
  return 0;
}
int mapOnHeaderField(http_parser* p, const char* at, size_t n) {
  auto* b = static_cast<MapBuilder*>(p->data);
  if (b->in_value) b->flush();
  b->field.append(at, n);
  return 0;
}
int mapOnHeaderValue(http_parser* p, const char* at, size_t n) {
  auto* b = static_cast<MapBuilder*>(p->data);
  b->in_value = true;
  b->value.append(at, n);
  return 0;
}
int mapOnHeadersComplete(http_parser* p) {
  auto* b = static_cast<MapBuilder*>(p->data);
  b->flush();
  b->headers->add(":method", http_method_str(static_cast<http_method>(p->method)));
  b->headers->add(":path", b->url);
  b->headers->add(":scheme", "http");
  b->header_count += b->headers->size();
  return 0;
}
int mapOnBody(http_parser* p, const char*, size_t n) {
  static_cast<MapBuilder*>(p->data)->body_bytes += n;
  return 0;
}
int mapOnComplete(http_parser* p) {
  auto* b = static_cast<MapBuilder*>(p->data);
  b->messages++;
  b->headers.reset();
  return 0;
}

http_parser_settings mapSettings() {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_message_begin = mapOnBegin;
  s.on_url = mapOnUrl;
  s.on_header_field = mapOnHeaderField;
  s.on_header_value = mapOnHeaderValue;
  s.on_headers_complete = mapOnHeadersComplete;
  s.on_body = mapOnBody;
  s.on_message_complete = mapOnComplete;
  return s;
}

__attribute__((noinline)) bool httpParserParseOnce(http_parser& p, const http_parser_settings& s,
                                                   const std::string& data) {
  size_t n = http_parser_execute(&p, &s, data.data(), data.size());
  return n == data.size() && HTTP_PARSER_ERRNO(&p) == HPE_OK;
}

// ---------------------------------------------------------------------------------------
// Benchmarks

void BM_Tern(benchmark::State& state, const Case* c) {
  TernState s;
  for (auto _ : state) {
    if (!ternParseOnce(s, c->data)) {
      state.SkipWithError("parse failed");
      break;
    }
  }
  benchmark::DoNotOptimize(s.cb.header_count);
  state.SetBytesProcessed(state.iterations() * c->data.size());
  state.SetItemsProcessed(state.iterations() * c->messages);
}

void BM_HttpParserRaw(benchmark::State& state, const Case* c) {
  RawCounts counts;
  http_parser p;
  http_parser_init(&p, HTTP_REQUEST);
  p.data = &counts;
  http_parser_settings s = rawSettings();
  for (auto _ : state) {
    if (!httpParserParseOnce(p, s, c->data)) {
      state.SkipWithError("parse failed");
      break;
    }
  }
  benchmark::DoNotOptimize(counts.header_fields);
  state.SetBytesProcessed(state.iterations() * c->data.size());
  state.SetItemsProcessed(state.iterations() * c->messages);
}

void BM_HttpParserMap(benchmark::State& state, const Case* c) {
  MapBuilder b;
  http_parser p;
  http_parser_init(&p, HTTP_REQUEST);
  p.data = &b;
  http_parser_settings s = mapSettings();
  for (auto _ : state) {
    if (!httpParserParseOnce(p, s, c->data)) {
      state.SkipWithError("parse failed");
      break;
    }
  }
  benchmark::DoNotOptimize(b.header_count);
  state.SetBytesProcessed(state.iterations() * c->data.size());
  state.SetItemsProcessed(state.iterations() * c->messages);
}

// The input copy Tern's measurement includes (what a socket read does anyway).
void BM_BufferCopyOnly(benchmark::State& state, const Case* c) {
  buffer::BlockPool pool;
  buffer::Buffer in(&pool);
  for (auto _ : state) copyParseOnce(in, c->data);
  state.SetBytesProcessed(state.iterations() * c->data.size());
}

void registerBenchmarks() {
  for (const Case& c : cases()) {
    benchmark::RegisterBenchmark(absl::StrCat("BM_Tern/", c.name).c_str(), BM_Tern, &c);
    benchmark::RegisterBenchmark(absl::StrCat("BM_HttpParserRaw/", c.name).c_str(),
                                 BM_HttpParserRaw, &c);
    benchmark::RegisterBenchmark(absl::StrCat("BM_HttpParserMap/", c.name).c_str(),
                                 BM_HttpParserMap, &c);
    benchmark::RegisterBenchmark(absl::StrCat("BM_BufferCopyOnly/", c.name).c_str(),
                                 BM_BufferCopyOnly, &c);
  }
}

// ---------------------------------------------------------------------------------------
// --count: a fixed number of parses, for callgrind

int countMode(const std::string& parser, const std::string& name, long n) {
  const Case* c = nullptr;
  for (const Case& k : cases()) {
    if (name == k.name) c = &k;
  }
  if (c == nullptr || n <= 0) {
    fprintf(stderr, "usage: --count tern|raw|map|copy get8|browser20|pipeline10|pipeline100|chunked16k N\n");
    return 2;
  }
  bool ok = true;
  if (parser == "copy") {
    // Only the copy into a Buffer that the tern measurement includes.
    buffer::BlockPool pool;
    buffer::Buffer in(&pool);
    for (long i = 0; i < n; i++) copyParseOnce(in, c->data);
  } else if (parser == "tern") {
    TernState s;
    for (long i = 0; i < n; i++) ok &= ternParseOnce(s, c->data);
  } else if (parser == "raw" || parser == "map") {
    RawCounts counts;
    MapBuilder b;
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = parser == "raw" ? static_cast<void*>(&counts) : static_cast<void*>(&b);
    http_parser_settings s = parser == "raw" ? rawSettings() : mapSettings();
    for (long i = 0; i < n; i++) ok &= httpParserParseOnce(p, s, c->data);
  } else {
    fprintf(stderr, "unknown parser %s\n", parser.c_str());
    return 2;
  }
  printf("%s %s: %ld parses of %zu bytes: %s\n", parser.c_str(), c->name, n, c->data.size(),
         ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}

// ---------------------------------------------------------------------------------------
// --strictness: the malformed inputs of test/extensions/codecs/http1/parser_test.cc

struct BadInput {
  const char* rule;
  std::string request;
};

std::vector<BadInput> badInputs() {
  std::string many = "GET / HTTP/1.1\r\nHost: h\r\n";
  for (int i = 0; i < 101; i++) absl::StrAppend(&many, "X-", i, ": v\r\n");
  return {
      {"Content-Length and Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"differing duplicate Content-Length",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
      {"identical duplicate Content-Length (valid)",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
      {"non-digit Content-Length (\"+5\")",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello"},
      {"Content-Length list (\"5, 5\")",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhello"},
      {"Transfer-Encoding not ending in chunked (gzip)",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\nabc"},
      {"chunked twice",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"},
      {"Transfer-Encoding in HTTP/1.0",
       "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
      {"bare LF line ends in the head", "GET / HTTP/1.1\nHost: h\nX: y\n\n"},
      {"bare CR in the head", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n"},
      {"obs-fold (continuation line)", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"},
      {"obs-fold hiding Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\nabc"},
      {"whitespace before the colon", "GET / HTTP/1.1\r\nHost: h\r\nX-Foo : y\r\n\r\n"},
      {"whitespace before the colon of Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc"},
      {"invalid header name character (\"X@Foo\")", "GET / HTTP/1.1\r\nHost: h\r\nX@Foo: y\r\n\r\n"},
      {"control character in a value (0x01)", "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01" "b\r\n\r\n"},
      {"NUL in a value", std::string("GET / HTTP/1.1\r\nHost: h\r\nX: a") + '\0' + "b\r\n\r\n"},
      {"invalid method (\"G(T\")", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n"},
      {"unsupported version HTTP/1.2", "GET / HTTP/1.2\r\nHost: h\r\n\r\n"},
      {"missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nX: y\r\n\r\n"},
      {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
      {"absolute URI with userinfo", "GET http://good@evil/ HTTP/1.1\r\nHost: good\r\n\r\n"},
      {"non-hex chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\ng\r\n"},
      {"chunk size too long (overflow)",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n"},
      {"empty chunk size",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n;ext\r\n"},
      {"chunk data not followed by CRLF",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"},
      {"bare LF in chunked framing",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n"},
      {"control character in a chunk extension",
       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n"},
      {"101 header lines (limit 100)", many + "\r\n"},
      {"61 KiB header block (limit 60 KiB)",
       "GET / HTTP/1.1\r\nHost: h\r\nX: " + std::string(62000, 'a') + "\r\n\r\n"},
  };
}

struct TernResult : http1::Parser::Callbacks {
  absl::Status onHeaders(http::HeaderMapPtr, const http1::MessageInfo&, bool) override {
    heads++;
    return absl::OkStatus();
  }
  void onData(buffer::Buffer& d, bool) override { d.drain(d.length()); }
  void onTrailers(http::HeaderMapPtr) override {}
  void onMessageComplete() override { complete++; }
  int heads{0};
  int complete{0};
};

std::string ternVerdict(const std::string& input) {
  TernResult r;
  http1::Parser parser(http1::Parser::Type::Request, r);
  buffer::Buffer in;
  in.add(input);
  absl::Status st = parser.parse(in);
  if (st.ok()) {
    return absl::StrCat("accepted (", r.heads, " head(s), ", r.complete, " complete)");
  }
  int code = st.code() == absl::StatusCode::kResourceExhausted ? 431
             : st.code() == absl::StatusCode::kUnimplemented   ? 501
                                                               : 400;
  return absl::StrCat(code, " ", st.message());
}

struct HpResult {
  int heads{0};
  int complete{0};
  size_t body{0};
  bool chunked{false};
  std::string fields; // as its callbacks delivered them: name=value|...
  bool in_value{false};
};

std::string httpParserVerdict(const std::string& input) {
  HpResult r;
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_header_field = [](http_parser* p, const char* at, size_t n) {
    auto* r = static_cast<HpResult*>(p->data);
    if (r->in_value || r->fields.empty()) absl::StrAppend(&r->fields, r->fields.empty() ? "" : "|");
    r->in_value = false;
    r->fields.append(at, n);
    return 0;
  };
  s.on_header_value = [](http_parser* p, const char* at, size_t n) {
    auto* r = static_cast<HpResult*>(p->data);
    if (!r->in_value) r->fields.push_back('=');
    r->in_value = true;
    r->fields.append(at, n);
    return 0;
  };
  s.on_headers_complete = [](http_parser* p) {
    auto* r = static_cast<HpResult*>(p->data);
    r->heads++;
    r->chunked |= (p->flags & F_CHUNKED) != 0;
    return 0;
  };
  s.on_body = [](http_parser* p, const char*, size_t n) {
    static_cast<HpResult*>(p->data)->body += n;
    return 0;
  };
  s.on_message_complete = [](http_parser* p) {
    static_cast<HpResult*>(p->data)->complete++;
    return 0;
  };
  http_parser p;
  http_parser_init(&p, HTTP_REQUEST);
  p.data = &r;
  size_t n = http_parser_execute(&p, &s, input.data(), input.size());
  if (HTTP_PARSER_ERRNO(&p) != HPE_OK) {
    return absl::StrCat("rejected: ", http_errno_name(HTTP_PARSER_ERRNO(&p)), " at byte ", n);
  }
  std::string fields = r.fields.size() > 60 ? r.fields.substr(0, 57) + "..." : r.fields;
  std::string v = absl::StrCat("**accepted**: ", r.complete, " message(s), ",
                               r.chunked ? "chunked, " : "", "body ", r.body, " bytes; fields `",
                               absl::CEscape(fields), "`");
  if (p.upgrade) absl::StrAppend(&v, ", upgrade");
  return v;
}

int strictnessMode() {
  unsigned long v = http_parser_version();
  printf("http-parser %lu.%lu.%lu, default settings (lenient_http_headers=0, "
         "allow_chunked_length=0)\n\n",
         (v >> 16) & 255, (v >> 8) & 255, v & 255);
  printf("| Input | Tern | http-parser |\n|---|---|---|\n");
  for (const BadInput& b : badInputs()) {
    printf("| %s | %s | %s |\n", b.rule, ternVerdict(b.request).c_str(),
           httpParserVerdict(b.request).c_str());
  }
  return 0;
}

} // namespace
} // namespace tern

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--strictness") == 0) return tern::strictnessMode();
  if (argc >= 2 && std::strcmp(argv[1], "--count") == 0) {
    if (argc != 5) return tern::countMode("", "", 0);
    return tern::countMode(argv[2], argv[3], std::atol(argv[4]));
  }
  tern::registerBenchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
