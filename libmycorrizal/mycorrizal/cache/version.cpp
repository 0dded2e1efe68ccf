// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cache/version.hpp"

#include "mycorrizal/cache/hash.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace mycorrizal::cache {

uint64_t node_id(std::string_view name) noexcept {
  // Never 0: the zero version stays "no version".
  auto h = hash64(name, 0x6d7963656c);
  return h == 0 ? 1 : h;
}

std::string to_string(const version& v) {
  return fmt::format("{}.{}@{:016x}", v.wall_ms, v.counter, v.node);
}

version hybrid_clock::next(int64_t wall_ms) noexcept {
  if (wall_ms > last_ms_) {
    last_ms_ = wall_ms;
    last_counter_ = 0;
  } else {
    ++last_counter_;
  }
  return last();
}

bool hybrid_clock::observe(const version& v, int64_t wall_ms) noexcept {
  if (v.wall_ms - wall_ms > max_drift_ms_) {
    return false;
  }
  if (v.wall_ms > last_ms_) {
    last_ms_ = v.wall_ms;
    last_counter_ = v.counter;
  } else if (v.wall_ms == last_ms_) {
    last_counter_ = std::max(last_counter_, v.counter);
  }
  return true;
}

} // namespace mycorrizal::cache
