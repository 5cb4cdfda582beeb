// libFuzzer target for http1::Parser, both directions.
//
// Input layout: byte 0 picks the options (limits, HEAD expectation, pausing), byte 1
// seeds how the rest is cut into reads; the rest is the bytes from the peer.
//
// Each input is parsed twice per direction: once as a single read, once cut into the
// chosen pieces (pausing at every message end and resuming, as the server codec does).
// Besides not crashing (ASan/UBSan in the libFuzzer build), the parser must
//   - keep its callback contract (no data after end of stream, one completion per
//     message, no head before the previous message completed, ...), and
//   - give the same messages, bodies and error however the bytes were cut.
// A broken rule aborts with a description on stderr.
//
// Built two ways: tools/fuzz (clang, -fsanitize=fuzzer,address,undefined), and
// //test/fuzz:http1_server_fuzz_replay (replays test/fuzz/corpus/http1_server in
// `bazel test`).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "extensions/codecs/http1/parser.h"
#include "source/common/buffer/block_pool.h"
#include "source/common/buffer/buffer.h"

namespace tern {
namespace http1 {
namespace {

[[noreturn]] void fail(const std::string& what, absl::string_view input) {
  fprintf(stderr, "http1_server_fuzz: %s\ninput: \"%s\"\n", what.c_str(),
          absl::CEscape(input).c_str());
  abort();
}

// Records what the parser reports as text, and checks the callback contract.
class Recorder : public Parser::Callbacks {
public:
  absl::Status onHeaders(http::HeaderMapPtr headers, const MessageInfo& info,
                         bool end_stream) override {
    if (in_message_ && !interim_) violation("onHeaders before the previous message completed");
    const absl::string_view* status = headers->get(":status");
    interim_ = status != nullptr && (*status)[0] == '1' && *status != "101";
    in_message_ = true;
    ended_ = end_stream;
    absl::StrAppend(&log_, "H", end_stream ? "+" : "", " ");
    for (const auto& [k, v] : headers->entries()) {
      if (k.empty()) violation("empty header name");
      absl::StrAppend(&log_, k, "=", v, "|");
    }
    absl::StrAppend(&log_, " p", static_cast<int>(info.protocol), info.keep_alive,
                    info.upgrade, info.connect, info.expect_continue, "\n");
    return absl::OkStatus();
  }

  void onData(buffer::Buffer& data, bool end_stream) override {
    if (!in_message_ || interim_) violation("onData outside a message");
    if (ended_) violation("onData after end of stream");
    if (data.empty() && !end_stream) violation("empty onData without end_stream");
    // Consecutive data calls are one body: only the bytes and the end count.
    if (!in_body_) absl::StrAppend(&log_, "D ");
    in_body_ = true;
    absl::StrAppend(&log_, data.toString());
    data.drain(data.length());
    if (end_stream) {
      ended_ = true;
      absl::StrAppend(&log_, " D+\n");
    }
  }

  void onTrailers(http::HeaderMapPtr trailers) override {
    if (!in_message_ || interim_) violation("onTrailers outside a message");
    if (ended_) violation("onTrailers after end of stream");
    ended_ = true;
    endBody();
    absl::StrAppend(&log_, "T ");
    for (const auto& [k, v] : trailers->entries()) absl::StrAppend(&log_, k, "=", v, "|");
    absl::StrAppend(&log_, "\n");
  }

  void onMessageComplete() override {
    if (!in_message_ || interim_) violation("onMessageComplete outside a message");
    if (!ended_) violation("onMessageComplete before end of stream");
    endBody();
    in_message_ = false;
    absl::StrAppend(&log_, "C\n");
    if (pause_on_complete_ && parser_ != nullptr) parser_->pause();
  }

  void endBody() {
    if (in_body_) absl::StrAppend(&log_, "\n");
    in_body_ = false;
  }
  void violation(const std::string& what) {
    if (violations_.empty()) violations_ = what;
  }

  std::string log_;
  std::string violations_;
  Parser* parser_{nullptr};
  bool pause_on_complete_{false};

private:
  bool in_message_{false};
  bool interim_{false};
  bool ended_{false};
  bool in_body_{false};
};

struct Options {
  Parser::Type type;
  Limits limits;
  bool expect_no_body;
  bool eof;
};

// Deterministic piece lengths from a seed (1..64, now and then a long one).
std::vector<size_t> cuts(uint8_t seed, size_t total) {
  std::vector<size_t> out;
  uint32_t x = seed * 2654435761u + 12345;
  size_t at = 0;
  while (at < total) {
    x = x * 1103515245u + 12345;
    size_t n = (x >> 16) % 8 == 0 ? 1 + (x >> 8) % 512 : 1 + (x >> 20) % 16;
    n = std::min(n, total - at);
    out.push_back(n);
    at += n;
  }
  return out;
}

// Parses `input` in `pieces` (empty: one read) and returns the log plus the outcome.
std::string run(const Options& opt, absl::string_view input, const std::vector<size_t>& pieces,
                bool pause) {
  buffer::BlockPool pool(pieces.empty() ? buffer::BlockPool::kDefaultBlockSize : 64);
  Recorder rec;
  std::string outcome;
  {
    Parser parser(opt.type, rec, opt.limits);
    rec.parser_ = &parser;
    rec.pause_on_complete_ = pause;
    if (opt.expect_no_body) parser.expectNoBody();
    buffer::Buffer in(&pool);
    absl::Status st;
    auto parseAll = [&] {
      st = parser.parse(in);
      // Paused at a message end: resume at once (the server does once its response is
      // out). A paused parser must leave the bytes after that message alone.
      // Each completion consumed bytes, so this ends.
      while (st.ok() && parser.paused()) {
        parser.resume();
        st = parser.parse(in);
      }
    };
    if (pieces.empty()) {
      in.add(input);
      parseAll();
    } else {
      size_t at = 0;
      for (size_t n : pieces) {
        in.add(input.substr(at, n));
        at += n;
        parseAll();
        if (!st.ok()) break;
      }
    }
    if (st.ok() && opt.eof) st = parser.onEof();
    if (st.ok()) {
      outcome = absl::StrCat("ok left=", in.length(), " idle=", parser.idle());
    } else {
      switch (st.code()) {
      case absl::StatusCode::kInvalidArgument:
      case absl::StatusCode::kResourceExhausted:
      case absl::StatusCode::kUnimplemented:
        break;
      default:
        rec.violation(absl::StrCat("status with no HTTP mapping: ", st.ToString()));
      }
      outcome = st.ToString();
    }
  }
  if (pool.inUse() != 0) rec.violation("buffer blocks leaked");
  if (!rec.violations_.empty()) fail(rec.violations_, input);
  return rec.log_ + outcome;
}

void check(const Options& opt, absl::string_view input, uint8_t seed) {
  std::string whole = run(opt, input, {}, false);
  std::string split = run(opt, input, cuts(seed, input.size()), (seed & 1) != 0);
  if (whole != split) {
    fail(absl::StrCat(opt.type == Parser::Type::Request ? "request" : "response",
                      " parse depends on how the input is cut (seed ", seed, ")\nwhole:\n", whole,
                      "\nsplit:\n", split),
         input);
  }
}

} // namespace
} // namespace http1
} // namespace tern

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern::http1;
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const uint8_t seed = data[1];
  absl::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);

  Limits limits;
  switch (mode & 3) {
  case 0: break; // defaults: 60 KiB, 100 headers
  case 1: limits.max_headers_kb = 1; break;
  case 2: limits.max_headers_count = 4; break;
  case 3: limits.max_headers_kb = 1; limits.max_headers_count = 2; break;
  }
  const bool eof = (mode & 4) != 0;
  check(Options{Parser::Type::Request, limits, false, eof}, input, seed);
  check(Options{Parser::Type::Response, limits, (mode & 8) != 0, eof}, input, seed);
  return 0;
}
