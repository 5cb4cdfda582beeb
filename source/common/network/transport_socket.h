#pragma once

#include <cstdint>
#include <memory>

#include "source/common/buffer/buffer.h"

namespace tern {
namespace network {

enum class PostIoAction { KeepOpen, Close };

struct IoResult {
  PostIoAction action{PostIoAction::KeepOpen};
  uint64_t bytes{0};
  bool end_stream{false}; // peer sent FIN
  bool again{false};      // the socket returned EAGAIN: wait for the next readiness edge
  int error{0};           // errno when action is Close because of an error
};

// Moves bytes between a socket and buffers: raw, or through TLS.
class TransportSocket {
public:
  virtual ~TransportSocket() = default;
  // Reads until EAGAIN, EOF or about `max_bytes`. With `stop_on_short_read`, a read that
  // returns less than it asked for ends the loop (the socket is empty; a new edge comes
  // with the next bytes). Only valid when the readiness report carried no hang-up: a FIN
  // already queued behind the data raises no further edge.
  virtual IoResult doRead(int fd, buffer::Buffer& buf, uint64_t max_bytes,
                          bool stop_on_short_read) = 0;
  // Writes as much of `buf` as the socket takes, draining what was written.
  virtual IoResult doWrite(int fd, buffer::Buffer& buf) = 0;
  // True when bytes on the wire are the application's bytes (splice may bypass us).
  virtual bool isRaw() const = 0;
};
using TransportSocketPtr = std::unique_ptr<TransportSocket>;

// Plain TCP: readv into reserved slices, writev from the slice chain.
class RawBufferSocket : public TransportSocket {
public:
  IoResult doRead(int fd, buffer::Buffer& buf, uint64_t max_bytes,
                  bool stop_on_short_read) override;
  IoResult doWrite(int fd, buffer::Buffer& buf) override;
  bool isRaw() const override { return true; }
  // One instance serves every plain connection (it holds no state).
  static RawBufferSocket& shared() {
    static RawBufferSocket instance;
    return instance;
  }
};

} // namespace network
} // namespace tern
