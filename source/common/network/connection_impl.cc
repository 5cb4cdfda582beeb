#include "source/common/network/connection_impl.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "source/common/common/logger.h"

namespace tern {
namespace network {

using event::FileReadyType;

const char* errnoText(int err) {
  const char* s = strerrordesc_np(err);
  return s ? s : "unknown error";
}

uint64_t ConnectionImpl::nextId() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

ConnectionImpl::ConnectionImpl(event::Dispatcher& dispatcher, int fd, Address local,
                               Address remote, TransportSocketPtr transport, bool connected)
    : dispatcher_(dispatcher), fd_(fd), id_(nextId()), local_(local), remote_(remote),
      transport_(std::move(transport)), read_buffer_(&dispatcher.blockPool()),
      write_buffer_(&dispatcher.blockPool()) {
  int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connected) {
    file_event_ = dispatcher_.createFileEvent(
        fd_, [this](uint32_t ev) { onFileEvent(ev); }, FileReadyType::Read);
  }
}

ConnectionImpl::~ConnectionImpl() {
  if (flush_scheduled_) dispatcher_.cancelEndOfTurn(*this);
  if (fd_ >= 0) {
    file_event_.reset();
    ::close(fd_);
    fd_ = -1;
  }
}

void ConnectionImpl::removeConnectionCallbacks(ConnectionCallbacks& cb) {
  callbacks_.erase(std::remove(callbacks_.begin(), callbacks_.end(), &cb), callbacks_.end());
}

void ConnectionImpl::addReadFilter(ReadFilterSharedPtr filter) {
  filter->initializeReadFilterCallbacks(*this);
  read_filters_.push_back(std::move(filter));
  // Added by a filter of a running chain (protocol detection handing the connection on).
  if (read_filters_initialized_) read_filters_.back()->onNewConnection();
}

bool ConnectionImpl::initializeReadFilters() {
  if (read_filters_.empty()) return false;
  read_filters_initialized_ = true;
  for (auto& f : read_filters_) {
    if (f->onNewConnection() == FilterStatus::StopIteration) break;
    if (state_ != State::Open) break;
  }
  return true;
}

void ConnectionImpl::setCloseReason(const char* reason) {
  if (close_reason_ == nullptr) close_reason_ = reason;
}

void ConnectionImpl::connect(std::chrono::milliseconds timeout) {
  connecting_ = true;
  int rc = ::connect(fd_, remote_.sockAddr(), remote_.sockAddrLen());
  int err = rc == 0 ? 0 : errno;
  file_event_ = dispatcher_.createFileEvent(
      fd_, [this](uint32_t ev) { onFileEvent(ev); }, FileReadyType::Write);
  if (rc != 0 && err != EINPROGRESS) {
    // Report the failure from the loop, never from inside the caller's stack.
    setCloseReason(errnoText(err));
    file_event_->activate(FileReadyType::Write);
    return;
  }
  if (timeout.count() > 0) {
    connect_timer_ = dispatcher_.createTimer([this] {
      setCloseReason("connect timeout");
      closeSocket(ConnectionEvent::RemoteClose);
    });
    connect_timer_->enableTimer(timeout);
  }
}

void ConnectionImpl::onConnectFinished() {
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err == 0 && close_reason_ != nullptr) err = ECONNREFUSED; // failed synchronously
  if (err != 0) {
    setCloseReason(errnoText(err));
    closeSocket(ConnectionEvent::RemoteClose);
    return;
  }
  sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) {
    local_ = Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), sl);
  }
  connecting_ = false;
  connect_timer_.reset();
  updateFileEvent();
  raiseEvent(ConnectionEvent::Connected);
  if (state_ == State::Closed) return;
  if (!write_buffer_.empty() || write_end_stream_) flushWrite();
}

void ConnectionImpl::updateFileEvent() {
  if (file_event_ == nullptr) return;
  uint32_t ev = 0;
  if (connecting_ || write_event_wanted_) ev |= FileReadyType::Write;
  if (!connecting_ && read_disable_count_ == 0 && !read_end_stream_ &&
      state_ == State::Open) {
    ev |= FileReadyType::Read;
  }
  file_event_->setEnabled(ev);
}

void ConnectionImpl::onFileEvent(uint32_t events) {
  if (connecting_) {
    if (events & (FileReadyType::Write | FileReadyType::Closed | FileReadyType::Read)) {
      onConnectFinished();
    }
    return;
  }
  if (events & FileReadyType::Write) {
    onWriteReady();
    if (state_ == State::Closed) return;
  }
  if (events & (FileReadyType::Read | FileReadyType::Closed)) {
    peer_hung_up_ = (events & FileReadyType::Closed) != 0;
    if (read_disable_count_ == 0 && !read_end_stream_) onReadReady();
  }
}

void ConnectionImpl::onReadReady() {
  if (bypass_ != nullptr) {
    bypass_->onBypassReadable();
    return;
  }
  while (state_ == State::Open && read_disable_count_ == 0 && !read_end_stream_) {
    // Never buffer beyond the limit: stop reading and let the filters drain first.
    uint64_t room = buffer_limit_ > read_buffer_.length() ? buffer_limit_ - read_buffer_.length()
                                                          : 0;
    if (room == 0) {
      if (!in_read_filters_) runReadFilters();
      if (read_buffer_.length() >= buffer_limit_) {
        // The filters kept everything: wait until continueReading() or readDisable().
        return;
      }
      continue;
    }
    size_t before = read_buffer_.length();
    IoResult r = transport().doRead(fd_, read_buffer_, std::min<uint64_t>(room, 256 * 1024),
                                    !peer_hung_up_);
    if (stats_.rx_total && r.bytes) stats_.rx_total->add(r.bytes);
    if (r.end_stream) read_end_stream_ = true;
    if (r.action == PostIoAction::Close) {
      setCloseReason(errnoText(r.error));
      closeSocket(ConnectionEvent::RemoteClose);
      return;
    }
    if (read_buffer_.length() > before || r.end_stream || redeliver_) {
      redeliver_ = false;
      runReadFilters();
    }
    if (state_ == State::Closed) return;
    if (read_end_stream_) {
      if (!half_close_) {
        setCloseReason("peer closed");
        closeSocket(ConnectionEvent::RemoteClose);
        return;
      }
      updateFileEvent();
      // Both directions done: nothing more can happen on this socket.
      if (write_shutdown_) closeSocket(ConnectionEvent::RemoteClose);
      return;
    }
    if (r.again) return;
  }
}

void ConnectionImpl::runReadFilters() {
  in_read_filters_ = true;
  bool end = read_end_stream_ && !read_end_stream_delivered_;
  if (end) read_end_stream_delivered_ = true;
  for (size_t i = filter_iter_; i < read_filters_.size(); i++) {
    filter_iter_ = i;
    ReadFilterSharedPtr f = read_filters_[i]; // keep alive through the call
    FilterStatus s = f->onData(read_buffer_, end);
    if (state_ == State::Closed || s == FilterStatus::StopIteration) {
      in_read_filters_ = false;
      return;
    }
  }
  filter_iter_ = 0;
  in_read_filters_ = false;
}

void ConnectionImpl::continueReading() {
  if (state_ != State::Open) return;
  filter_iter_++;
  if (filter_iter_ >= read_filters_.size()) {
    filter_iter_ = 0;
    return;
  }
  runReadFilters();
  if (file_event_ && read_disable_count_ == 0) file_event_->activate(FileReadyType::Read);
}

void ConnectionImpl::readDisable(bool disable) {
  if (state_ == State::Closed) return;
  if (disable) {
    read_disable_count_++;
    if (read_disable_count_ == 1) updateFileEvent();
  } else if (read_disable_count_ > 0) {
    read_disable_count_--;
    if (read_disable_count_ == 0) {
      updateFileEvent();
      // Bytes read earlier may wait in the buffer for a filter that was paused: the
      // activation must run the filters even if the socket has nothing new.
      if (!read_buffer_.empty() && file_event_) {
        redeliver_ = true;
        file_event_->activate(FileReadyType::Read);
      }
    }
  }
}

void ConnectionImpl::write(buffer::Buffer& data, bool end_stream) {
  if (state_ != State::Open || write_end_stream_) {
    data.clear();
    return;
  }
  if (write_filters_) {
    for (auto& f : *write_filters_) {
      if (f->onWrite(data, end_stream) == FilterStatus::StopIteration) return;
    }
  }
  write_buffer_.move(data);
  if (end_stream) write_end_stream_ = true;
  if (!connecting_ && !flush_scheduled_) {
    // Written at the end of this loop turn, with whatever else is written by then.
    flush_scheduled_ = true;
    dispatcher_.atEndOfTurn(*this);
    if (state_ == State::Closed) return;
  }
  checkWatermarks();
}

void ConnectionImpl::onEndOfTurn() {
  flush_scheduled_ = false;
  if (state_ == State::Closed || connecting_) return;
  flushWrite();
  if (state_ != State::Closed) checkWatermarks();
}

void ConnectionImpl::checkWatermarks() {
  size_t len = write_buffer_.length();
  if (!above_high_ && len > buffer_limit_) {
    above_high_ = true;
    for (auto* cb : callbacks_) cb->onAboveWriteBufferHighWatermark();
  } else if (above_high_ && len <= buffer_limit_ / 2) {
    above_high_ = false;
    for (auto* cb : callbacks_) cb->onBelowWriteBufferLowWatermark();
  }
}

void ConnectionImpl::flushWrite() {
  if (!write_buffer_.empty()) {
    IoResult r = transport().doWrite(fd_, write_buffer_);
    if (stats_.tx_total && r.bytes) stats_.tx_total->add(r.bytes);
    if (r.action == PostIoAction::Close) {
      setCloseReason(errnoText(r.error));
      closeSocket(ConnectionEvent::RemoteClose);
      return;
    }
  }
  bool want = !write_buffer_.empty();
  if (want != write_event_wanted_) {
    write_event_wanted_ = want;
    updateFileEvent();
  }
  if (write_buffer_.empty()) {
    if (write_end_stream_ && !write_shutdown_) {
      ::shutdown(fd_, SHUT_WR);
      write_shutdown_ = true;
      if (read_end_stream_) {
        closeSocket(ConnectionEvent::LocalClose);
        return;
      }
    }
    if (state_ == State::Closing) {
      closeSocket(ConnectionEvent::LocalClose);
      return;
    }
  }
}

void ConnectionImpl::onWriteReady() {
  if (bypass_ != nullptr) {
    bypass_->onBypassWritable();
    return;
  }
  flushWrite();
  if (state_ != State::Closed) checkWatermarks();
}

void ConnectionImpl::close(ConnectionCloseType type) {
  if (state_ == State::Closed) return;
  if (type == ConnectionCloseType::FlushWrite && !write_buffer_.empty() && !connecting_) {
    if (state_ == State::Closing) return;
    state_ = State::Closing;
    setCloseReason("local close");
    updateFileEvent(); // stop reading; keep writing
    return;
  }
  if (type == ConnectionCloseType::Abort) {
    linger lg{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  setCloseReason("local close");
  closeSocket(ConnectionEvent::LocalClose);
}

void ConnectionImpl::setIoBypass(IoBypass* bypass) { bypass_ = bypass; }

void ConnectionImpl::noteReadEndStream() {
  read_end_stream_ = true;
  updateFileEvent();
}

void ConnectionImpl::enableWriteEvent(bool enable) {
  if (write_event_wanted_ != enable) {
    write_event_wanted_ = enable;
    updateFileEvent();
  }
}

void ConnectionImpl::closeFromBypass(ConnectionEvent event, const char* reason) {
  setCloseReason(reason);
  closeSocket(event);
}

void ConnectionImpl::closeSocket(ConnectionEvent event) {
  if (state_ == State::Closed) return;
  TERN_LOG(Debug, "connection %d (%s) closed: %s", id_, remote_.toString(), closeReason());
  state_ = State::Closed;
  connect_timer_.reset();
  file_event_.reset();
  ::close(fd_);
  fd_ = -1;
  read_buffer_.clear();
  write_buffer_.clear();
  raiseEvent(event);
}

void ConnectionImpl::raiseEvent(ConnectionEvent event) {
  // Callbacks may remove themselves (or others) while we iterate: walk a copy.
  absl::InlinedVector<ConnectionCallbacks*, 2> cbs = callbacks_;
  for (auto* cb : cbs) {
    if (std::find(callbacks_.begin(), callbacks_.end(), cb) == callbacks_.end()) continue;
    cb->onEvent(event);
  }
}

} // namespace network
} // namespace tern
