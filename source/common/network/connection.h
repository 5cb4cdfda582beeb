#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "source/common/buffer/buffer.h"
#include "source/common/event/dispatcher.h"
#include "source/common/network/address.h"
#include "source/common/stats/stats.h"

namespace tern {
namespace network {

enum class ConnectionEvent { RemoteClose, LocalClose, Connected };

enum class ConnectionCloseType {
  FlushWrite, // send what is buffered, then close
  NoFlush,    // close now, dropping buffered bytes
  Abort,      // close now with RST (SO_LINGER 0)
};

class ConnectionCallbacks {
public:
  virtual ~ConnectionCallbacks() = default;
  virtual void onEvent(ConnectionEvent event) = 0;
  // The connection's write buffer went above its high watermark / back below the low one.
  virtual void onAboveWriteBufferHighWatermark() {}
  virtual void onBelowWriteBufferLowWatermark() {}
};

class Connection;

enum class FilterStatus { Continue, StopIteration };

class ReadFilterCallbacks {
public:
  virtual ~ReadFilterCallbacks() = default;
  virtual Connection& connection() = 0;
  // Resume the chain after a filter returned StopIteration.
  virtual void continueReading() = 0;
};

class ReadFilter {
public:
  virtual ~ReadFilter() = default;
  virtual FilterStatus onNewConnection() { return FilterStatus::Continue; }
  // `data` holds everything read and not consumed; a filter drains what it takes.
  virtual FilterStatus onData(buffer::Buffer& data, bool end_stream) = 0;
  virtual void initializeReadFilterCallbacks(ReadFilterCallbacks& callbacks) = 0;
  // The server is shutting down gracefully: finish what is in flight, take nothing new,
  // close when done (HTTP/2 sends GOAWAY). Filters without a protocol-level way ignore it.
  virtual void onDrain() {}
};
using ReadFilterSharedPtr = std::shared_ptr<ReadFilter>;

class WriteFilter {
public:
  virtual ~WriteFilter() = default;
  virtual FilterStatus onWrite(buffer::Buffer& data, bool end_stream) = 0;
};
using WriteFilterSharedPtr = std::shared_ptr<WriteFilter>;

// Stats a connection bumps; owned by its listener or cluster.
struct ConnectionStats {
  stats::Counter* rx_total{nullptr};
  stats::Counter* tx_total{nullptr};
};

// Text for an errno that stays valid forever (close reasons keep a pointer to it).
const char* errnoText(int err);

class Connection : public event::DeferredDeletable {
public:
  enum class State { Open, Closing, Closed };

  virtual uint64_t id() const = 0;
  virtual event::Dispatcher& dispatcher() = 0;
  virtual void addConnectionCallbacks(ConnectionCallbacks& cb) = 0;
  virtual void removeConnectionCallbacks(ConnectionCallbacks& cb) = 0;
  // A filter added once the chain is running (by another filter) gets onNewConnection at
  // once, and the rest of the current read after the filters before it.
  virtual void addReadFilter(ReadFilterSharedPtr filter) = 0;
  // Tells the read filters to drain (see ReadFilter::onDrain).
  virtual void startDrain() {}
  virtual void addWriteFilter(WriteFilterSharedPtr filter) = 0;
  // Calls onNewConnection on each read filter; false when the chain has none.
  virtual bool initializeReadFilters() = 0;

  virtual void close(ConnectionCloseType type) = 0;
  virtual State state() const = 0;
  // Reference-counted: reading resumes when every disable has been undone.
  virtual void readDisable(bool disable) = 0;
  virtual bool readEnabled() const = 0;
  // Moves `data` out to the peer; end_stream half-closes after it.
  virtual void write(buffer::Buffer& data, bool end_stream) = 0;
  // High watermark of both buffers; the low one is half of it.
  virtual void setBufferLimits(uint32_t limit) = 0;
  virtual uint32_t bufferLimit() const = 0;
  // With half-close, a FIN from the peer reaches the filters as end_stream and the
  // connection stays open for writing; without, it closes the connection.
  virtual void enableHalfClose(bool enabled) = 0;
  virtual bool aboveHighWatermark() const = 0;
  virtual const Address& remoteAddress() const = 0;
  virtual const Address& localAddress() const = 0;
  virtual void setConnectionStats(const ConnectionStats& stats) = 0;
  // Why the connection closed, for logs ("connection refused", "idle timeout", ...).
  // Reasons are static strings: a connection keeps only the pointer.
  virtual const char* closeReason() const = 0;
  virtual void setCloseReason(const char* reason) = 0;
  virtual uint64_t bytesBuffered() const = 0;
};
using ConnectionPtr = std::unique_ptr<Connection>;

class ClientConnection : public Connection {
public:
  // Starts the non-blocking connect; Connected or RemoteClose follows. A connect still in
  // progress after `timeout` closes with reason "connect timeout".
  virtual void connect(std::chrono::milliseconds timeout) = 0;
};

} // namespace network
} // namespace tern
