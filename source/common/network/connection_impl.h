#pragma once

#include <vector>

#include "absl/container/inlined_vector.h"

#include "source/common/network/connection.h"
#include "source/common/network/transport_socket.h"

namespace tern {
namespace network {

// Lets a terminal filter move bytes between two raw sockets itself (tcp_proxy's
// splice path). While set, readiness goes to the handler instead of the buffers.
class IoBypass {
public:
  virtual ~IoBypass() = default;
  virtual void onBypassReadable() = 0;
  virtual void onBypassWritable() = 0;
};

class ConnectionImpl : public ClientConnection,
                       protected ReadFilterCallbacks,
                       private event::EndOfTurnCallback {
public:
  // `connected` false: a client socket that connect() will start.
  ConnectionImpl(event::Dispatcher& dispatcher, int fd, Address local, Address remote,
                 TransportSocketPtr transport, bool connected);
  ~ConnectionImpl() override;

  // Connection
  uint64_t id() const override { return id_; }
  event::Dispatcher& dispatcher() override { return dispatcher_; }
  void addConnectionCallbacks(ConnectionCallbacks& cb) override { callbacks_.push_back(&cb); }
  void removeConnectionCallbacks(ConnectionCallbacks& cb) override;
  void addReadFilter(ReadFilterSharedPtr filter) override;
  void startDrain() override {
    for (auto& f : read_filters_) f->onDrain();
  }
  void addWriteFilter(WriteFilterSharedPtr filter) override {
    if (!write_filters_) write_filters_ = std::make_unique<std::vector<WriteFilterSharedPtr>>();
    write_filters_->push_back(filter);
  }
  bool initializeReadFilters() override;
  void close(ConnectionCloseType type) override;
  State state() const override { return state_; }
  void readDisable(bool disable) override;
  bool readEnabled() const override { return read_disable_count_ == 0; }
  void write(buffer::Buffer& data, bool end_stream) override;
  void setBufferLimits(uint32_t limit) override { buffer_limit_ = limit; }
  uint32_t bufferLimit() const override { return buffer_limit_; }
  void enableHalfClose(bool enabled) override { half_close_ = enabled; }
  bool aboveHighWatermark() const override { return above_high_; }
  const Address& remoteAddress() const override { return remote_; }
  const Address& localAddress() const override { return local_; }
  void setConnectionStats(const ConnectionStats& stats) override { stats_ = stats; }
  const char* closeReason() const override { return close_reason_ ? close_reason_ : ""; }
  void setCloseReason(const char* reason) override;
  uint64_t bytesBuffered() const override { return read_buffer_.length() + write_buffer_.length(); }

  // ClientConnection
  void connect(std::chrono::milliseconds timeout) override;

  int fd() const { return fd_; }
  bool isRaw() const { return transport().isRaw(); }
  bool connecting() const { return connecting_; }
  // Install (or clear with nullptr) a bypass; only when both buffers are empty.
  void setIoBypass(IoBypass* bypass);
  // For bypass users: watch for writability / readability again.
  void enableWriteEvent(bool enable);
  // For bypass users: the socket hit EOF or an error.
  void closeFromBypass(ConnectionEvent event, const char* reason);
  // For bypass users: the peer's FIN was seen; stop watching for reads.
  void noteReadEndStream();
  void addBytesRx(uint64_t n) { if (stats_.rx_total) stats_.rx_total->add(n); }
  void addBytesTx(uint64_t n) { if (stats_.tx_total) stats_.tx_total->add(n); }

protected:
  // ReadFilterCallbacks
  Connection& connection() override { return *this; }
  void continueReading() override;

private:
  void onFileEvent(uint32_t events);
  void onReadReady();
  void onWriteReady();
  void onConnectFinished();
  void runReadFilters();
  void flushWrite();
  void onEndOfTurn() override; // the batched flush
  void closeSocket(ConnectionEvent event);
  void raiseEvent(ConnectionEvent event);
  void updateFileEvent();
  void checkWatermarks();

  static uint64_t nextId();

  event::Dispatcher& dispatcher_;
  int fd_;
  const uint64_t id_;
  Address local_;
  Address remote_;
  // Null for plain TCP: the stateless RawBufferSocket is shared (32 bytes less per idle
  // connection than one each).
  TransportSocketPtr transport_;
  TransportSocket& transport() const { return transport_ ? *transport_ : RawBufferSocket::shared(); }
  event::FileEventPtr file_event_;
  event::TimerPtr connect_timer_;
  // Inline storage for the usual one or two entries: no allocation per connection.
  absl::InlinedVector<ConnectionCallbacks*, 2> callbacks_;
  absl::InlinedVector<ReadFilterSharedPtr, 1> read_filters_;
  std::unique_ptr<std::vector<WriteFilterSharedPtr>> write_filters_; // rare: not inline
  buffer::Buffer read_buffer_;
  buffer::Buffer write_buffer_;
  ConnectionStats stats_;
  const char* close_reason_{nullptr};
  IoBypass* bypass_{nullptr};
  uint32_t buffer_limit_{1024 * 1024};
  uint16_t read_disable_count_{0};
  uint16_t filter_iter_{0}; // next read filter to run (StopIteration resumes here)
  State state_{State::Open};
  bool connecting_{false};
  bool half_close_{false};
  bool read_end_stream_{false};      // peer's FIN seen
  bool read_end_stream_delivered_{false};
  bool write_end_stream_{false};     // our FIN queued
  bool write_shutdown_{false};       // our FIN sent
  bool above_high_{false};
  bool write_event_wanted_{false};
  bool in_read_filters_{false};
  bool read_filters_initialized_{false};
  bool redeliver_{false};
  bool flush_scheduled_{false};      // an end-of-turn flush is registered
  bool peer_hung_up_{false};         // the last readiness report carried a hang-up            // run the filters on buffered bytes (read re-enabled)
};

} // namespace network
} // namespace tern
