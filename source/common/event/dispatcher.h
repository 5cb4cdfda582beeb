#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace tern {
namespace buffer {
class BlockPool;
}
namespace event {

using MonotonicTime = std::chrono::steady_clock::time_point;

enum FileReadyType : uint32_t {
  Read = 0x1,
  Write = 0x2,
  Closed = 0x4, // peer hung up (EPOLLRDHUP / EPOLLHUP)
};

// Readiness callbacks have edge semantics in both IO models: the handler must read or
// write until EAGAIN (or disable the event) before it can count on another callback.
class FileEvent {
public:
  virtual ~FileEvent() = default;
  // Which of Read/Write the owner wants now; the kernel is asked only for these. Enabling
  // an event that is already ready produces a callback (the implementation re-checks, it
  // does not wait for a new edge).
  virtual void setEnabled(uint32_t events) = 0;
  // Schedule a callback with `events` on the next turn, as if the fd had reported them.
  virtual void activate(uint32_t events) = 0;
};
using FileEventPtr = std::unique_ptr<FileEvent>;
using FileReadyCb = std::function<void(uint32_t events)>;

class Timer {
public:
  virtual ~Timer() = default;
  virtual void enableTimer(std::chrono::milliseconds d) = 0;
  virtual void disableTimer() = 0;
  virtual bool enabled() const = 0;
};
using TimerPtr = std::unique_ptr<Timer>;
using TimerCb = std::function<void()>;

// Objects whose destruction must wait until the current callback has unwound.
class DeferredDeletable {
public:
  virtual ~DeferredDeletable() = default;
};
using DeferredDeletablePtr = std::unique_ptr<DeferredDeletable>;

// A shard's serial executor. Everything but post() and exit() is called only by code
// already running on this shard, which the implementation never runs on two threads at
// once; so a shard's objects need no locks.
// Work that waits for the end of the current loop turn, after every ready event has been
// handled: connections flush their writes there, so the responses of many streams handled
// in one turn leave in one writev.
class EndOfTurnCallback {
public:
  virtual ~EndOfTurnCallback() = default;
  virtual void onEndOfTurn() = 0;
};

class Dispatcher {
public:
  virtual ~Dispatcher() = default;

  virtual const std::string& name() const = 0;
  virtual FileEventPtr createFileEvent(int fd, FileReadyCb cb, uint32_t events) = 0;
  virtual TimerPtr createTimer(TimerCb cb) = 0;
  virtual void deferredDelete(DeferredDeletablePtr obj) = 0;
  // Runs `cb` once the current turn's events are handled (at once where there is no loop).
  // The caller registers an object at most once per turn and cancels it if it goes away.
  virtual void atEndOfTurn(EndOfTurnCallback& cb) { cb.onEndOfTurn(); }
  virtual void cancelEndOfTurn(EndOfTurnCallback&) {}
  // Thread-safe: run `cb` on this shard soon.
  virtual void post(std::function<void()> cb) = 0;
  // The time at the start of the current loop turn (as Envoy's approximate monotonic
  // time): request timing and idle bookkeeping read it without a clock call each.
  virtual MonotonicTime now() const = 0;
  virtual std::chrono::system_clock::time_point systemNow() const {
    return std::chrono::system_clock::now();
  }
  virtual buffer::BlockPool& blockPool() = 0;
  // Whether the calling thread is currently running this shard.
  virtual bool isThreadSafe() const = 0;
};

} // namespace event
} // namespace tern
