#include "extensions/codecs/http1/parser.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tern {
namespace http1 {
namespace {

// RFC 9110 tchar, as a table: this runs for every byte of every method and field name.
struct TcharTable {
  bool ok[256] = {};
  char lower[256] = {}; // the lower-case byte for a tchar, 0 for anything else
  bool value_ok[256] = {}; // allowed in a field value
  TcharTable() {
    for (int c = 0; c < 256; c++) value_ok[c] = c == '\t' || (c >= 0x20 && c != 0x7f);
    for (int c = 0; c < 256; c++) ok[c] = absl::ascii_isalnum(static_cast<unsigned char>(c));
    for (const char* p = "!#$%&'*+-.^_`|~"; *p; p++) ok[static_cast<unsigned char>(*p)] = true;
    for (int c = 0; c < 256; c++) {
      lower[c] = ok[c] ? absl::ascii_tolower(static_cast<unsigned char>(c)) : 0;
    }
  }
};
const TcharTable kTchar;

inline bool isToken(absl::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (!kTchar.ok[c]) return false;
  }
  return true;
}

// Checks that `s` is a token and writes it lower-cased to `out` (room for s.size()), in
// one pass: field names need both.
inline bool lowerToken(absl::string_view s, char* out) {
  // Raw pointers: absl::string_view's operator[] is bounds-checked in Debian's build.
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  const unsigned char* end = p + s.size();
  char zero = s.empty() ? 0 : 1; // stays non-zero while every byte is a tchar
  for (; p < end; p++, out++) {
    char l = kTchar.lower[*p];
    *out = l;
    zero = l == 0 ? 0 : zero;
  }
  return zero != 0;
}

// Field values: visible ASCII, obs-text, SP and HTAB; never CR, LF, NUL or other CTLs.
// findControl returns the first byte at or after `p` that no field value may hold, or
// `end`: sixteen bytes at a time with SSE2, else eight: a word with no byte below 0x20 and
// none equal to 0x7f is fine (bytes >= 0x80 are obs-text); one that might have one is
// checked byte by byte.
inline const char* findControl(const char* p, const char* end) {
#if defined(__SSE2__)
  // Sixteen at a time: a byte is fine when it is >= 0x20 (unsigned) and not DEL, or HTAB.
  const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f), tab = _mm_set1_epi8('\t');
  for (; end - p >= 16; p += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i printable = _mm_cmpeq_epi8(_mm_max_epu8(v, space), v);
    const __m128i ok = _mm_or_si128(_mm_andnot_si128(_mm_cmpeq_epi8(v, del), printable),
                                    _mm_cmpeq_epi8(v, tab));
    const unsigned bad = ~unsigned(_mm_movemask_epi8(ok)) & 0xffff;
    if (bad != 0) return p + __builtin_ctz(bad);
  }
#endif
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  for (; end - p >= 8; p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
    uint64_t x = w ^ (kOnes * 0x7f);
    uint64_t del = (x - kOnes) & ~x & kHigh;
    if ((below_space | del) == 0) continue;
    for (int i = 0; i < 8; i++) {
      if (!kTchar.value_ok[static_cast<unsigned char>(p[i])]) return p + i;
    }
  }
  while (p < end && kTchar.value_ok[static_cast<unsigned char>(*p)]) p++;
  return p;
}

inline bool isFieldValue(absl::string_view s) {
  return findControl(s.data(), s.data() + s.size()) == s.data() + s.size();
}

// Copies the run of letters, digits and '-' at `p` (what nearly every field name is made
// of) lower-cased to `out`, sixteen bytes at a time while 16 remain before `stop`; the
// caller finishes with the table. `out` must have 16 bytes of room past the run.
inline char* lowerNameRun(const char*& p, const char* stop, char* out) {
#if defined(__SSE2__)
  const __m128i a1 = _mm_set1_epi8('A' - 1), z1 = _mm_set1_epi8('Z' + 1);
  const __m128i la1 = _mm_set1_epi8('a' - 1), lz1 = _mm_set1_epi8('z' + 1);
  const __m128i d1 = _mm_set1_epi8('0' - 1), d2 = _mm_set1_epi8('9' + 1);
  const __m128i dash = _mm_set1_epi8('-'), case_bit = _mm_set1_epi8(0x20);
  while (stop - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed compares: bytes >= 0x80 are negative and fall in no range.
    const __m128i upper = _mm_and_si128(_mm_cmpgt_epi8(v, a1), _mm_cmplt_epi8(v, z1));
    const __m128i lower = _mm_and_si128(_mm_cmpgt_epi8(v, la1), _mm_cmplt_epi8(v, lz1));
    const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, d1), _mm_cmplt_epi8(v, d2));
    const __m128i ok =
        _mm_or_si128(_mm_or_si128(upper, lower), _mm_or_si128(digit, _mm_cmpeq_epi8(v, dash)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                     _mm_add_epi8(v, _mm_and_si128(upper, case_bit)));
    const unsigned mask = unsigned(_mm_movemask_epi8(ok));
    const unsigned n = mask == 0xffff ? 16 : __builtin_ctz(~mask);
    p += n;
    out += n;
    if (n < 16) break;
  }
#endif
  return out;
}

inline absl::string_view trimOws(absl::string_view s) {
  const char* b = s.data();
  const char* e = b + s.size();
  while (b < e && (*b == ' ' || *b == '\t')) b++;
  while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
  return absl::string_view(b, e - b);
}

// `s` equals `lower` (a lower-case literal of the same length) ignoring ASCII case.
inline bool equalsLower(absl::string_view s, absl::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); i++) {
    if (absl::ascii_tolower(static_cast<unsigned char>(s[i])) != lower[i]) return false;
  }
  return true;
}

absl::Status bad(absl::string_view why) { return absl::InvalidArgumentError(why); }

} // namespace

absl::StatusOr<bool> Parser::collectBlock(buffer::Buffer& data) {
  const size_t limit = size_t(limits_.max_headers_kb) * 1024;
  static constexpr absl::string_view kEnd = "\r\n\r\n";
  while (!data.empty()) {
    iovec iov;
    data.getReadableSlices(&iov, 1);
    size_t take = std::min<size_t>(iov.iov_len, limit + 4 - std::min(limit + 4, head_.size()));
    if (take == 0) return absl::ResourceExhaustedError("headers too large");
    const absl::string_view in(static_cast<const char*>(iov.iov_base), take);
    const size_t old = head_.size();
    // How many bytes of `in` complete the block, if it ends in them. Only those are
    // copied: bytes after it (a body or the next pipelined message in the same read) are
    // not part of the head and are not checked, copied or consumed here.
    size_t end = absl::string_view::npos;
    if (state_ == State::Trailers && old == 0 && absl::StartsWith(in, "\r\n")) {
      end = 2; // an empty trailer section: just the final CRLF
    } else if (state_ == State::Trailers && old == 1 && head_[0] == '\r' && in[0] == '\n') {
      end = 1;
    } else {
      // The CRLFCRLF may begin in the last three bytes already collected.
      const size_t tail = std::min<size_t>(old, 3);
      char window[6];
      const size_t head_part = std::min<size_t>(in.size(), 3);
      std::memcpy(window, head_.data() + old - tail, tail);
      std::memcpy(window + tail, in.data(), head_part);
      size_t pos = absl::string_view(window, tail + head_part).find(kEnd);
      if (pos != absl::string_view::npos) {
        end = pos + 4 - tail;
      } else if ((pos = in.find(kEnd)) != absl::string_view::npos) {
        end = pos + 4;
      }
    }
    const size_t n = end == absl::string_view::npos ? take : end;
    head_.append(in.data(), n);
    // Every LF must follow a CR (a bare LF is how smuggling payloads hide line ends). A CR
    // that ended the previous read is checked again now that its next byte is here.
    for (size_t i = old > 0 ? old - 1 : 0; i < head_.size(); i++) {
      if (head_[i] == '\n' && (i == 0 || head_[i - 1] != '\r')) return bad("bare LF");
      if (head_[i] == '\r' && i + 1 < head_.size() && head_[i + 1] != '\n') return bad("bare CR");
    }
    data.drain(n);
    if (end != absl::string_view::npos) return true;
    // Up to limit + 4 bytes with the final CRLFCRLF, however the bytes arrive.
    if (head_.size() >= limit + 4) return absl::ResourceExhaustedError("headers too large");
  }
  return false;
}

absl::StatusOr<bool> Parser::collectLine(buffer::Buffer& data) {
  while (!data.empty()) {
    char c = static_cast<char>(data.peek(0));
    data.drain(1);
    if (c == '\n') {
      if (line_.empty() || line_.back() != '\r') return bad("bare LF in chunked body");
      line_.pop_back();
      return true;
    }
    if (!line_.empty() && line_.back() == '\r') return bad("bare CR in chunked body");
    line_.push_back(c);
    if (line_.size() > 4096) return bad("chunk line too long");
  }
  return false;
}

absl::Status Parser::parse(buffer::Buffer& data) {
  for (;;) {
    switch (state_) {
    case State::Head: {
      if (paused_) return absl::OkStatus();
      // Tolerate empty lines before a request line (RFC 9112 2.2), also when a read ends
      // between the CR and the LF: the CR waits in `data` for its LF.
      while (head_.empty() && !data.empty() && data.peek(0) == '\r') {
        if (data.length() < 2) return absl::OkStatus();
        if (data.peek(1) != '\n') break; // a bare CR: collectBlock rejects it
        data.drain(2);
      }
      if (data.empty()) return absl::OkStatus();
      size_t used = 0;
      if (head_.empty()) {
        // Usually the whole head is in the first slice: parse it where it lies.
        iovec iov;
        data.getReadableSlices(&iov, 1);
        // An error here is left to the collecting path below, which reports the same error
        // however the bytes were cut (a bare LF, say, before a head that is too large).
        if (!parseHead(absl::string_view(static_cast<const char*>(iov.iov_base), iov.iov_len), used)
                 .ok()) {
          used = 0;
        }
      }
      if (used == 0) {
        // Split across reads or slices: collect it, then parse the copy.
        auto done = collectBlock(data);
        if (!done.ok()) return done.status();
        if (!*done) return absl::OkStatus();
        absl::Status st = parseHead(head_, used);
        if (!st.ok()) return st;
        if (used != head_.size()) return bad("malformed head");
        head_.clear();
      } else {
        data.drain(used);
      }
      absl::Status st = emitHead();
      if (!st.ok()) return st;
      break;
    }
    case State::Body: {
      if (data.empty()) return absl::OkStatus();
      size_t n = std::min<uint64_t>(remaining_, data.length());
      buffer::Buffer chunk(&data.pool());
      chunk.move(data, n);
      remaining_ -= n;
      callbacks_.onData(chunk, remaining_ == 0);
      if (remaining_ == 0) {
        absl::Status st = finishMessage();
        if (!st.ok()) return st;
      }
      break;
    }
    case State::ChunkSize: {
      auto done = collectLine(data);
      if (!done.ok()) return done.status();
      if (!*done) return absl::OkStatus();
      absl::string_view line = line_;
      absl::string_view size = line.substr(0, line.find(';'));
      if (size.empty() || size.size() > 15) return bad("bad chunk size");
      uint64_t v = 0;
      for (char c : size) {
        int d = absl::ascii_isdigit(c) ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0) return bad("bad chunk size");
        v = v * 16 + d;
      }
      if (!isFieldValue(line.substr(size.size()))) return bad("bad chunk extension");
      line_.clear();
      if (v == 0) {
        state_ = State::Trailers;
      } else {
        remaining_ = v;
        state_ = State::ChunkData;
      }
      break;
    }
    case State::ChunkData: {
      if (data.empty()) return absl::OkStatus();
      size_t n = std::min<uint64_t>(remaining_, data.length());
      buffer::Buffer chunk(&data.pool());
      chunk.move(data, n);
      remaining_ -= n;
      callbacks_.onData(chunk, false);
      if (remaining_ == 0) state_ = State::ChunkDataEnd;
      break;
    }
    case State::ChunkDataEnd: {
      if (data.length() < 2) {
        if (!data.empty() && data.peek(0) != '\r') return bad("chunk data not followed by CRLF");
        return absl::OkStatus();
      }
      if (data.peek(0) != '\r' || data.peek(1) != '\n') return bad("chunk data not followed by CRLF");
      data.drain(2);
      state_ = State::ChunkSize;
      break;
    }
    case State::Trailers: {
      auto done = collectBlock(data);
      if (!done.ok()) return done.status();
      if (!*done) return absl::OkStatus();
      if (head_ == "\r\n") {
        buffer::Buffer empty(&data.pool());
        callbacks_.onData(empty, true);
      } else {
        absl::Status st = parseTrailers(head_);
        if (!st.ok()) return st;
      }
      absl::Status st = finishMessage();
      if (!st.ok()) return st;
      break;
    }
    case State::Eof:
    case State::Tunnel: {
      if (data.empty()) return absl::OkStatus();
      buffer::Buffer chunk(&data.pool());
      chunk.move(data);
      callbacks_.onData(chunk, false);
      return absl::OkStatus();
    }
    }
  }
}

absl::Status Parser::onEof() {
  if (state_ == State::Eof || state_ == State::Tunnel) {
    buffer::Buffer empty;
    callbacks_.onData(empty, true);
    state_ = State::Head;
    head_.clear();
    callbacks_.onMessageComplete();
    return absl::OkStatus();
  }
  if (state_ == State::Head && head_.empty()) return absl::OkStatus();
  return bad("connection closed mid-message");
}

absl::Status Parser::finishMessage() {
  state_ = State::Head;
  head_.clear();
  line_.clear();
  no_body_ = false;
  callbacks_.onMessageComplete();
  return absl::OkStatus();
}

absl::Status Parser::parseTrailers(absl::string_view block) {
  auto trailers = std::make_unique<http::HeaderMap>();
  block.remove_suffix(2); // final empty line
  for (absl::string_view line : absl::StrSplit(block, "\r\n", absl::SkipEmpty())) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos || !isToken(line.substr(0, colon))) {
      return bad("malformed trailer");
    }
    absl::string_view value = trimOws(line.substr(colon + 1));
    if (!isFieldValue(value)) return bad("bad trailer value");
    absl::string_view name = line.substr(0, colon);
    // Framing fields never travel as trailers.
    if (absl::EqualsIgnoreCase(name, "content-length") ||
        absl::EqualsIgnoreCase(name, "transfer-encoding") || absl::EqualsIgnoreCase(name, "host")) {
      continue;
    }
    trailers->addLowerCasing(name, value);
  }
  callbacks_.onTrailers(std::move(trailers));
  return absl::OkStatus();
}

namespace {

// Reads the CRLF-terminated line at `pos` of `in`: false when `in` holds no LF yet.
// A LF without its CR is how smuggling payloads hide line ends: an error. A CR inside a
// line is caught by the checks on each part (tokens, targets and field values exclude it).
bool nextLine(absl::string_view in, size_t& pos, absl::string_view& line, absl::Status& err) {
  const char* b = in.data() + pos;
  const char* nl = static_cast<const char*>(std::memchr(b, '\n', in.size() - pos));
  if (nl == nullptr) return false;
  if (nl == b || nl[-1] != '\r') {
    err = bad("bare LF");
    return true;
  }
  line = absl::string_view(b, nl - 1 - b);
  pos = nl + 1 - in.data();
  return true;
}

// The Connection tokens the codec acts on, found in one pass over the list.
enum ConnectionToken : uint8_t { kClose = 1, kKeepAlive = 2, kUpgrade = 4, kHttp2Settings = 8 };
uint8_t connectionTokens(absl::string_view list) {
  uint8_t found = 0;
  while (!list.empty()) {
    size_t comma = list.find(',');
    absl::string_view t = list.substr(0, comma);
    list = comma == absl::string_view::npos ? absl::string_view() : list.substr(comma + 1);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    switch (t.size()) {
    case 5: found |= equalsLower(t, "close") ? kClose : 0; break;
    case 7: found |= equalsLower(t, "upgrade") ? kUpgrade : 0; break;
    case 10: found |= equalsLower(t, "keep-alive") ? kKeepAlive : 0; break;
    case 14: found |= equalsLower(t, "http2-settings") ? kHttp2Settings : 0; break;
    }
  }
  return found;
}

bool isDigits(absl::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

} // namespace

absl::Status Parser::parseVersion(absl::string_view v, MessageInfo& info) {
  if (v == "HTTP/1.1") {
    info.protocol = http::Protocol::Http11;
  } else if (v == "HTTP/1.0") {
    info.protocol = http::Protocol::Http10;
    info.keep_alive = false;
  } else if (v.size() == 8 && absl::StartsWith(v, "HTTP/") && absl::ascii_isdigit(v[5]) &&
             v[6] == '.' && absl::ascii_isdigit(v[7])) {
    return absl::InvalidArgumentError("unsupported HTTP version");
  } else {
    return bad("malformed HTTP version");
  }
  return absl::OkStatus();
}

absl::Status Parser::parseStartLine(absl::string_view start, http::HeaderMap& headers,
                                    MessageInfo& info, int& status, bool& has_authority) {
  if (type_ == Type::Response) {
    if (start.size() < 12 || start[8] != ' ') return bad("malformed status line");
    absl::Status st = parseVersion(start.substr(0, 8), info);
    if (!st.ok()) return st;
    absl::string_view code = start.substr(9, 3);
    if (!isDigits(code) || code[0] == '0' || (start.size() > 12 && start[12] != ' ')) {
      return bad("malformed status code");
    }
    if (!isFieldValue(start.substr(12))) return bad("malformed status line");
    status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
    headers.add(":status", code);
    return absl::OkStatus();
  }
  const char* b = start.data();
  const char* e = b + start.size();
  const char* sp1 = static_cast<const char*>(std::memchr(b, ' ', e - b));
  const char* sp2 = sp1 ? static_cast<const char*>(std::memchr(sp1 + 1, ' ', e - sp1 - 1)) : nullptr;
  if (sp2 == nullptr || std::memchr(sp2 + 1, ' ', e - sp2 - 1) != nullptr) {
    return bad("malformed request line");
  }
  absl::string_view method(b, sp1 - b);
  absl::string_view target(sp1 + 1, sp2 - sp1 - 1);
  absl::string_view version(sp2 + 1, e - sp2 - 1);
  if (!isToken(method)) return bad("invalid method");
  if (target.empty()) return bad("empty request target");
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f) return bad("invalid request target");
  }
  absl::Status st = parseVersion(version, info);
  if (!st.ok()) return st;
  headers.add(":method", method);
  info.connect = method == "CONNECT";
  if (info.connect) {
    headers.add(":authority", target);
    has_authority = true;
  } else if (target[0] == '/' || (target == "*" && method == "OPTIONS")) {
    headers.add(":path", target);
  } else if (absl::StartsWithIgnoreCase(target, "http://") ||
             absl::StartsWithIgnoreCase(target, "https://")) {
    // Absolute form (proxies): authority and path come from the URI.
    size_t scheme_end = target.find("://") + 3;
    size_t path_start = target.find_first_of("/?", scheme_end);
    absl::string_view authority = target.substr(scheme_end, path_start - scheme_end);
    // No host, or userinfo ("http://trusted@evil/"): RFC 9110 4.2.4 says treat as an error.
    if (authority.empty() || absl::StrContains(authority, '@')) {
      return bad("invalid request target");
    }
    headers.add(":authority", authority);
    has_authority = true;
    if (path_start == absl::string_view::npos) {
      headers.add(":path", "/");
    } else if (target[path_start] == '?') {
      headers.add(":path", absl::StrCat("/", target.substr(path_start))); // "http://h?q"
    } else {
      headers.add(":path", target.substr(path_start));
    }
  } else {
    return bad("invalid request target");
  }
  headers.add(":scheme", "http");
  return absl::OkStatus();
}

absl::Status Parser::parseHead(absl::string_view in, size_t& consumed) {
  consumed = 0;
  const size_t limit = size_t(limits_.max_headers_kb) * 1024 + 4;
  absl::Status err;
  size_t pos = 0;
  absl::string_view start;
  if (!nextLine(in, pos, start, err)) {
    return in.size() > limit ? absl::ResourceExhaustedError("headers too large") : absl::OkStatus();
  }
  if (!err.ok()) return err;

  auto headers = std::make_unique<http::HeaderMap>();
  MessageInfo info;
  int status = 0;
  bool has_authority = false;
  absl::Status st = parseStartLine(start, *headers, info, status, has_authority);
  if (!st.ok()) return st;

  bool has_cl = false, has_te = false, chunked = false, has_host = false;
  uint64_t content_length = 0;
  bool conn_close = false, conn_keep_alive = false, conn_upgrade = false, has_upgrade = false;
  bool upgrade_h2c = false, conn_http2_settings = false;
  uint32_t http2_settings_count = 0;
  absl::string_view http2_settings;
  uint32_t count = 0;
  // Field lines, scanned in place: the name by the tchar table up to its colon, the value
  // word by word up to the first control byte, which must be the CR of a CRLF. Anything
  // else is an error, or, with no line end yet, an incomplete head.
  const char* const in_end = in.data() + in.size();
  const char* p = in.data() + pos;
  auto incomplete = [&] {
    return in.size() > limit ? absl::ResourceExhaustedError("headers too large") : absl::OkStatus();
  };
  for (;;) {
    if (p >= in_end) return incomplete();
    if (*p == '\r') { // the blank line ends the head
      if (in_end - p < 2) return incomplete();
      if (p[1] != '\n') return bad("bare CR");
      p += 2;
      if (size_t(p - in.data()) > limit) return absl::ResourceExhaustedError("headers too large");
      break;
    }
    if (*p == '\n') return bad("bare LF");
    if (++count > limits_.max_headers_count) return absl::ResourceExhaustedError("too many headers");
    if (*p == ' ' || *p == '\t') return bad("obsolete line folding");
    const char* const name_begin = p;
    // The name, lower-cased as it is read: on the stack unless it is unusually long.
    constexpr size_t kStackName = 128;
    char stack_name[kStackName + 16]; // 16 spare: the vector path stores whole blocks
    {
      char* out = stack_name;
      const char* stop = size_t(in_end - p) > kStackName ? p + kStackName : in_end;
      out = lowerNameRun(p, stop, out);
      char l;
      while (p < stop && (l = kTchar.lower[static_cast<unsigned char>(*p)]) != 0) *out++ = l, p++;
      while (p < in_end && kTchar.ok[static_cast<unsigned char>(*p)]) p++; // a long one
    }
    if (p >= in_end) return incomplete();
    if (*p != ':' || p == name_begin) {
      // A byte no name may hold: an invalid name if a colon follows on this line.
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', in_end - p));
      if (nl == nullptr) return incomplete();
      return std::memchr(p, ':', nl - p) != nullptr || *p == ':' ? bad("invalid header name")
                                                                 : bad("header without colon");
    }
    const size_t name_len = p - name_begin;
    p++; // the colon
    while (p < in_end && (*p == ' ' || *p == '\t')) p++;
    const char* const value_begin = p;
    p = findControl(p, in_end);
    if (p >= in_end) return incomplete();
    if (*p != '\r') return *p == '\n' ? bad("bare LF") : bad("invalid header value");
    if (in_end - p < 2) return incomplete();
    if (p[1] != '\n') return bad("invalid header value");
    const char* value_end = p;
    while (value_end > value_begin && (value_end[-1] == ' ' || value_end[-1] == '\t')) value_end--;
    p += 2;
    if (size_t(p - in.data()) > limit) return absl::ResourceExhaustedError("headers too large");
    std::string long_name;
    const char* lowered = stack_name;
    if (name_len > kStackName) {
      long_name.resize(name_len);
      lowerToken(absl::string_view(name_begin, name_len), long_name.data());
      lowered = long_name.data();
    }
    const absl::string_view name(lowered, name_len);
    const absl::string_view value(value_begin, value_end - value_begin);
    // The fields that decide framing, by length first: most fields are none of them.
    switch (name.size()) {
    case 4:
      if (name == "host") {
        if (has_host) return bad("duplicate host");
        has_host = true;
        if (type_ == Type::Request) {
          // The request target's authority wins over Host (RFC 9112 3.2.2).
          if (!has_authority) headers->add(":authority", value);
          has_authority = true;
          continue;
        }
      }
      break;
    case 6:
      if (name == "expect" && equalsLower(value, "100-continue")) {
        info.expect_continue = true;
        continue;
      }
      break;
    case 7:
      if (name == "upgrade") {
        has_upgrade = true;
        upgrade_h2c = equalsLower(value, "h2c");
      }
      break;
    case 10:
      if (name == "connection") {
        const uint8_t tokens = connectionTokens(value);
        conn_close |= (tokens & kClose) != 0;
        conn_keep_alive |= (tokens & kKeepAlive) != 0;
        conn_upgrade |= (tokens & kUpgrade) != 0;
        conn_http2_settings |= (tokens & kHttp2Settings) != 0;
      }
      break;
    case 14:
      if (name == "content-length") {
        uint64_t v = 0;
        if (value.empty() || value.size() > 18 || !isDigits(value)) {
          return bad("invalid content-length");
        }
        for (char c : value) v = v * 10 + (c - '0');
        if (has_cl && v != content_length) return bad("conflicting content-length");
        if (has_cl) continue; // identical duplicate: keep one
        has_cl = true;
        content_length = v;
      } else if (name == "http2-settings") {
        http2_settings_count++;
        http2_settings = value;
      }
      break;
    case 17:
      if (name == "transfer-encoding") {
        has_te = true;
        for (absl::string_view rest = value;;) {
          size_t comma = rest.find(',');
          absl::string_view c = trimOws(rest.substr(0, comma));
          bool last = comma == absl::string_view::npos;
          if (equalsLower(c, "chunked")) {
            if (!last || chunked) return bad("chunked must be the final transfer coding, once");
            chunked = true;
          } else if (type_ == Type::Request) {
            return absl::UnimplementedError("unsupported transfer coding");
          }
          if (last) break;
          rest.remove_prefix(comma + 1);
        }
        continue; // framing is the codec's business: not forwarded
      }
      break;
    default:
      break;
    }
    headers->add(name, value);
  }
  pos = p - in.data();
  if (has_te && has_cl) return bad("both content-length and transfer-encoding");
  if (has_te && info.protocol == http::Protocol::Http10) return bad("transfer-encoding in HTTP/1.0");
  if (type_ == Type::Request && info.protocol == http::Protocol::Http11 && !has_authority) {
    return bad("missing host header");
  }
  if (conn_close) info.keep_alive = false;
  if (info.protocol == http::Protocol::Http10 && conn_keep_alive && !conn_close) {
    info.keep_alive = true;
  }
  if (type_ == Type::Request && has_upgrade && upgrade_h2c) {
    info.h2c = true;
    info.h2c_upgrade = info.protocol == http::Protocol::Http11 && !info.connect && conn_upgrade &&
                       conn_http2_settings && http2_settings_count == 1 && !chunked &&
                       content_length == 0 && http::decodeHttp2Settings(http2_settings, nullptr);
  } else if (conn_upgrade && has_upgrade && (type_ == Type::Response || (!chunked && content_length == 0))) {
    info.upgrade = true;
  }
  if (type_ == Type::Request && has_upgrade && !info.upgrade && !info.h2c_upgrade) {
    // Not an upgrade (no "Connection: upgrade", or a body): forward it as a plain request.
    // A stray Upgrade field must not make the upstream side treat it as a tunnel and send
    // its body unframed, where it would read as a second request (smuggling).
    headers->remove("upgrade");
  }
  message_keep_alive_ = info.keep_alive;

  // Framing of what follows the head.
  bool end_stream = false;
  if (type_ == Type::Request) {
    if (info.connect || (info.upgrade && !chunked && content_length == 0)) {
      state_ = State::Tunnel; // bytes after the head belong to the tunnel
    } else if (chunked) {
      state_ = State::ChunkSize;
    } else if (content_length > 0) {
      state_ = State::Body;
      remaining_ = content_length;
    } else {
      end_stream = true;
    }
  } else {
    bool informational = status >= 100 && status < 200 && status != 101;
    if (status == 101) {
      info.upgrade = true;
      state_ = State::Tunnel;
    } else if (informational) {
      state_ = State::Head; // the final response follows
    } else if (no_body_ || status == 204 || status == 304) {
      end_stream = true;
    } else if (chunked) {
      state_ = State::ChunkSize;
    } else if (has_cl && content_length == 0) {
      end_stream = true;
    } else if (has_cl) {
      state_ = State::Body;
      remaining_ = content_length;
    } else {
      state_ = State::Eof; // close-delimited (also a non-chunked transfer coding)
      info.keep_alive = false;
    }
  }
  if (end_stream) state_ = State::Head;
  pending_headers_ = std::move(headers);
  pending_info_ = info;
  pending_end_stream_ = end_stream;
  consumed = pos;
  return absl::OkStatus();
}

absl::Status Parser::emitHead() {
  const bool end_stream = pending_end_stream_;
  absl::Status st = callbacks_.onHeaders(std::move(pending_headers_), pending_info_, end_stream);
  if (!st.ok()) return st;
  // A callback that switched to a tunnel (the client codec, on a 2xx to CONNECT) keeps the
  // message open: its data follows, and it completes at onEof().
  if (end_stream && state_ != State::Tunnel) {
    no_body_ = false;
    callbacks_.onMessageComplete();
  }
  return absl::OkStatus();
}

} // namespace http1
} // namespace tern
