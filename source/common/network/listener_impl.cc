#include "source/common/network/listener_impl.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "source/common/common/logger.h"

namespace tern {
namespace network {

ListenerImpl::ListenerImpl(event::Dispatcher& dispatcher, int fd, AcceptCb cb)
    : fd_(fd), cb_(std::move(cb)) {
  event_ = dispatcher.createFileEvent(
      fd_, [this](uint32_t) { onReadable(); }, event::FileReadyType::Read);
  backoff_ = dispatcher.createTimer([this] { enable(true); });
}

ListenerImpl::~ListenerImpl() {
  event_.reset();
  close(fd_);
}

void ListenerImpl::enable(bool enabled) {
  event_->setEnabled(enabled ? event::FileReadyType::Read : 0);
}

void ListenerImpl::onReadable() {
  for (;;) {
    sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = accept4(fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        // EMFILE and friends: log and wait for the next readiness; other connections
        // on this shard keep being served.
        TERN_LOG(Warn, "accept on fd %d failed: %s", fd_, strerror(errno));
        enable(false);
        backoff_->enableTimer(std::chrono::milliseconds(100));
      }
      return;
    }
    cb_(fd, Address::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), len));
  }
}

} // namespace network
} // namespace tern
