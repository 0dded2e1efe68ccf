// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace mycorrizal {

/// Validates a config struct field by field and names every bad field in its
/// error, e.g. `invalid_config: wire.max_frame_size: must be in [64,
/// 1073741824], got 0`. Every config's `validate()` is written with it:
///
/// ~~~
/// config_check check{"wire"};
/// check.in_range("max_frame_size", x.max_frame_size, 64u, 1u << 30);
/// check.require("version_min", x.version_min <= x.version_max,
///               "must not exceed version_max");
/// return std::move(check).result();
/// ~~~
class config_check {
public:
  explicit config_check(std::string_view prefix) : prefix_(prefix) {
    // nop
  }

  /// Fails `field` unless `lo <= value <= hi`.
  template <class T>
  config_check& in_range(std::string_view field, T value, T lo, T hi) {
    if (value < lo || value > hi) {
      fail(field, fmt::format("must be in [{}, {}], got {}", lo, hi, value));
    }
    return *this;
  }

  /// Fails `field` with `what` unless `ok`.
  config_check& require(std::string_view field, bool ok,
                        std::string_view what) {
    if (!ok) {
      fail(field, what);
    }
    return *this;
  }

  /// Records a failure of `field`.
  void fail(std::string_view field, std::string_view what) {
    if (!message_.empty()) {
      message_ += "; ";
    }
    if (!prefix_.empty()) {
      message_ += prefix_;
      message_ += '.';
    }
    message_ += field;
    message_ += ": ";
    message_ += what;
  }

  /// Success, or `errc::invalid_config` with every failure in its context.
  expected<void> result() && {
    if (message_.empty()) {
      return {};
    }
    return unexpected{error{errc::invalid_config, std::move(message_)}};
  }

private:
  std::string prefix_;
  std::string message_;
};

} // namespace mycorrizal
