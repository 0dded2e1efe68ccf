// SPDX-License-Identifier: Apache-2.0
// Versions of cache writes: a hybrid logical clock.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace mycorrizal::cache {

/// The version of a write. Versions are totally ordered: wall time first,
/// then the counter, then the writer's node id, so two writes never tie
/// unless they are the same write. Last writer wins: of two values of a
/// key, the one with the greater version is kept everywhere.
struct version {
  /// Wall clock of the writer (Unix milliseconds), or later: a hybrid
  /// clock never goes back, also when the wall clock does.
  int64_t wall_ms = 0;
  /// Orders writes within one millisecond, and writes made while the wall
  /// clock lags behind a version already seen.
  uint32_t counter = 0;
  /// `node_id(name)` of the writer.
  uint64_t node = 0;

  // clang-tidy 14 misreads the defaulted <=> (its synthesized comparison
  // with the literal 0) as a null pointer constant.
  // NOLINTNEXTLINE(modernize-use-nullptr)
  friend constexpr auto operator<=>(const version&, const version&) = default;

  /// The zero version: older than every write.
  constexpr bool empty() const noexcept {
    return wall_ms == 0 && counter == 0 && node == 0;
  }
};

/// A node's id in versions: a stable hash of its name.
uint64_t node_id(std::string_view name) noexcept;

/// Renders `v` as `<wall_ms>.<counter>@<node hex>`.
std::string to_string(const version& v);

/// A hybrid logical clock (Kulkarni et al., "Logical Physical Clocks",
/// 2014): versions follow the wall clock when it moves forward, and never
/// go back or repeat when it does not. The caller passes the wall time in
/// (cores read no clock).
class hybrid_clock {
public:
  /// `max_drift_ms`: a version seen from elsewhere that is further ahead of
  /// our wall clock than this is not taken in (`observe` returns false), so
  /// one node with a wrong clock cannot drag every version into the future.
  explicit hybrid_clock(uint64_t node, int64_t max_drift_ms = 60'000) noexcept
      : node_(node), max_drift_ms_(max_drift_ms) {
    // nop
  }

  /// A version for a write made now: greater than every version this clock
  /// made or observed.
  version next(int64_t wall_ms) noexcept;

  /// Takes in `v` (a version received from another node), so that later
  /// `next` versions order after it. Returns false, and changes nothing,
  /// when `v` is more than `max_drift_ms` ahead of `wall_ms`.
  bool observe(const version& v, int64_t wall_ms) noexcept;

  /// The greatest version made or observed.
  version last() const noexcept {
    return {last_ms_, last_counter_, node_};
  }

  uint64_t node() const noexcept {
    return node_;
  }

private:
  uint64_t node_;
  int64_t max_drift_ms_;
  int64_t last_ms_ = 0;
  uint32_t last_counter_ = 0;
};

} // namespace mycorrizal::cache
