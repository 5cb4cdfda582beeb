#include "extensions/codecs/dubbo/dubbo_codec.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "extensions/codecs/dubbo/hessian2.h"
#include "source/common/rpc/buffer_util.h"

namespace tern {
namespace dubbo {
namespace {

constexpr size_t kHeaderLen = 16;
constexpr uint8_t kMagicHigh = 0xda;
constexpr uint8_t kMagicLow = 0xbb;
constexpr uint8_t kFlagRequest = 0x80;
constexpr uint8_t kFlagTwoWay = 0x40;
constexpr uint8_t kFlagEvent = 0x20;
constexpr uint8_t kSerializationMask = 0x1f;
constexpr size_t kIdOffset = 4;
constexpr size_t kLengthOffset = 12;

// The fields a request body starts with, up to the parameter-type descriptor.
struct BodyPrefix {
  std::string dubbo_version;
  std::string path;
  std::string version;
  std::string method;
  std::string descriptor;
};

absl::Status readPrefix(hessian2::Reader& r, BodyPrefix& p) {
  absl::Status st = r.readString(p.dubbo_version);
  if (st.ok()) st = r.readString(p.path);
  if (st.ok()) st = r.readString(p.version);
  if (st.ok()) st = r.readString(p.method);
  uint8_t tag;
  if (st.ok() && r.peekTag(tag) && hessian2::Reader::isIntTag(tag)) {
    // Dubbox-style clients (dubbo2.js with isSupportedDubbox) put an int here.
    int64_t ignored;
    st = r.readLong(ignored);
  }
  if (st.ok()) st = r.readString(p.descriptor);
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("dubbo: request body: ", st.message()));
  }
  return st;
}

// Checks that `frame` is exactly one frame; returns its body length.
absl::Status checkWholeFrame(const buffer::Buffer& frame, size_t& body) {
  uint8_t h[kHeaderLen];
  if (frame.length() < kHeaderLen) return absl::InvalidArgumentError("dubbo: not a whole frame");
  frame.copyOut(0, kHeaderLen, h);
  body = rpc::loadBe32(h + kLengthOffset);
  if (h[0] != kMagicHigh || h[1] != kMagicLow || frame.length() != kHeaderLen + body) {
    return absl::InvalidArgumentError("dubbo: not exactly one frame");
  }
  return absl::OkStatus();
}

void writeHeader(uint8_t flag, uint8_t status, uint64_t id, size_t body, buffer::Buffer& out) {
  uint8_t h[kHeaderLen];
  h[0] = kMagicHigh;
  h[1] = kMagicLow;
  h[2] = flag;
  h[3] = status;
  rpc::storeBe64(h + kIdOffset, id);
  rpc::storeBe32(h + kLengthOffset, static_cast<uint32_t>(body));
  out.add(h, kHeaderLen);
}

} // namespace

uint8_t localReplyStatus(rpc::LocalReplyError error) {
  switch (error) {
  case rpc::LocalReplyError::NoRoute:
  case rpc::LocalReplyError::NoHealthyUpstream: return kServiceNotFound;
  case rpc::LocalReplyError::Overflow: return kServerThreadpoolExhausted;
  case rpc::LocalReplyError::Timeout: return kServerTimeout;
  case rpc::LocalReplyError::CodecError: return kBadRequest;
  case rpc::LocalReplyError::UpstreamReset: return kServerError;
  case rpc::LocalReplyError::Rejected: return kServiceError;
  }
  return kServerError;
}

absl::Status DubboCodec::countArguments(absl::string_view d, size_t& count) {
  count = 0;
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("dubbo: bad parameter type descriptor \"", absl::CEscape(d), "\""));
  };
  size_t i = 0;
  while (i < d.size()) {
    while (i < d.size() && d[i] == '[') i++; // array dimensions
    if (i == d.size()) return bad();
    if (d[i] == 'L') {
      const size_t end = d.find(';', i);
      if (end == absl::string_view::npos) return bad();
      i = end + 1;
    } else if (absl::string_view("VZBCDFIJS").find(d[i]) != absl::string_view::npos) {
      i++;
    } else {
      return bad();
    }
    count++;
  }
  return absl::OkStatus();
}

rpc::DetectResult DubboCodec::detect(const buffer::Buffer& data) const {
  if (data.empty()) return rpc::DetectResult::NeedMore;
  if (data.peek(0) != kMagicHigh) return rpc::DetectResult::No;
  if (data.length() < 2) return rpc::DetectResult::NeedMore;
  return data.peek(1) == kMagicLow ? rpc::DetectResult::Yes : rpc::DetectResult::No;
}

absl::StatusOr<rpc::FramePtr> DubboCodec::decode(buffer::Buffer& in) const {
  uint8_t h[kHeaderLen];
  const size_t n = std::min(in.length(), kHeaderLen);
  if (n == 0) return nullptr;
  in.copyOut(0, n, h);
  // Name the first wrong byte, so the error is the same however the bytes arrive.
  if (h[0] != kMagicHigh) {
    return absl::InvalidArgumentError(absl::StrFormat("dubbo: bad magic byte 0x%02x", h[0]));
  }
  if (n >= 2 && h[1] != kMagicLow) {
    return absl::InvalidArgumentError(absl::StrFormat("dubbo: bad magic 0xda%02x", h[1]));
  }
  if (n < kHeaderLen) return nullptr;
  const uint32_t body = rpc::loadBe32(h + kLengthOffset);
  if (body > 0x7fffffffu) return absl::InvalidArgumentError("dubbo: negative body length");
  const uint64_t total = kHeaderLen + uint64_t(body);
  if (total > limits_.max_frame_bytes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "dubbo: frame of %d bytes is over the limit of %d", total, limits_.max_frame_bytes));
  }
  if (in.length() < total) return nullptr;

  auto frame = std::make_unique<rpc::Frame>(&in.pool());
  frame->raw.move(in, total);
  const uint8_t flag = h[2];
  frame->codec_info = flag;
  frame->request_id = rpc::loadBe64(h + kIdOffset);
  const bool two_way = (flag & kFlagTwoWay) != 0;
  const bool event = (flag & kFlagEvent) != 0;
  if ((flag & kFlagRequest) == 0) {
    frame->kind = event ? rpc::FrameKind::HeartbeatResponse : rpc::FrameKind::Response;
    frame->status = h[3];
    return frame;
  }
  if (event) {
    frame->kind = two_way ? rpc::FrameKind::HeartbeatRequest : rpc::FrameKind::Oneway;
    return frame;
  }
  frame->kind = two_way ? rpc::FrameKind::Request : rpc::FrameKind::Oneway;
  const uint8_t serialization = flag & kSerializationMask;
  if (serialization != kSerializationHessian2) {
    frame->error = absl::InvalidArgumentError(absl::StrFormat(
        "dubbo: serialization %d is not supported (only hessian2, 2)", serialization));
    return frame;
  }
  rpc::ByteCursor c(frame->raw, kHeaderLen, body);
  hessian2::Reader r(c);
  BodyPrefix p;
  frame->error = readPrefix(r, p);
  if (frame->error.ok()) {
    http::HeaderMap& hm = frame->headers;
    hm.add("dubbo", p.dubbo_version);
    hm.add("path", p.path);
    hm.add("service", p.path);
    hm.add("version", p.version);
    hm.add("method", p.method);
    frame->headers_complete = false;
  }
  return frame;
}

absl::Status DubboCodec::loadAllHeaders(rpc::Frame& frame) const {
  if (!frame.error.ok()) return frame.error;
  if (frame.headers_complete) return absl::OkStatus();
  size_t body;
  absl::Status st = checkWholeFrame(frame.raw, body);
  if (!st.ok()) return absl::FailedPreconditionError("dubbo: the frame's bytes are gone");
  rpc::ByteCursor c(frame.raw, kHeaderLen, body);
  hessian2::Reader r(c);
  BodyPrefix p;
  st = readPrefix(r, p);
  size_t args = 0;
  if (st.ok()) st = countArguments(p.descriptor, args);
  if (!st.ok()) return st;
  for (size_t i = 0; st.ok() && i < args; i++) st = r.skipValue();
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("dubbo: request arguments: ", st.message()));
  }
  std::vector<std::pair<std::string, std::string>> attachments;
  bool null = true;
  if (st.ok() && !r.atEnd()) st = r.readMapStart(null);
  while (st.ok() && !null && !r.atContainerEnd()) {
    if (r.atEnd()) {
      st = absl::InvalidArgumentError("hessian2: truncated value");
      break;
    }
    std::string key;
    std::string value;
    bool key_ok = false;
    bool value_ok = false;
    uint8_t tag;
    if (r.peekTag(tag) && hessian2::Reader::isStringTag(tag)) {
      st = r.readScalar(key, key_ok);
    } else {
      st = r.skipValue();
    }
    if (st.ok()) st = r.readScalar(value, value_ok);
    if (st.ok() && key_ok && value_ok) attachments.emplace_back(std::move(key), std::move(value));
  }
  if (!st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("dubbo: request attachments: ", st.message()));
  }
  http::HeaderMap& hm = frame.headers;
  for (const auto& [k, v] : attachments) {
    hm.set(k, v);
    if (k == "interface") hm.set("service", v);
    uint32_t timeout;
    if (k == "timeout" && absl::SimpleAtoi(v, &timeout)) frame.timeout_ms = timeout;
  }
  frame.headers_complete = true;
  return absl::OkStatus();
}

void DubboCodec::encodeLocalReply(const rpc::Frame& request, rpc::LocalReplyError error,
                                  absl::string_view message, buffer::Buffer& out) const {
  std::string body;
  hessian2::writeString(
      message.empty() ? absl::StrCat("tern: ", rpc::localReplyErrorName(error)) : message, body);
  writeHeader(kSerializationHessian2, localReplyStatus(error), request.request_id, body.size(),
              out);
  out.add(body);
}

void DubboCodec::encodeHeartbeatResponse(const rpc::Frame& request, buffer::Buffer& out) const {
  writeHeader(kFlagEvent | kSerializationHessian2, kOk, request.request_id, 1, out);
  out.add("N", 1); // hessian2 null
}

rpc::RouteKeys DubboCodec::routeKeys(const rpc::Frame& request) const {
  rpc::RouteKeys keys;
  const http::HeaderMap& h = request.headers;
  if (const absl::string_view* v = h.get("service")) keys.service = *v;
  if (const absl::string_view* v = h.get("method")) keys.method = *v;
  if (const absl::string_view* v = h.get("version")) keys.version = *v;
  if (const absl::string_view* v = h.get("group")) keys.group = *v;
  return keys;
}

bool DubboCodec::encodeGoAway(buffer::Buffer& out) const {
  // Dubbo's READONLY_EVENT: a one-way event request whose data is the string "R". A
  // consumer that gets it stops choosing this provider connection for new calls.
  std::string body;
  hessian2::writeString("R", body);
  writeHeader(kFlagRequest | kFlagEvent | kSerializationHessian2, 0, 0, body.size(), out);
  out.add(body);
  return true;
}

absl::Status DubboCodec::patchRequestId(buffer::Buffer& frame, uint64_t new_id) const {
  size_t body;
  absl::Status st = checkWholeFrame(frame, body);
  if (!st.ok()) return st;
  uint8_t id[8];
  rpc::storeBe64(id, new_id);
  rpc::overwrite(frame, {{kIdOffset, id, sizeof(id)}});
  return absl::OkStatus();
}

} // namespace dubbo
} // namespace tern
