// SPDX-License-Identifier: Apache-2.0
// Exact virtual time for actor tests under CAF's test coordinator: move the
// clock from one timer to the next, so that every actor reads the time its
// timer was due, not the end of a larger step.
#pragma once

#include "support/actor_system.hpp"

#include <caf/actor_clock.hpp>
#include <caf/detail/test_actor_clock.hpp>

#include <chrono>
#include <string>

namespace mycorrizal::test {

using virtual_time_point = caf::actor_clock::time_point;

/// The virtual clock's time.
inline virtual_time_point virtual_now(actor_system& env) {
  return env.sched().clock().now();
}

/// Moves the virtual clock to `until`, one timer at a time: each timer due
/// by then fires at its own due time, and what it causes runs (then
/// `after_each()`) before the next one. `actor_system::advance` jumps
/// instead: timers due within the step see the time of its end.
template <class F>
void advance_to(actor_system& env, virtual_time_point until, F&& after_each) {
  auto& clock = env.sched().clock();
  env.run();
  after_each();
  for (;;) {
    const auto& pending = clock.schedule();
    if (pending.empty() || pending.begin()->first > until) {
      break;
    }
    // Moves the clock to the earliest timer (if later) and fires it alone.
    env.sched().trigger_timeout();
    env.run();
    after_each();
  }
  if (clock.now() < until) {
    // Nothing is due by `until`: this fires nothing.
    env.sched().advance_time(until - clock.now());
  }
  env.run();
  after_each();
}

inline void advance_to(actor_system& env, virtual_time_point until) {
  advance_to(env, until, [] {});
}

/// `t - t0` as "+1234.567 ms", for failure messages.
inline std::string since(virtual_time_point t0, virtual_time_point t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t - t0);
  auto ms = us.count() / 1000;
  auto frac = us.count() % 1000;
  if (frac < 0) {
    frac = -frac;
  }
  std::string f = std::to_string(frac);
  return (us.count() < 0 ? "-" : "+") + std::to_string(ms < 0 ? -ms : ms) + "."
         + std::string(3 - f.size(), '0') + f + " ms";
}

} // namespace mycorrizal::test
