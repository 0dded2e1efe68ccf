// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>

/// Waiting on a condition with a deadline, for state that lives in other
/// threads and announces nothing (actor state read by request, reactor
/// counters). The condition is checked at once and then again at growing
/// intervals (0.5 ms doubling up to 20 ms) until it holds or the deadline
/// passes; the test goes on the moment it holds, never after a fixed delay.
namespace mycorrizal::test {

/// Returns whether `pred()` held before `limit` passed.
template <class Pred, class Rep, class Period>
bool eventually(Pred&& pred, std::chrono::duration<Rep, Period> limit) {
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + limit;
  std::chrono::microseconds step{500};
  std::mutex mtx;
  std::condition_variable cv; // nobody notifies: a bounded wait between checks
  std::unique_lock<std::mutex> guard{mtx};
  while (!pred()) {
    auto now = clock::now();
    if (now >= deadline) {
      return pred();
    }
    auto next = std::min(deadline, now + step);
    cv.wait_until(guard, next);
    step = std::min(step * 2, std::chrono::microseconds{20'000});
  }
  return true;
}

} // namespace mycorrizal::test
