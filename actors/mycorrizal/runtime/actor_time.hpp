// SPDX-License-Identifier: Apache-2.0
// The time an actor reads: its actor system's clock.
#pragma once

#include "mycorrizal/time.hpp"

#include <caf/actor_clock.hpp>
#include <caf/local_actor.hpp>

#include <chrono>

namespace mycorrizal {

/// The current time of `self`'s actor system. Actors read time only here,
/// never `steady_clock` directly: CAF's clock is the steady clock in a
/// normal run and virtual time under `caf::scheduler::test_coordinator`,
/// so an actor and its timers can be driven deterministically in tests.
/// Cores take this value as their `now`.
inline time_point actor_now(const caf::local_actor* self) {
  return std::chrono::time_point_cast<duration>(self->clock().now());
}

} // namespace mycorrizal
