// SPDX-License-Identifier: Apache-2.0
// Test helper: frame equality that compares payload bytes, and printing.
#pragma once

#include "mycorrizal/wire/frame.hpp"

#include "support/bytes.hpp"

#include <algorithm>
#include <ostream>
#include <string>

namespace mycorrizal::wire {

inline bool same_bytes(bytes_view x, bytes_view y) {
  return std::equal(x.begin(), x.end(), y.begin(), y.end());
}

inline bool operator==(const data& x, const data& y) {
  return x.flags == y.flags && same_bytes(x.payload, y.payload);
}

inline bool operator==(const request& x, const request& y) {
  return x.id == y.id && x.timeout_ms == y.timeout_ms && x.flags == y.flags
         && same_bytes(x.payload, y.payload);
}

inline bool operator==(const response& x, const response& y) {
  return x.id == y.id && x.status == y.status && x.flags == y.flags
         && same_bytes(x.payload, y.payload);
}

// gtest prints variants through PrintTo of the alternatives.
inline void PrintTo(const frame& x, std::ostream* os) {
  *os << to_string(type_of(x));
  std::visit(
    [os](const auto& f) {
      if constexpr (requires { f.payload; }) {
        *os << " payload=" << test::hex(f.payload);
      }
    },
    x);
}

} // namespace mycorrizal::wire
