// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/timing.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace mycorrizal::gossip {

duration suspicion_timeout(int suspicion_mult, size_t n,
                           duration probe_interval) noexcept {
  // Go: nodeScale := math.Max(1.0, math.Log10(math.Max(1.0, float64(n))))
  // and then `time.Duration(mult) * time.Duration(nodeScale*1000) * interval
  // / 1000`, i.e. the scale is truncated to 1/1000.
  auto scale = std::max(1.0, std::log10(std::max(1.0, static_cast<double>(n))));
  auto milli = static_cast<int64_t>(scale * 1000);
  return probe_interval * suspicion_mult * milli / 1000;
}

duration suspicion_remaining(int confirmations, int k, duration min,
                             duration max, duration elapsed) noexcept {
  using std::chrono::milliseconds;
  duration timeout = max;
  if (k > 0) {
    auto frac = std::log(static_cast<double>(confirmations) + 1.0)
                / std::log(static_cast<double>(k) + 1.0);
    auto raw = static_cast<double>(max.count())
               - frac * static_cast<double>((max - min).count());
    // Floor to whole milliseconds as Go does.
    auto ms = static_cast<int64_t>(std::floor(raw / 1e6));
    timeout = std::chrono::duration_cast<duration>(milliseconds{ms});
    timeout = std::max(timeout, min);
  } else {
    timeout = min;
  }
  return timeout - elapsed;
}

int retransmit_limit(int retransmit_mult, size_t n) noexcept {
  auto scale = std::ceil(std::log10(static_cast<double>(n) + 1.0));
  return retransmit_mult * static_cast<int>(scale);
}

duration push_pull_scale(duration interval, size_t n) noexcept {
  constexpr size_t threshold = 32;
  if (n <= threshold) {
    return interval;
  }
  auto mult = std::ceil(std::log2(static_cast<double>(n))
                        - std::log2(static_cast<double>(threshold)))
              + 1.0;
  return interval * static_cast<int64_t>(mult);
}

} // namespace mycorrizal::gossip
