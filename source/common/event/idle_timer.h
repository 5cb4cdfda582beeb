#pragma once

#include <chrono>
#include <functional>

#include "source/common/event/dispatcher.h"

namespace tern {
namespace event {

// Fires `on_idle` once nothing has called touch() for `timeout`. touch() only records the
// time; when the timer comes due early it re-arms for the remainder, so a busy stream or
// connection never touches the timer heap per byte.
class IdleTimer {
public:
  IdleTimer(Dispatcher& dispatcher, std::chrono::milliseconds timeout, std::function<void()> on_idle)
      : timeout_(timeout), on_idle_(std::move(on_idle)),
        timer_(dispatcher.createTimer([this] { onTimer(); })) {
    touch();
    timer_->enableTimer(timeout_);
  }

  void touch() { last_ = std::chrono::steady_clock::now(); }

private:
  void onTimer() {
    auto idle = std::chrono::steady_clock::now() - last_;
    if (idle < timeout_) {
      timer_->enableTimer(std::chrono::duration_cast<std::chrono::milliseconds>(timeout_ - idle) +
                          std::chrono::milliseconds(1));
      return;
    }
    on_idle_();
  }

  const std::chrono::milliseconds timeout_;
  std::function<void()> on_idle_;
  TimerPtr timer_;
  std::chrono::steady_clock::time_point last_;
};

} // namespace event
} // namespace tern
