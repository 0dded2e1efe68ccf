// SPDX-License-Identifier: Apache-2.0
// The time an actor reads: its actor system's clock.
#pragma once

#include "mycorrizal/time.hpp"

#include <caf/actor_clock.hpp>
#include <caf/local_actor.hpp>

#include <chrono>
#include <cstdint>

namespace mycorrizal {

/// The current time of `self`'s actor system. Actors read time only here,
/// never `steady_clock` directly: CAF's clock is the steady clock in a
/// normal run and virtual time under `caf::scheduler::test_coordinator`,
/// so an actor and its timers can be driven deterministically in tests.
/// Cores take this value as their `now`.
inline time_point actor_now(const caf::local_actor* self) {
  return std::chrono::time_point_cast<duration>(self->clock().now());
}

/// Wall-clock milliseconds (Unix time) as an actor reads them: the wall
/// clock is read once, when the actor starts, and later times add what the
/// actor clock counted since, so they advance in virtual time in tests.
/// For times that leave the actor (cache expiries, Redis TTLs).
class wall_clock {
public:
  wall_clock() = default;

  /// Anchors the wall clock to `self`'s actor clock now.
  explicit wall_clock(const caf::local_actor* self)
      : base_wall_us_(std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count()),
        base_actor_(actor_now(self)) {
    // nop
  }

  /// Unix microseconds now, by `self`'s actor clock.
  int64_t now_us(const caf::local_actor* self) const {
    auto since = actor_now(self) - base_actor_;
    return base_wall_us_
           + std::chrono::duration_cast<std::chrono::microseconds>(since)
               .count();
  }

  /// Unix milliseconds now, by `self`'s actor clock.
  int64_t now_ms(const caf::local_actor* self) const {
    return now_us(self) / 1000;
  }

private:
  int64_t base_wall_us_ = 0;
  time_point base_actor_{};
};

} // namespace mycorrizal
