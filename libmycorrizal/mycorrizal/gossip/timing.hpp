// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/time.hpp"

#include <cstddef>

/// memberlist's timing formulas (memberlist-wire.md §9.7, §10.1, §10.4),
/// as the code computes them (not as its comments say). `n` is the number
/// of entries in the node table: self, alive, suspect, and dead or left
/// members not yet reaped.
namespace mycorrizal::gossip {

/// The minimum suspicion time:
/// `suspicion_mult * max(1, log10(max(1, n))) * probe_interval`, with the
/// logarithm rounded to 1/1000 as Go does.
duration suspicion_timeout(int suspicion_mult, size_t n,
                           duration probe_interval) noexcept;

/// Time left of a suspicion with `confirmations` of `k` expected:
/// `max - ln(c + 1) / ln(k + 1) * (max - min)`, floored to milliseconds,
/// never below `min`, minus `elapsed`. May be negative (time is up).
duration suspicion_remaining(int confirmations, int k, duration min,
                             duration max, duration elapsed) noexcept;

/// How often a broadcast is sent: `retransmit_mult * ceil(log10(n + 1))`.
int retransmit_limit(int retransmit_mult, size_t n) noexcept;

/// The push/pull interval for `n` members: unchanged up to 32, else
/// `interval * (ceil(log2(n) - log2(32)) + 1)`.
duration push_pull_scale(duration interval, size_t n) noexcept;

/// Lifeguard's local health: an integer score in [0, max - 1] that
/// stretches our own probe interval while we seem to be the slow one.
class awareness {
public:
  explicit awareness(int max_multiplier) noexcept : max_(max_multiplier) {
    // nop
  }

  /// Adds `delta`, clamped to the range.
  void apply_delta(int delta) noexcept {
    score_ += delta;
    if (score_ < 0) {
      score_ = 0;
    } else if (score_ > max_ - 1) {
      score_ = max_ - 1;
    }
  }

  int score() const noexcept {
    return score_;
  }

  /// `d * (score + 1)`.
  duration scale(duration d) const noexcept {
    return d * (score_ + 1);
  }

private:
  int max_;
  int score_ = 0;
};

} // namespace mycorrizal::gossip
