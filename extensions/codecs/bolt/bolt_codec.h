#pragma once

// SOFARPC's Bolt protocol, v1 (proto 0x01) and v2 (proto 0x02: a ver1 byte after proto, a
// switch byte after codec, and a CRC32 after the content when ver1 is 2 and bit 0 of the
// switch is set). Byte layouts: shared/design/protocols.md.
//
// Frames:
//   type 1 (request) or 2 (one-way) + cmdcode 1 -> Request / Oneway
//   type 0 (response) + cmdcode 2               -> Response (status = respStatus)
//   type 1 + cmdcode 0 / type 0 + cmdcode 0     -> HeartbeatRequest / HeartbeatResponse
// Anything else (another cmdcode, a one-way heartbeat) is a protocol error.
//
// Headers: every pair of the frame's header map, in order, names as sent (SOFARPC sends
// "service", the usual routing key, and Java clients also "sofa_head_method_name",
// "sofa_head_target_service", "sofa_head_target_app", ...); pairs with a null key or value
// are dropped, as the Java decoder does. The class name (e.g.
// "com.alipay.sofa.rpc.core.request.SofaRequest") is the header "classname". The content
// (hessian2 or protobuf) is not decoded, but for one peek: a hessian2 SofaRequest without
// "sofa_head_method_name" (sofa-rpc-node sends none) gets that header from the object's
// first field, methodName. A header map that does not parse leaves the
// frame intact with Frame::error set.
//
// Request ids are 32 bits. Local replies are responses with an empty class and content,
// as MOSN sends them, and the message in the header "tern_error":
//   NoRoute, NoHealthyUpstream -> 0x06 NO_PROCESSOR
//   Overflow                   -> 0x04 SERVER_THREADPOOL_BUSY
//   Timeout                    -> 0x07 TIMEOUT
//   CodecError                 -> 0x09 CODEC_EXCEPTION
// Replies (and heartbeat answers) use the request's protocol version, ver1, switch and
// codec, so a client that asked for CRCs gets them.

#include <cstdint>

#include "source/common/rpc/codec.h"

namespace tern {
namespace bolt {

// respStatus values (sofa-bolt ResponseStatus).
enum ResponseStatus : uint16_t {
  kSuccess = 0x00,
  kError = 0x01,
  kServerException = 0x02,
  kUnknown = 0x03,
  kServerThreadpoolBusy = 0x04,
  kErrorComm = 0x05,
  kNoProcessor = 0x06,
  kTimeout = 0x07,
  kClientSendError = 0x08,
  kCodecException = 0x09,
  kConnectionClosed = 0x10,
  kServerSerialException = 0x11,
  kServerDeserialException = 0x12,
};

uint16_t localReplyStatus(rpc::LocalReplyError error);

// Header names this codec adds.
constexpr char kClassNameHeader[] = "classname";
constexpr char kErrorHeader[] = "tern_error";

class BoltCodec : public rpc::Codec {
public:
  explicit BoltCodec(rpc::CodecLimits limits = {}) : limits_(limits) {}

  // rpc::Codec
  absl::string_view name() const override { return "bolt"; }
  uint64_t maxRequestId() const override { return 0xffffffffu; }
  rpc::DetectResult detect(const buffer::Buffer& data) const override;
  absl::StatusOr<rpc::FramePtr> decode(buffer::Buffer& in) const override;
  rpc::RouteKeys routeKeys(const rpc::Frame& request) const override;
  bool isSuccess(const rpc::Frame& response) const override {
    return response.status == kSuccess;
  }
  void encodeLocalReply(const rpc::Frame& request, rpc::LocalReplyError error,
                        absl::string_view message, buffer::Buffer& out) const override;
  void encodeHeartbeatResponse(const rpc::Frame& request, buffer::Buffer& out) const override;
  absl::Status patchRequestId(buffer::Buffer& frame, uint64_t new_id) const override;

private:
  rpc::CodecLimits limits_;
};

} // namespace bolt
} // namespace tern
