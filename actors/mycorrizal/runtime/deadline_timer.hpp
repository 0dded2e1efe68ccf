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
  ///
  /// `horizon` bounds the wait: a later deadline gets a tick at `now +
  /// horizon` that finds nothing due, and the actor arms again. CAF's clock
  /// holds a strong reference to the receiver of a pending tick, so an
  /// actor on a thread of its own (`caf::detached`) keeps that thread
  /// until its last tick fires, even after it ended: the horizon bounds
  /// that.
  template <class Self>
  void arm(Self* self, time_point next, duration horizon = duration::max()) {
    auto now = actor_now(self);
    if (next - now > horizon) {
      next = now + horizon;
    }
    if (next >= armed_) {
      return;
    }
    armed_ = next;
    auto wait = std::max(next - now, duration::zero());
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
