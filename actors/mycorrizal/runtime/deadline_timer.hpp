// SPDX-License-Identifier: Apache-2.0
// One pending tick per actor for a pure core's next deadline.
#pragma once

#include "mycorrizal/runtime/actor_time.hpp"
#include "mycorrizal/time.hpp"
#include "mycorrizal/type_ids.hpp"

#include <algorithm>
#include <cstdint>

namespace mycorrizal {

/// The timer of an actor that drives a pure core (`next_deadline()`):
/// after each event the actor calls `arm` with the core's next deadline;
/// a `(tick_atom, int64_t)` message arrives at the deadline, and `fire`
/// says whether it is the one still wanted. At most one tick is pending
/// per deadline the core moved forward to; a tick that an earlier deadline
/// superseded is recognized by its stamp and ignored.
class deadline_timer {
public:
  /// Schedules a tick for `next` unless one for an earlier (or the same)
  /// time is pending. `self` must take `(tick_atom, int64_t)`.
  template <class Self>
  void arm(Self* self, time_point next) {
    if (next >= armed_) {
      return;
    }
    armed_ = next;
    auto wait = std::max(next - actor_now(self), duration::zero());
    self->delayed_send(self, wait, tick_atom::value,
                       static_cast<int64_t>(next.time_since_epoch().count()));
  }

  /// A tick with stamp `armed_ns` arrived. Returns whether it is the
  /// pending one (the timer is then free again) rather than a superseded
  /// one.
  bool fire(int64_t armed_ns) noexcept {
    if (armed_ns != armed_.time_since_epoch().count()) {
      return false;
    }
    armed_ = never;
    return true;
  }

private:
  /// The deadline the pending tick serves (never: none pending).
  time_point armed_ = never;
};

} // namespace mycorrizal
