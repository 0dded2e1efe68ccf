// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>

/// Time as the cores see it. Cores never read a clock: every input carries
/// `now`, taken by the owning actor from a monotonic clock or, in tests and
/// simulations, from virtual time.
namespace mycorrizal {

/// A duration with nanosecond resolution.
using duration = std::chrono::nanoseconds;

/// A point in monotonic time (steady_clock's epoch; any origin works).
using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

/// Later than any deadline: "no timer armed".
inline constexpr time_point never = time_point::max();

} // namespace mycorrizal
