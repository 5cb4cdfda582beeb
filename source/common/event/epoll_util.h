#pragma once

#include <sys/epoll.h>

#include <cstdint>

#include "source/common/event/dispatcher.h"

namespace tern {
namespace event {

// Reserved ids in epoll data: everything at or above kFirstFdId is a FileEvent.
constexpr uint64_t kWakeId = 1;
constexpr uint64_t kTimerId = 2;
constexpr uint64_t kFirstFdId = 16;

inline uint32_t toFileReady(uint32_t epoll_events) {
  uint32_t ev = 0;
  if (epoll_events & (EPOLLIN | EPOLLPRI)) ev |= FileReadyType::Read;
  if (epoll_events & EPOLLOUT) ev |= FileReadyType::Write;
  if (epoll_events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ev |= FileReadyType::Closed;
  // An error or hang-up must reach whoever reads or writes, even if only one is enabled.
  if (epoll_events & (EPOLLHUP | EPOLLERR)) ev |= FileReadyType::Read | FileReadyType::Write;
  return ev;
}

inline uint32_t toEpoll(uint32_t enabled) {
  uint32_t ev = 0;
  if (enabled & FileReadyType::Read) ev |= EPOLLIN | EPOLLRDHUP;
  if (enabled & FileReadyType::Write) ev |= EPOLLOUT;
  return ev;
}

} // namespace event
} // namespace tern
