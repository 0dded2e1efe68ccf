// SPDX-License-Identifier: Apache-2.0
// Logging for the actors layer: one spdlog logger per component, macros.
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/log_sink.hpp"

#include <fmt/format.h>
#include <spdlog/common.h>
#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

/// Actors log through named components (seastar): each component, e.g.
/// `"wire"`, `"quic"`, `"gossip"` or `"node"`, has one spdlog logger named
/// `"mycorrizal.<component>"`, created on first use, with its own level (or
/// the default level). All loggers share one sink list, which a host may
/// replace with `set_sink`; the default is a thread-safe colored stderr sink.
/// The loggers live in a registry of their own, not in spdlog's global one, so
/// `spdlog::set_level` or `spdlog::drop_all` in a host leave them alone.
///
/// Pure cores never log globally (STYLE.md §G); their owning actor hands them
/// `core_sink(component)`, which forwards to the component's logger.
///
/// ~~~
/// MYCORRIZAL_LOG_INFO("node", "joined cluster {}", MYCORRIZAL_ARG(name));
/// MYCORRIZAL_LOG_WARN_RL("quic", 10, "dropped datagram from {}", from);
/// ~~~
namespace mycorrizal::log {

// -- configuration ------------------------------------------------------------

/// Log levels and format of all components.
struct config {
  /// Level of every component without an entry in `levels`.
  log_level default_level = log_level::info;

  /// Per-component levels; keys are component names (`[a-z0-9_-]+`).
  std::map<std::string, log_level> levels;

  /// spdlog pattern for all sinks (e.g. `"[%T.%e] [%n] [%l] %v"`). Empty
  /// leaves each sink's own formatter alone (spdlog's default `"%+"` for the
  /// built-in stderr sink).
  std::string pattern;

  /// Default level `info`, no per-component levels, no pattern.
  static config defaults();

  /// Like `defaults()` with default level `warn`.
  static config quiet();

  /// Like `defaults()` with default level `debug`.
  static config verbose();

  /// Checks every field.
  /// @returns `errc::invalid_config` naming each bad field, e.g.
  ///          `log.levels.qu ic: component name must be [a-z0-9_-]+`.
  expected<void> validate() const;
};

/// Parses a level spec in the style of `SPDLOG_LEVEL` / `RUST_LOG`: comma
/// separated tokens, each either a bare level (the default level) or
/// `component=level`, e.g. `"info,gossip=debug,quic=trace"`. Blanks around
/// tokens and empty tokens are ignored, a component may be written with its
/// logger name (`mycorrizal.gossip=debug`), and a later token overrides an
/// earlier one. An empty spec yields `config::defaults()`.
/// @returns `errc::invalid_config` naming every bad token, e.g.
///          `log.spec: token 'gossip=loud': unknown log level 'loud' (...)`.
expected<config> parse_spec(std::string_view spec);

/// Validates `cfg` and makes it the active configuration: sets the level of
/// existing and future loggers and, when not empty, the pattern of all sinks.
/// @returns `errc::invalid_config` from `cfg.validate()`; on error nothing
///          changes.
expected<void> apply(const config& cfg);

/// Returns the active configuration.
config current();

/// Restores the built-in state: `config::defaults()`, the stderr sink and
/// the steady clock for rate limiting. Meant for tests.
void reset();

// -- components and loggers ---------------------------------------------------

/// Returns whether `name` is a valid component name: `[a-z0-9_-]+`.
constexpr bool valid_component_name(std::string_view name) noexcept {
  if (name.empty()) {
    return false;
  }
  for (auto c : name) {
    auto ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
              || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

/// Returns the logger `"mycorrizal.<component>"`, creating it on first use.
/// Loggers are never destroyed, so the result stays valid until exit.
std::shared_ptr<spdlog::logger> logger(std::string_view component);

/// Sets the level of one component (existing and future logger).
/// @returns `errc::invalid_config` if `component` is not a valid name.
expected<void> set_level(std::string_view component, log_level level);

/// Sets the level of every component without its own level.
void set_default_level(log_level level);

/// Returns the level `component` logs at.
log_level level(std::string_view component);

/// Makes `sink` the only sink of all existing and future loggers; `nullptr`
/// restores the default stderr sink. When the active config has a pattern,
/// `sink` gets it; otherwise its own formatter is kept. Thread-safe against
/// concurrent logging.
void set_sink(spdlog::sink_ptr sink);

/// Flushes all sinks.
void flush();

/// Returns a `log_sink` for a pure core that forwards each line to the
/// logger of `component`, mapping `log_level` to the spdlog level (`off`
/// lines are dropped). The runtime level of the component applies.
log_sink core_sink(std::string_view component);

/// Maps our levels to spdlog's (`error` → `err`).
constexpr spdlog::level::level_enum to_spdlog(log_level x) noexcept {
  switch (x) {
    case log_level::trace: return spdlog::level::trace;
    case log_level::debug: return spdlog::level::debug;
    case log_level::info: return spdlog::level::info;
    case log_level::warn: return spdlog::level::warn;
    case log_level::error: return spdlog::level::err;
    case log_level::off: return spdlog::level::off;
  }
  return spdlog::level::off;
}

/// Maps spdlog's levels to ours (`critical` → `error`).
constexpr log_level from_spdlog(spdlog::level::level_enum x) noexcept {
  switch (x) {
    case spdlog::level::trace: return log_level::trace;
    case spdlog::level::debug: return log_level::debug;
    case spdlog::level::info: return log_level::info;
    case spdlog::level::warn: return log_level::warn;
    case spdlog::level::err: return log_level::error;
    case spdlog::level::critical: return log_level::error;
    default: return log_level::off;
  }
}

// -- rate limiting ------------------------------------------------------------

/// A lock-free token bucket (GCRA: one atomic "theoretical arrival time")
/// that lets at most `per_second` events through per second, in bursts of
/// up to `per_second`, and counts the events it rejects. The caller passes
/// the time, so tests drive it with explicit time points. Thread-safe.
class rate_limiter {
public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  /// Result of `acquire`: whether the event may pass, and if so how many
  /// events were rejected since the last one that passed.
  struct permit {
    bool allowed = false;
    uint64_t suppressed = 0;

    explicit operator bool() const noexcept {
      return allowed;
    }
  };

  /// `per_second` of 0 counts as 1.
  constexpr explicit rate_limiter(uint32_t per_second) noexcept
      : per_second_(per_second == 0 ? 1 : per_second),
        interval_ns_(
          per_second_ >= 1'000'000'000 ? 1 : 1'000'000'000 / per_second_),
        tolerance_ns_(interval_ns_ * (per_second_ - 1)) {
    // nop
  }

  rate_limiter(const rate_limiter&) = delete;
  rate_limiter& operator=(const rate_limiter&) = delete;
  ~rate_limiter() = default;

  /// Takes one token at `now` if there is one.
  permit acquire(time_point now) noexcept {
    auto t = std::chrono::duration_cast<std::chrono::nanoseconds>(
               now.time_since_epoch())
               .count();
    auto tat = tat_.load(std::memory_order_relaxed);
    for (;;) {
      auto start = tat > t ? tat : t;
      if (start - t > tolerance_ns_) {
        suppressed_.fetch_add(1, std::memory_order_relaxed);
        return {};
      }
      if (tat_.compare_exchange_weak(tat, start + interval_ns_,
                                     std::memory_order_relaxed)) {
        return {true, suppressed_.exchange(0, std::memory_order_relaxed)};
      }
    }
  }

  uint32_t per_second() const noexcept {
    return per_second_;
  }

private:
  static_assert(std::atomic<int64_t>::is_always_lock_free);
  static_assert(std::atomic<uint64_t>::is_always_lock_free);

  uint32_t per_second_;
  int64_t interval_ns_;
  int64_t tolerance_ns_;
  std::atomic<int64_t> tat_{INT64_MIN};
  std::atomic<uint64_t> suppressed_{0};
};

/// A clock for the rate-limited macros.
using clock_function = rate_limiter::time_point (*)() noexcept;

/// Replaces the clock of the rate-limited macros (`nullptr`: steady_clock).
/// Meant for tests.
void set_rate_limit_clock(clock_function fn) noexcept;

// -- implementation details ---------------------------------------------------

namespace detail {

/// Returns the logger of `component` for a macro call site to cache.
spdlog::logger* component_logger(std::string_view component);

/// Reads the clock of the rate-limited macros.
rate_limiter::time_point rate_limit_now() noexcept;

/// Logs `line`, followed by the suppression note when `suppressed > 0`.
void log_line(spdlog::logger& lg, spdlog::source_loc loc,
              spdlog::level::level_enum lvl, fmt::memory_buffer& line,
              uint64_t suppressed);

/// Formats a rate-limited line and logs it with `log_line`. A format error
/// (possible only with `fmt::runtime`) is logged instead of thrown, as
/// spdlog does for the other macros.
template <class... Ts>
void log_limited(spdlog::logger& lg, spdlog::source_loc loc,
                 spdlog::level::level_enum lvl, uint64_t suppressed,
                 fmt::format_string<Ts...> format, Ts&&... xs) {
  fmt::memory_buffer line;
  try {
    fmt::format_to(std::back_inserter(line), format, std::forward<Ts>(xs)...);
  } catch (const std::exception& ex) {
    line.clear();
    fmt::format_to(std::back_inserter(line), "[*** LOG ERROR: {} ***]",
                   ex.what());
  }
  log_line(lg, loc, lvl, line, suppressed);
}

/// `key=value` for `MYCORRIZAL_ARG`; formats the value with its own
/// formatter (and format spec) without allocating.
template <class T>
struct key_value {
  std::string_view key;
  const T& value;
};

template <class T>
key_value<T> make_key_value(std::string_view key, const T& value) noexcept {
  return {key, value};
}

} // namespace detail

} // namespace mycorrizal::log

template <class T, class Char>
struct fmt::formatter<mycorrizal::log::detail::key_value<T>, Char>
    : fmt::formatter<std::decay_t<const T>, Char> {
  using base = fmt::formatter<std::decay_t<const T>, Char>;

  template <class FormatContext>
  auto format(const mycorrizal::log::detail::key_value<T>& x,
              FormatContext& ctx) const -> decltype(ctx.out()) {
    auto out = ctx.out();
    for (auto c : x.key) {
      *out++ = static_cast<Char>(c);
    }
    *out++ = static_cast<Char>('=');
    ctx.advance_to(out);
    return base::format(x.value, ctx);
  }
};

// -- macros -------------------------------------------------------------------

#define MYCORRIZAL_LOG_LEVEL_TRACE 0
#define MYCORRIZAL_LOG_LEVEL_DEBUG 1
#define MYCORRIZAL_LOG_LEVEL_INFO  2
#define MYCORRIZAL_LOG_LEVEL_WARN  3
#define MYCORRIZAL_LOG_LEVEL_ERROR 4
#define MYCORRIZAL_LOG_LEVEL_OFF   5

/// Lowest level compiled in; calls below it are discarded at compile time
/// (their arguments are still type-checked, but never evaluated). Define it
/// to 0 (`MYCORRIZAL_LOG_LEVEL_TRACE`) to compile trace logging in.
#ifndef MYCORRIZAL_LOG_LEVEL
#  define MYCORRIZAL_LOG_LEVEL MYCORRIZAL_LOG_LEVEL_DEBUG
#endif
#if MYCORRIZAL_LOG_LEVEL < 0 || MYCORRIZAL_LOG_LEVEL > 5
#  error "MYCORRIZAL_LOG_LEVEL must be in [0, 5]"
#endif

/// Formats `x` as `x=<value>`, e.g. `MYCORRIZAL_ARG(port)` → `port=7946`.
/// A format spec applies to the value: `{:x}` → `port=1f0a`.
#define MYCORRIZAL_ARG(x) ::mycorrizal::log::detail::make_key_value(#x, x)

#define MYCORRIZAL_LOG_SOURCE_LOC                          \
  ::spdlog::source_loc {                                   \
    __FILE__, __LINE__, static_cast<const char*>(__func__) \
  }

// The component must be a constant expression: each call site caches its
// logger in a function-local static.
#define MYCORRIZAL_LOG_IMPL(num, lvl, component, ...)                     \
  do {                                                                    \
    if constexpr ((num) >= MYCORRIZAL_LOG_LEVEL) {                        \
      static_assert(::mycorrizal::log::valid_component_name(component),   \
                    "log component must be a constant [a-z0-9_-]+ name"); \
      static ::spdlog::logger* const mycorrizal_log_logger_               \
        = ::mycorrizal::log::detail::component_logger(component);         \
      if (mycorrizal_log_logger_->should_log(lvl)) {                      \
        mycorrizal_log_logger_->log(MYCORRIZAL_LOG_SOURCE_LOC, lvl,       \
                                    __VA_ARGS__);                         \
      }                                                                   \
    }                                                                     \
  } while (false)

// Each call site owns a rate limiter; it only counts lines whose level is
// enabled at runtime.
#define MYCORRIZAL_LOG_RL_IMPL(num, lvl, component, per_second, ...)      \
  do {                                                                    \
    if constexpr ((num) >= MYCORRIZAL_LOG_LEVEL) {                        \
      static_assert(::mycorrizal::log::valid_component_name(component),   \
                    "log component must be a constant [a-z0-9_-]+ name"); \
      static ::spdlog::logger* const mycorrizal_log_logger_               \
        = ::mycorrizal::log::detail::component_logger(component);         \
      if (mycorrizal_log_logger_->should_log(lvl)) {                      \
        static ::mycorrizal::log::rate_limiter mycorrizal_log_limiter_{   \
          per_second};                                                    \
        auto mycorrizal_log_permit_ = mycorrizal_log_limiter_.acquire(    \
          ::mycorrizal::log::detail::rate_limit_now());                   \
        if (mycorrizal_log_permit_) {                                     \
          ::mycorrizal::log::detail::log_limited(                         \
            *mycorrizal_log_logger_, MYCORRIZAL_LOG_SOURCE_LOC, lvl,      \
            mycorrizal_log_permit_.suppressed, __VA_ARGS__);              \
        }                                                                 \
      }                                                                   \
    }                                                                     \
  } while (false)

#define MYCORRIZAL_LOG_TRACE(component, ...)                              \
  MYCORRIZAL_LOG_IMPL(MYCORRIZAL_LOG_LEVEL_TRACE, ::spdlog::level::trace, \
                      component, __VA_ARGS__)
#define MYCORRIZAL_LOG_DEBUG(component, ...)                              \
  MYCORRIZAL_LOG_IMPL(MYCORRIZAL_LOG_LEVEL_DEBUG, ::spdlog::level::debug, \
                      component, __VA_ARGS__)
#define MYCORRIZAL_LOG_INFO(component, ...)                             \
  MYCORRIZAL_LOG_IMPL(MYCORRIZAL_LOG_LEVEL_INFO, ::spdlog::level::info, \
                      component, __VA_ARGS__)
#define MYCORRIZAL_LOG_WARN(component, ...)                             \
  MYCORRIZAL_LOG_IMPL(MYCORRIZAL_LOG_LEVEL_WARN, ::spdlog::level::warn, \
                      component, __VA_ARGS__)
#define MYCORRIZAL_LOG_ERROR(component, ...)                            \
  MYCORRIZAL_LOG_IMPL(MYCORRIZAL_LOG_LEVEL_ERROR, ::spdlog::level::err, \
                      component, __VA_ARGS__)

/// Rate-limited variants for per-packet paths: at most `per_second` lines per
/// second from this call site; the next line after suppressed ones ends with
/// ` (N similar messages suppressed)`.
#define MYCORRIZAL_LOG_TRACE_RL(component, per_second, ...)                  \
  MYCORRIZAL_LOG_RL_IMPL(MYCORRIZAL_LOG_LEVEL_TRACE, ::spdlog::level::trace, \
                         component, per_second, __VA_ARGS__)
#define MYCORRIZAL_LOG_DEBUG_RL(component, per_second, ...)                  \
  MYCORRIZAL_LOG_RL_IMPL(MYCORRIZAL_LOG_LEVEL_DEBUG, ::spdlog::level::debug, \
                         component, per_second, __VA_ARGS__)
#define MYCORRIZAL_LOG_INFO_RL(component, per_second, ...)                 \
  MYCORRIZAL_LOG_RL_IMPL(MYCORRIZAL_LOG_LEVEL_INFO, ::spdlog::level::info, \
                         component, per_second, __VA_ARGS__)
#define MYCORRIZAL_LOG_WARN_RL(component, per_second, ...)                 \
  MYCORRIZAL_LOG_RL_IMPL(MYCORRIZAL_LOG_LEVEL_WARN, ::spdlog::level::warn, \
                         component, per_second, __VA_ARGS__)
#define MYCORRIZAL_LOG_ERROR_RL(component, per_second, ...)                \
  MYCORRIZAL_LOG_RL_IMPL(MYCORRIZAL_LOG_LEVEL_ERROR, ::spdlog::level::err, \
                         component, per_second, __VA_ARGS__)
