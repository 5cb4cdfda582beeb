#include "extensions/codecs/bolt/bolt_codec.h"

#include <zlib.h>

#include <algorithm>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_format.h"
#include "source/common/rpc/buffer_util.h"

namespace tern {
namespace bolt {
namespace {

constexpr uint8_t kProtoV1 = 0x01;
constexpr uint8_t kProtoV2 = 0x02;
constexpr uint8_t kTypeResponse = 0;
constexpr uint8_t kTypeRequest = 1;
constexpr uint8_t kTypeOneway = 2;
constexpr uint16_t kCmdHeartbeat = 0;
constexpr uint16_t kCmdRequest = 1;
constexpr uint16_t kCmdResponse = 2;
constexpr uint8_t kCodecHessian2 = 1;
constexpr uint8_t kSwitchCrc = 0x01;
constexpr size_t kMaxFixedHeader = 24;
constexpr size_t kCrcLen = 4;

// The fixed part of a frame.
struct Header {
  uint8_t proto{0};
  uint8_t ver1{0};
  uint8_t type{0};
  uint16_t cmdcode{0};
  uint32_t id{0};
  uint8_t codec{0};
  uint8_t sw{0};
  uint16_t status{0};
  int32_t timeout{0};
  uint16_t class_len{0};
  uint16_t header_len{0};
  uint32_t content_len{0};
  size_t size{0}; // bytes of the fixed header

  bool v2() const { return proto == kProtoV2; }
  bool hasCrc() const { return v2() && ver1 == 2 && (sw & kSwitchCrc) != 0; }
  size_t idOffset() const { return v2() ? 6 : 5; }
  uint64_t frameLength() const {
    return uint64_t(size) + class_len + header_len + content_len + (hasCrc() ? kCrcLen : 0);
  }
  uint32_t codecInfo() const {
    return proto | (uint32_t(ver1) << 8) | (uint32_t(sw) << 16) | (uint32_t(codec) << 24);
  }
};

// Checks the bytes that say a frame is Bolt (proto, ver1, type, cmdcode) as far as the `n`
// bytes at `p` go. Sets `need_more` when they are all fine but do not reach the cmdcode.
absl::Status checkPrefix(const uint8_t* p, size_t n, bool& need_more) {
  need_more = false;
  if (n == 0) {
    need_more = true;
    return absl::OkStatus();
  }
  if (p[0] != kProtoV1 && p[0] != kProtoV2) {
    return absl::InvalidArgumentError(absl::StrFormat("bolt: unknown protocol code 0x%02x", p[0]));
  }
  const bool v2 = p[0] == kProtoV2;
  if (v2 && n >= 2 && p[1] != 1 && p[1] != 2) {
    return absl::InvalidArgumentError(absl::StrFormat("bolt: unknown v2 version %d", p[1]));
  }
  const size_t type_at = v2 ? 2 : 1;
  if (n <= type_at) {
    need_more = true;
    return absl::OkStatus();
  }
  const uint8_t type = p[type_at];
  if (type > kTypeOneway) {
    return absl::InvalidArgumentError(absl::StrFormat("bolt: unknown command type %d", type));
  }
  if (n < type_at + 3) {
    need_more = true;
    return absl::OkStatus();
  }
  const uint16_t cmd = rpc::loadBe16(p + type_at + 1);
  bool ok = false;
  switch (cmd) {
  case kCmdHeartbeat: ok = type != kTypeOneway; break;
  case kCmdRequest: ok = type != kTypeResponse; break;
  case kCmdResponse: ok = type == kTypeResponse; break;
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrFormat("bolt: command code %d does not go with type %d", cmd, type));
  }
  return absl::OkStatus();
}

// Parses the fixed header from the `n` bytes at `p` (the start of `in`).
absl::Status parseHeader(const uint8_t* p, size_t n, Header& h, bool& need_more) {
  absl::Status st = checkPrefix(p, n, need_more);
  if (!st.ok() || need_more) return st;
  h.proto = p[0];
  size_t at = 1;
  if (h.v2()) h.ver1 = p[at++];
  h.type = p[at++];
  h.size = h.v2() ? (h.type == kTypeResponse ? 22 : 24) : (h.type == kTypeResponse ? 20 : 22);
  if (n < h.size) {
    need_more = true;
    return absl::OkStatus();
  }
  h.cmdcode = rpc::loadBe16(p + at);
  at += 2;
  at++; // ver2
  h.id = rpc::loadBe32(p + at);
  at += 4;
  h.codec = p[at++];
  if (h.v2()) h.sw = p[at++];
  if (h.type == kTypeResponse) {
    h.status = rpc::loadBe16(p + at);
    at += 2;
  } else {
    h.timeout = static_cast<int32_t>(rpc::loadBe32(p + at));
    at += 4;
  }
  h.class_len = rpc::loadBe16(p + at);
  h.header_len = rpc::loadBe16(p + at + 2);
  h.content_len = rpc::loadBe32(p + at + 4);
  if (h.content_len > 0x7fffffffu) {
    return absl::InvalidArgumentError("bolt: negative content length");
  }
  return absl::OkStatus();
}

// Reads the header of the frame at the front of `in`.
absl::Status peekHeader(const buffer::Buffer& in, Header& h, bool& need_more) {
  uint8_t p[kMaxFixedHeader];
  const size_t n = std::min(in.length(), kMaxFixedHeader);
  in.copyOut(0, n, p);
  return parseHeader(p, n, h, need_more);
}

// CRC32 (zlib's, as java.util.zip.CRC32) of the first `len` bytes of `b`.
uint32_t crcOf(const buffer::Buffer& b, size_t len) {
  absl::InlinedVector<iovec, 4> iov(b.sliceCount());
  const size_t n = b.getReadableSlices(iov.data(), iov.size());
  uLong crc = crc32(0L, Z_NULL, 0);
  for (size_t i = 0; i < n && len > 0; i++) {
    const size_t k = std::min(len, iov[i].iov_len);
    crc = crc32(crc, static_cast<const Bytef*>(iov[i].iov_base), static_cast<uInt>(k));
    len -= k;
  }
  return static_cast<uint32_t>(crc);
}

// Header map: [u32 keyLen][key][u32 valueLen][value]..., a negative length being null.
absl::Status parseHeaderMap(rpc::ByteCursor& c, http::HeaderMap& headers) {
  std::string key;
  std::string value;
  while (!c.empty()) {
    bool key_null = false;
    bool value_null = false;
    for (int i = 0; i < 2; i++) {
      std::string& s = i == 0 ? key : value;
      bool& null = i == 0 ? key_null : value_null;
      uint32_t len;
      if (!c.readBe32(len)) return absl::InvalidArgumentError("bolt: truncated header map");
      s.clear();
      null = len > 0x7fffffffu;
      if (!null && !c.readAppend(s, len)) {
        return absl::InvalidArgumentError("bolt: header map entry overruns the header map");
      }
    }
    if (!key_null && !value_null) headers.add(key, value);
  }
  return absl::OkStatus();
}

// The same from contiguous bytes (the usual case: a frame rarely spans two blocks), with
// no copy but into the map.
absl::Status parseHeaderMap(const uint8_t* p, size_t n, http::HeaderMap& headers) {
  size_t at = 0;
  while (at < n) {
    absl::string_view kv[2];
    bool null[2];
    for (int i = 0; i < 2; i++) {
      if (n - at < 4) return absl::InvalidArgumentError("bolt: truncated header map");
      const uint32_t len = rpc::loadBe32(p + at);
      at += 4;
      null[i] = len > 0x7fffffffu;
      if (null[i]) continue;
      if (len > n - at) return absl::InvalidArgumentError("bolt: header map entry overruns the header map");
      kv[i] = absl::string_view(reinterpret_cast<const char*>(p + at), len);
      at += len;
    }
    if (!null[0] && !null[1]) headers.add(kv[0], kv[1]);
  }
  return absl::OkStatus();
}

// A little Hessian, enough to find SofaRequest.methodName at the start of a request's
// content: short strings and ints, and the class definition both grammars write ('C'
// in Hessian 2.0 as Java writes it; 'O' with a raw type name in the 2.0 draft that
// sofa-rpc-node's hessian.js writes).
class HessianPeek {
public:
  HessianPeek(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool byte(uint8_t& b) {
    if (at_ >= n_) return false;
    b = p_[at_++];
    return true;
  }
  bool readInt(uint32_t& v) {
    uint8_t t;
    if (!byte(t)) return false;
    if (t >= 0x80 && t <= 0xbf) {
      v = t - 0x90u;
      return t >= 0x90;
    }
    if (t >= 0xc8 && t <= 0xcf) {
      uint8_t b;
      if (!byte(b)) return false;
      v = ((t - 0xc8u) << 8) | b;
      return true;
    }
    if (t == 'I' && n_ - at_ >= 4) {
      v = rpc::loadBe32(p_ + at_);
      at_ += 4;
      return true;
    }
    return false;
  }
  // A string of ASCII characters (all the names here are).
  bool readString(absl::string_view& s) {
    uint8_t t;
    if (!byte(t)) return false;
    size_t len;
    if (t <= 0x1f) {
      len = t;
    } else if (t >= 0x30 && t <= 0x33) {
      uint8_t b;
      if (!byte(b)) return false;
      len = (size_t(t - 0x30) << 8) | b;
    } else if (t == 'S' && n_ - at_ >= 2) {
      len = rpc::loadBe16(p_ + at_);
      at_ += 2;
    } else {
      return false;
    }
    if (n_ - at_ < len) return false;
    s = absl::string_view(reinterpret_cast<const char*>(p_ + at_), len);
    at_ += len;
    return true;
  }
  bool raw(size_t len) {
    if (n_ - at_ < len) return false;
    at_ += len;
    return true;
  }

private:
  const uint8_t* p_;
  size_t n_;
  size_t at_{0};
};

// SofaRequest.methodName from a hessian2 content, when its class definition and the
// object start it and methodName is the first field (as both SOFA clients write it).
bool sofaMethodName(const uint8_t* p, size_t n, absl::string_view& method) {
  HessianPeek h(p, n);
  uint8_t t;
  if (!h.byte(t)) return false;
  uint32_t len;
  absl::string_view type;
  if (t == 'C') {
    if (!h.readString(type)) return false;
  } else if (t == 'O') {
    if (!h.readInt(len) || !h.raw(len)) return false;
  } else {
    return false;
  }
  uint32_t fields;
  absl::string_view first;
  if (!h.readInt(fields) || fields == 0 || !h.readString(first) || first != "methodName") return false;
  for (uint32_t i = 1; i < fields; i++) {
    absl::string_view ignored;
    if (!h.readString(ignored)) return false;
  }
  if (!h.byte(t)) return false;
  if (t == 'O' || t == 'o') {
    if (!h.readInt(len)) return false;
  } else if (t < 0x60 || t > 0x6f) {
    return false;
  }
  return h.readString(method);
}

constexpr char kSofaRequestClass[] = "com.alipay.sofa.rpc.core.request.SofaRequest";
constexpr char kMethodHeader[] = "sofa_head_method_name";
constexpr size_t kMethodPeekBytes = 512;

void appendString(std::string& out, absl::string_view s) {
  uint8_t len[4];
  rpc::storeBe32(len, static_cast<uint32_t>(s.size()));
  out.append(reinterpret_cast<const char*>(len), 4);
  out.append(s.data(), s.size());
}

// A response to the request described by `info` (Frame::codec_info): empty class and
// content, `header_map` as the header.
void writeResponse(uint32_t info, uint16_t cmdcode, uint32_t id, uint16_t status,
                   absl::string_view header_map, buffer::Buffer& out) {
  // A frame this codec did not decode has no info: answer in v1 and hessian2.
  if ((info & 0xff) == 0) info = kProtoV1 | (uint32_t(kCodecHessian2) << 24);
  const uint8_t proto = (info & 0xff) == kProtoV2 ? kProtoV2 : kProtoV1;
  const uint8_t ver1 = static_cast<uint8_t>(info >> 8);
  const uint8_t sw = static_cast<uint8_t>(info >> 16);
  const uint8_t codec = static_cast<uint8_t>(info >> 24);
  uint8_t h[kMaxFixedHeader];
  size_t n = 0;
  h[n++] = proto;
  if (proto == kProtoV2) h[n++] = ver1;
  h[n++] = kTypeResponse;
  rpc::storeBe16(h + n, cmdcode);
  n += 2;
  h[n++] = 1; // ver2
  rpc::storeBe32(h + n, id);
  n += 4;
  h[n++] = codec;
  if (proto == kProtoV2) h[n++] = sw;
  rpc::storeBe16(h + n, status);
  rpc::storeBe16(h + n + 2, 0); // classLen
  rpc::storeBe16(h + n + 4, static_cast<uint16_t>(header_map.size()));
  rpc::storeBe32(h + n + 6, 0); // contentLen
  n += 10;
  out.add(h, n);
  if (!header_map.empty()) out.add(header_map);
  if (proto == kProtoV2 && ver1 == 2 && (sw & kSwitchCrc) != 0) {
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, h, static_cast<uInt>(n));
    if (!header_map.empty()) { // a null pointer would restart the CRC
      crc = crc32(crc, reinterpret_cast<const Bytef*>(header_map.data()),
                  static_cast<uInt>(header_map.size()));
    }
    uint8_t c[kCrcLen];
    rpc::storeBe32(c, static_cast<uint32_t>(crc));
    out.add(c, kCrcLen);
  }
}

// Clients that do not send sofa_head_method_name (sofa-rpc-node) still name the method
// in the first field of their SofaRequest: expose it under that header.
void addMethodFromContent(const Header& h, rpc::Frame& frame) {
  if (h.type == kTypeResponse || h.cmdcode != kCmdRequest || h.codec != kCodecHessian2 ||
      h.content_len == 0 || !frame.error.ok() || frame.headers.get(kMethodHeader) != nullptr ||
      frame.headers.getView(kClassNameHeader) != kSofaRequestClass) {
    return;
  }
  const size_t at = h.size + h.class_len + h.header_len;
  const size_t n = std::min<size_t>(h.content_len, kMethodPeekBytes);
  uint8_t copy[kMethodPeekBytes];
  const uint8_t* p = frame.raw.contiguousAt(at, n);
  if (p == nullptr) {
    frame.raw.copyOut(at, n, copy);
    p = copy;
  }
  absl::string_view method;
  if (sofaMethodName(p, n, method)) frame.headers.add(kMethodHeader, method);
}

} // namespace

rpc::RouteKeys BoltCodec::routeKeys(const rpc::Frame& request) const {
  // SOFARPC's "service" is "interface:version[:uniqueId]".
  rpc::RouteKeys keys;
  const http::HeaderMap& h = request.headers;
  const absl::string_view* service = h.get("service");
  if (service == nullptr) service = h.get("sofa_head_target_service");
  if (service != nullptr) {
    absl::string_view s = *service;
    size_t c1 = s.find(':');
    keys.service = s.substr(0, c1);
    if (c1 != absl::string_view::npos) {
      absl::string_view rest = s.substr(c1 + 1);
      size_t c2 = rest.find(':');
      keys.version = rest.substr(0, c2);
      if (c2 != absl::string_view::npos) keys.group = rest.substr(c2 + 1);
    }
  }
  if (const absl::string_view* m = h.get("sofa_head_method_name")) keys.method = *m;
  return keys;
}

uint16_t localReplyStatus(rpc::LocalReplyError error) {
  switch (error) {
  case rpc::LocalReplyError::NoRoute:
  case rpc::LocalReplyError::NoHealthyUpstream: return kNoProcessor;
  case rpc::LocalReplyError::Overflow: return kServerThreadpoolBusy;
  case rpc::LocalReplyError::Timeout: return kTimeout;
  case rpc::LocalReplyError::CodecError: return kCodecException;
  case rpc::LocalReplyError::UpstreamReset: return kConnectionClosed;
  case rpc::LocalReplyError::Rejected: return kServerException;
  }
  return kUnknown;
}

rpc::DetectResult BoltCodec::detect(const buffer::Buffer& data) const {
  uint8_t p[5];
  const size_t n = std::min<size_t>(data.length(), sizeof(p));
  data.copyOut(0, n, p);
  bool need_more;
  if (!checkPrefix(p, n, need_more).ok()) return rpc::DetectResult::No;
  return need_more ? rpc::DetectResult::NeedMore : rpc::DetectResult::Yes;
}

absl::StatusOr<rpc::FramePtr> BoltCodec::decode(buffer::Buffer& in) const {
  Header h;
  bool need_more;
  absl::Status st = peekHeader(in, h, need_more);
  if (!st.ok()) return st;
  if (need_more) return nullptr;
  const uint64_t total = h.frameLength();
  if (total > limits_.max_frame_bytes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "bolt: frame of %d bytes is over the limit of %d", total, limits_.max_frame_bytes));
  }
  if (in.length() < total) return nullptr;
  if (h.hasCrc()) {
    uint8_t c[kCrcLen];
    in.copyOut(total - kCrcLen, kCrcLen, c);
    if (crcOf(in, total - kCrcLen) != rpc::loadBe32(c)) {
      return absl::DataLossError("bolt: CRC32 mismatch");
    }
  }

  auto frame = std::make_unique<rpc::Frame>(&in.pool());
  frame->raw.move(in, total);
  frame->request_id = h.id;
  frame->codec_info = h.codecInfo();
  if (h.cmdcode == kCmdHeartbeat) {
    frame->kind = h.type == kTypeResponse ? rpc::FrameKind::HeartbeatResponse
                                          : rpc::FrameKind::HeartbeatRequest;
  } else if (h.type == kTypeResponse) {
    frame->kind = rpc::FrameKind::Response;
  } else {
    frame->kind = h.type == kTypeOneway ? rpc::FrameKind::Oneway : rpc::FrameKind::Request;
  }
  if (h.type == kTypeResponse) {
    frame->status = h.status;
  } else if (h.timeout > 0) {
    frame->timeout_ms = static_cast<uint32_t>(h.timeout);
  }

  const size_t names = size_t(h.class_len) + h.header_len;
  if (names == 0) return frame;
  if (const uint8_t* p = frame->raw.contiguousAt(h.size, names)) {
    if (h.class_len > 0) {
      frame->headers.add(kClassNameHeader,
                         absl::string_view(reinterpret_cast<const char*>(p), h.class_len));
    }
    frame->error = parseHeaderMap(p + h.class_len, h.header_len, frame->headers);
    addMethodFromContent(h, *frame);
    return frame;
  }
  rpc::ByteCursor c(frame->raw, h.size, names);
  if (h.class_len > 0) {
    std::string class_name;
    c.readAppend(class_name, h.class_len);
    frame->headers.add(kClassNameHeader, class_name);
  }
  frame->error = parseHeaderMap(c, frame->headers);
  addMethodFromContent(h, *frame);
  return frame;
}

void BoltCodec::encodeLocalReply(const rpc::Frame& request, rpc::LocalReplyError error,
                                 absl::string_view message, buffer::Buffer& out) const {
  std::string header_map;
  if (!message.empty()) {
    // The header length is 16 bits.
    constexpr size_t kRoom = 0xffff - 8 - (sizeof(kErrorHeader) - 1);
    appendString(header_map, kErrorHeader);
    appendString(header_map, message.substr(0, kRoom));
  }
  writeResponse(request.codec_info, kCmdResponse, static_cast<uint32_t>(request.request_id),
                localReplyStatus(error), header_map, out);
}

void BoltCodec::encodeHeartbeatResponse(const rpc::Frame& request, buffer::Buffer& out) const {
  writeResponse(request.codec_info, kCmdHeartbeat, static_cast<uint32_t>(request.request_id),
                kSuccess, {}, out);
}

absl::Status BoltCodec::patchRequestId(buffer::Buffer& frame, uint64_t new_id) const {
  if (new_id > maxRequestId()) {
    return absl::InvalidArgumentError("bolt: request ids are 32 bits");
  }
  Header h;
  bool need_more;
  absl::Status st = peekHeader(frame, h, need_more);
  if (!st.ok()) return st;
  if (need_more || h.frameLength() != frame.length()) {
    return absl::InvalidArgumentError("bolt: not exactly one frame");
  }
  const size_t at = h.idOffset();
  uint8_t id[4];
  rpc::storeBe32(id, static_cast<uint32_t>(new_id));
  if (!h.hasCrc()) {
    rpc::overwrite(frame, {{at, id, 4}});
    return absl::OkStatus();
  }
  // CRC32 is affine, so the new checksum follows from the old one and the change to the
  // id alone: crc(P'||R) = crc(P||R) ^ shift_|R|(crc(P) ^ crc(P')), where P is the frame
  // up to the end of the id and R the rest. No need to read the content again.
  uint8_t prefix[kMaxFixedHeader];
  frame.copyOut(0, at + 4, prefix);
  const uLong old_prefix = crc32(0L, prefix, static_cast<uInt>(at + 4));
  std::copy(id, id + 4, prefix + at);
  const uLong new_prefix = crc32(0L, prefix, static_cast<uInt>(at + 4));
  const size_t crc_at = frame.length() - kCrcLen;
  uint8_t c[kCrcLen];
  frame.copyOut(crc_at, kCrcLen, c);
  const uint32_t crc =
      rpc::loadBe32(c) ^
      static_cast<uint32_t>(crc32_combine(old_prefix ^ new_prefix, 0, crc_at - (at + 4)));
  rpc::storeBe32(c, crc);
  rpc::overwrite(frame, {{at, id, 4}, {crc_at, c, kCrcLen}});
  return absl::OkStatus();
}

} // namespace bolt
} // namespace tern
