// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/error.hpp"

#include <cassert>
#include <type_traits>
#include <utility>
#include <variant>

/// A small `expected<T>` for the pure cores, shaped like `std::expected`
/// (C++23) and `tl::expected`: `has_value()`, `operator bool`, `value()`,
/// `error()`, `*`, `->`, `value_or()`, and `unexpected`. The error type is
/// `mycorrizal::error` unless given. Cores do not throw: accessing the wrong
/// alternative is a precondition violation (asserted in debug builds).
namespace mycorrizal {

template <class E>
class unexpected {
public:
  explicit unexpected(E e) : error_(std::move(e)) {
    // nop
  }

  const E& error() const& noexcept {
    return error_;
  }

  E&& error() && noexcept {
    return std::move(error_);
  }

private:
  E error_;
};

unexpected(errc)->unexpected<error>;

template <class T, class E = error>
class [[nodiscard]] expected {
public:
  using value_type = T;
  using error_type = E;

  expected() requires std::is_default_constructible_v<T>
      : data_(std::in_place_index<0>) {
    // nop
  }

  expected(T x) : data_(std::in_place_index<0>, std::move(x)) {
    // nop
  }

  /// Constructs the value in place from `xs`.
  template <class... Ts>
  explicit expected(std::in_place_t, Ts&&... xs)
      : data_(std::in_place_index<0>, std::forward<Ts>(xs)...) {
    // nop
  }

  template <class G>
  expected(unexpected<G> e)
      : data_(std::in_place_index<1>, E{std::move(e).error()}) {
    // nop
  }

  /// An `errc` converts to an error state directly: `return errc::x;`.
  expected(errc code) requires(!std::is_same_v<T, errc>)
      : data_(std::in_place_index<1>, E{code}) {
    // nop
  }

  bool has_value() const noexcept {
    return data_.index() == 0;
  }

  explicit operator bool() const noexcept {
    return has_value();
  }

  T& value() & noexcept {
    assert(has_value());
    return *std::get_if<0>(&data_);
  }

  const T& value() const& noexcept {
    assert(has_value());
    return *std::get_if<0>(&data_);
  }

  T&& value() && noexcept {
    assert(has_value());
    return std::move(*std::get_if<0>(&data_));
  }

  const E& error() const& noexcept {
    assert(!has_value());
    return *std::get_if<1>(&data_);
  }

  E&& error() && noexcept {
    assert(!has_value());
    return std::move(*std::get_if<1>(&data_));
  }

  T& operator*() & noexcept {
    return value();
  }

  const T& operator*() const& noexcept {
    return value();
  }

  T* operator->() noexcept {
    return &value();
  }

  const T* operator->() const noexcept {
    return &value();
  }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? value() : static_cast<T>(std::forward<U>(fallback));
  }

private:
  std::variant<T, E> data_;
};

/// `expected<void>`: success, or an error.
template <class E>
class [[nodiscard]] expected<void, E> {
public:
  using value_type = void;
  using error_type = E;

  expected() noexcept = default;

  template <class G>
  expected(unexpected<G> e) : error_(E{std::move(e).error()}) {
    // nop
  }

  expected(errc code) : error_(E{code}) {
    // nop
  }

  bool has_value() const noexcept {
    return !static_cast<bool>(error_);
  }

  explicit operator bool() const noexcept {
    return has_value();
  }

  const E& error() const& noexcept {
    assert(!has_value());
    return error_;
  }

private:
  E error_;
};

} // namespace mycorrizal
