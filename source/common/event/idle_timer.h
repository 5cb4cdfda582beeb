#pragma once

#include <chrono>
#include <functional>

#include "source/common/event/dispatcher.h"

namespace tern {
namespace event {

// For a timer armed `timeout` after the last activity at `since` and left armed while busy:
// when it comes due early (activity since it was armed), arms it for the remainder and
// returns true; false when the whole timeout has passed. Shared by IdleTimer and the lazily
// re-armed idle timers of connections and pools.
inline bool rearmIfNotIdleYet(Timer& timer, MonotonicTime now, MonotonicTime since,
                              std::chrono::milliseconds timeout) {
  auto idle = now - since;
  if (idle >= timeout) return false;
  timer.enableTimer(std::chrono::duration_cast<std::chrono::milliseconds>(timeout - idle) +
                    std::chrono::milliseconds(1));
  return true;
}

// Fires `on_idle` once nothing has called touch() for `timeout`. touch() only records the
// time; when the timer comes due early it re-arms for the remainder, so a busy stream or
// connection never touches the timer heap per byte.
class IdleTimer {
public:
  IdleTimer(Dispatcher& dispatcher, std::chrono::milliseconds timeout, std::function<void()> on_idle)
      : dispatcher_(dispatcher), timeout_(timeout), on_idle_(std::move(on_idle)),
        timer_(dispatcher.createTimer([this] { onTimer(); })) {
    touch();
    timer_->enableTimer(timeout_);
  }

  void touch() { last_ = dispatcher_.now(); }

private:
  void onTimer() {
    if (rearmIfNotIdleYet(*timer_, dispatcher_.now(), last_, timeout_)) return;
    on_idle_();
  }

  Dispatcher& dispatcher_;
  const std::chrono::milliseconds timeout_;
  std::function<void()> on_idle_;
  TimerPtr timer_;
  MonotonicTime last_;
};

} // namespace event
} // namespace tern
