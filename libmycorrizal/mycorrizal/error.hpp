// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/errc.hpp"

#include <string>
#include <string_view>
#include <utility>

namespace mycorrizal {

/// An `errc` plus an optional context text ("wire.max_frame_size: must be at
/// least 64, got 0"). Cheap when the context is empty: no allocation.
class error {
public:
  error() noexcept = default;

  error(errc code) noexcept : code_(code) { // NOLINT: implicit on purpose
    // nop
  }

  error(errc code, std::string context)
      : code_(code), context_(std::move(context)) {
    // nop
  }

  errc code() const noexcept {
    return code_;
  }

  const std::string& context() const noexcept {
    return context_;
  }

  explicit operator bool() const noexcept {
    return code_ != errc::none;
  }

  friend bool operator==(const error& x, errc y) noexcept {
    return x.code_ == y;
  }

  friend bool operator==(const error& x, const error& y) noexcept {
    return x.code_ == y.code_ && x.context_ == y.context_;
  }

private:
  errc code_ = errc::none;
  std::string context_;
};

/// Renders an error as `code` or `code: context`.
std::string to_string(const error& x);

} // namespace mycorrizal
