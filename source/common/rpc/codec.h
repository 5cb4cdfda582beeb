#pragma once

// The protocol layer for frame-based RPC (MOSN calls it x-protocol): every message is one
// self-delimiting frame with a request id, so a proxy can route a request by a few header
// fields and forward its bytes unchanged, rewriting only the id when it multiplexes many
// downstream requests onto one upstream connection.
//
// A codec is stateless and its methods are const: one instance serves every connection
// of a listener or cluster, on any shard.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "source/common/buffer/buffer.h"
#include "source/common/http/header_map.h"

namespace tern {
namespace rpc {

enum class FrameKind : uint8_t {
  Request,           // expects a response carrying the same id
  Oneway,            // expects no response
  Response,
  HeartbeatRequest,  // answered with Codec::encodeHeartbeatResponse, never routed
  HeartbeatResponse,
};
const char* frameKindName(FrameKind kind);

// Why the proxy answers a request itself. Each codec maps these to its protocol's status.
enum class LocalReplyError : uint8_t {
  NoRoute,           // no route matched the request's headers
  NoHealthyUpstream, // the route's cluster has no host to send it to
  Timeout,           // the upstream did not answer in time
  Overflow,          // a circuit breaker or pending queue is full
  CodecError,        // the request could not be read (Frame::error is set)
  UpstreamReset,     // the upstream connection failed or closed with the request in flight
  Rejected,          // a stream filter refused the request (RBAC, rate limit, ...)
};
const char* localReplyErrorName(LocalReplyError error);

enum class DetectResult : uint8_t { NeedMore, Yes, No };

// What routes match on, with the same meaning in every protocol (see RouteMatch in
// api/tern/filters/network/rpc_proxy/v1/rpc_proxy.proto). Views into the frame's headers;
// empty when the frame has no such field.
struct RouteKeys {
  absl::string_view service;
  absl::string_view method;
  absl::string_view version;
  absl::string_view group;
};

// One decoded frame.
struct Frame {
  explicit Frame(buffer::BlockPool* pool = nullptr) : raw(pool) {}

  bool isRequest() const {
    return kind == FrameKind::Request || kind == FrameKind::Oneway ||
           kind == FrameKind::HeartbeatRequest;
  }

  FrameKind kind{FrameKind::Request};
  // 32 bits in Bolt, 64 in Dubbo (Codec::maxRequestId).
  uint64_t request_id{0};
  // Responses: the protocol's own status code (Bolt respStatus, Dubbo status byte).
  uint32_t status{0};
  // Requests: the caller's timeout when the frame carries one, else 0.
  uint32_t timeout_ms{0};
  // Opaque to all but the codec that made the frame: what it needs to answer it
  // (protocol version, flags) after `raw` has been forwarded.
  uint32_t codec_info{0};
  // False while the codec knows more headers than it has read (Dubbo attachments sit
  // behind the arguments): Codec::loadAllHeaders reads them, from `raw`.
  bool headers_complete{true};
  // Set when the frame is intact (its bytes were consumed, its id and kind are known)
  // but its contents could not be read, e.g. a Dubbo request in a serialization other
  // than hessian2. The connection stays usable: answer a request with
  // encodeLocalReply(frame, LocalReplyError::CodecError, ...).
  absl::Status error;
  // Routing headers. Names are matched exactly (they are not lower-cased): Bolt's are its
  // header map as sent plus "classname"; Dubbo's are fields of the request body and, once
  // loaded, its attachments. See each codec's header for the list.
  http::HeaderMap headers;
  // The whole frame as received, for forwarding unchanged.
  buffer::Buffer raw;
};
using FramePtr = std::unique_ptr<Frame>;

// One line for logs and tests: kind, id, status, timeout, headers, size, error.
std::string describe(const Frame& frame);

struct CodecLimits {
  // Largest frame accepted, header included. A larger one is refused as soon as its
  // header arrives, before its bytes are buffered.
  size_t max_frame_bytes{8 * 1024 * 1024};
};

class Codec {
public:
  virtual ~Codec() = default;

  virtual absl::string_view name() const = 0;
  // Largest request id the protocol carries.
  virtual uint64_t maxRequestId() const = 0;

  // Whether a connection's first bytes are this protocol. NeedMore until enough bytes
  // are in to tell; a frame decode() accepts is always Yes.
  virtual DetectResult detect(const buffer::Buffer& data) const = 0;

  // Takes one whole frame off the front of `in`. Returns nullptr (and leaves `in` alone)
  // until the whole frame is there; call again when more bytes arrive, and again after a
  // frame, since `in` may hold several. An error means the stream cannot be read any
  // further (bad magic, impossible lengths, a frame over the limit, a CRC mismatch): close
  // the connection. Errors use InvalidArgument, ResourceExhausted (too large) and
  // DataLoss (checksum).
  virtual absl::StatusOr<FramePtr> decode(buffer::Buffer& in) const = 0;

  // Reads the headers decode() left for later (headers_complete false), from frame.raw,
  // so call it before raw is forwarded. Reading them costs a walk over the request's
  // arguments, which routing on the eager headers avoids.
  virtual absl::Status loadAllHeaders(Frame& frame) const {
    (void)frame;
    return absl::OkStatus();
  }

  // The frame's routing keys (call after loadAllHeaders when a route needs the group).
  virtual RouteKeys routeKeys(const Frame& request) const = 0;

  // Whether a response reports success in its protocol.
  virtual bool isSuccess(const Frame& response) const = 0;

  // Appends to `out` the protocol's error response to `request`, with the status code for
  // `error` and, where the protocol has room for one, `message`.
  virtual void encodeLocalReply(const Frame& request, LocalReplyError error,
                                absl::string_view message, buffer::Buffer& out) const = 0;
  // Appends to `out` the answer to a HeartbeatRequest.
  virtual void encodeHeartbeatResponse(const Frame& request, buffer::Buffer& out) const = 0;

  // Appends to `out` what tells a client to stop sending on this connection (Dubbo's
  // read-only event) and returns true; false when the protocol has no such frame.
  virtual bool encodeGoAway(buffer::Buffer& out) const {
    (void)out;
    return false;
  }

  // Rewrites the request id of the one whole frame in `frame` (as decode() produced it in
  // Frame::raw) without re-encoding it; a checksum covering the id is updated too.
  // InvalidArgument when `frame` is not exactly one frame or the id does not fit.
  virtual absl::Status patchRequestId(buffer::Buffer& frame, uint64_t new_id) const = 0;
};
using CodecPtr = std::unique_ptr<Codec>;

// A codec extension, registered under its protocol's name ("bolt", "dubbo") in
// config::Registry<CodecFactory>.
class CodecFactory {
public:
  virtual ~CodecFactory() = default;
  virtual std::string name() const = 0;
  // The registry's second key; codecs take no config message, so it is "tern.codecs.<name>".
  virtual std::string configType() const { return "tern.codecs." + name(); }
  virtual CodecPtr create(const CodecLimits& limits) const = 0;
};

} // namespace rpc
} // namespace tern
