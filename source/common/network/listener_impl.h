#pragma once

#include <functional>

#include "source/common/event/dispatcher.h"
#include "source/common/network/address.h"

namespace tern {
namespace network {

// Accepts on one listen socket (owned) until EAGAIN each time it is readable.
class ListenerImpl {
public:
  using AcceptCb = std::function<void(int fd, const Address& remote)>;
  ListenerImpl(event::Dispatcher& dispatcher, int fd, AcceptCb cb);
  ~ListenerImpl();

  // Stop or resume accepting (the socket stays bound, connections queue in the backlog).
  void enable(bool enabled);
  int fd() const { return fd_; }

private:
  void onReadable();

  int fd_;
  AcceptCb cb_;
  event::FileEventPtr event_;
  // Out of fds: pause accepting briefly instead of spinning on a queue we cannot drain.
  event::TimerPtr backoff_;
};

} // namespace network
} // namespace tern
