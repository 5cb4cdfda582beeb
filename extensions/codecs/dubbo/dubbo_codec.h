#pragma once

// Apache Dubbo's protocol: a 16-byte header (magic 0xdabb, flag, status, 64-bit id, body
// length) and a body in the serialization the flag names. Only hessian2 (id 2) bodies are
// read. Byte layouts: shared/design/protocols.md.
//
// Frames, by flag bits (0x80 request, 0x40 two-way, 0x20 event):
//   request, not event        -> Request (two-way) / Oneway
//   request, event, two-way   -> HeartbeatRequest
//   request, event, one-way   -> Oneway (e.g. the provider's "read-only" notice)
//   response                  -> HeartbeatResponse (event) / Response; status = status byte
//
// Headers of a request, read eagerly from the start of its hessian2 body:
//   "dubbo" (framework version, e.g. 2.0.2), "path" and "service" (the service path),
//   "version" (service version), "method".
// The attachments follow the arguments, so they are read only by loadAllHeaders(), which
// steps over the arguments (counted from the parameter-type descriptor) and then adds
// every attachment whose key is a string and whose value is a string, int, long or
// boolean (as text), replacing the eager ones as Dubbo does; "service" becomes the
// "interface" attachment when there is one, and a numeric "timeout" sets timeout_ms.
// "group" exists only there. A request in another serialization, or whose body does not
// read, comes out intact with Frame::error set.
//
// Local replies are responses (serialization hessian2) whose body is the message as a
// hessian2 string, which is what Dubbo's clients read as the error message:
//   NoRoute, NoHealthyUpstream -> 60 SERVICE_NOT_FOUND
//   Overflow                   -> 100 SERVER_THREADPOOL_EXHAUSTED_ERROR
//   Timeout                    -> 31 SERVER_TIMEOUT
//   CodecError                 -> 40 BAD_REQUEST
// Heartbeats are answered as Java's provider does: flag 0x22, status 20, the request's
// id, a null body.

#include <cstdint>

#include "source/common/rpc/codec.h"

namespace tern {
namespace dubbo {

// Status byte values (org.apache.dubbo.remoting.exchange.Response).
enum Status : uint8_t {
  kOk = 20,
  kClientTimeout = 30,
  kServerTimeout = 31,
  kBadRequest = 40,
  kBadResponse = 50,
  kServiceNotFound = 60,
  kServiceError = 70,
  kServerError = 80,
  kClientError = 90,
  kServerThreadpoolExhausted = 100,
};

constexpr uint8_t kSerializationHessian2 = 2;

uint8_t localReplyStatus(rpc::LocalReplyError error);

class DubboCodec : public rpc::Codec {
public:
  explicit DubboCodec(rpc::CodecLimits limits = {}) : limits_(limits) {}

  // rpc::Codec
  absl::string_view name() const override { return "dubbo"; }
  uint64_t maxRequestId() const override { return ~uint64_t(0); }
  rpc::DetectResult detect(const buffer::Buffer& data) const override;
  absl::StatusOr<rpc::FramePtr> decode(buffer::Buffer& in) const override;
  absl::Status loadAllHeaders(rpc::Frame& frame) const override;
  rpc::RouteKeys routeKeys(const rpc::Frame& request) const override;
  bool isSuccess(const rpc::Frame& response) const override { return response.status == kOk; }
  void encodeLocalReply(const rpc::Frame& request, rpc::LocalReplyError error,
                        absl::string_view message, buffer::Buffer& out) const override;
  void encodeHeartbeatResponse(const rpc::Frame& request, buffer::Buffer& out) const override;
  bool encodeGoAway(buffer::Buffer& out) const override;
  absl::Status patchRequestId(buffer::Buffer& frame, uint64_t new_id) const override;

  // Arguments a parameter-type descriptor such as "Ljava/lang/String;[IJ" declares.
  static absl::Status countArguments(absl::string_view descriptor, size_t& count);

private:
  rpc::CodecLimits limits_;
};

} // namespace dubbo
} // namespace tern
