// SPDX-License-Identifier: Apache-2.0
// Logging for the actors layer: the component registry over spdlog.
#include "mycorrizal/runtime/log.hpp"

#include "mycorrizal/config_check.hpp"

#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <utility>
#include <vector>

namespace mycorrizal::log {

namespace {

constexpr std::string_view logger_prefix = "mycorrizal.";

constexpr std::string_view bad_component_name
  = "component name must be [a-z0-9_-]+";

constexpr std::string_view bad_level
  = "must be trace, debug, info, warn, error or off";

spdlog::sink_ptr make_default_sink() {
  return std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
}

/// The loggers and the active config. Every logger has one sink, `dist`,
/// whose sink list `set_sink` swaps under dist's own mutex; that makes
/// replacing sinks safe while other threads log.
struct registry {
  registry() : dist(std::make_shared<spdlog::sinks::dist_sink_mt>()) {
    dist->set_sinks({make_default_sink()});
  }

  /// Returns the level of `component`. Requires `mtx`.
  log_level level_of(std::string_view component) const {
    if (auto i = cfg.levels.find(std::string{component});
        i != cfg.levels.end()) {
      return i->second;
    }
    return cfg.default_level;
  }

  /// Sets every logger to its configured level. Requires `mtx`.
  void update_levels() {
    for (auto& [name, lg] : loggers) {
      lg->set_level(to_spdlog(level_of(name)));
    }
  }

  std::mutex mtx;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> dist;
  config cfg;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers;
};

registry& reg() {
  // Never destroyed: actors may still log while static destructors run, and
  // the macros cache raw logger pointers.
  static auto* instance = new registry;
  return *instance;
}

std::atomic<clock_function> rate_limit_clock{nullptr};

std::string_view trim(std::string_view x) noexcept {
  while (!x.empty() && (x.front() == ' ' || x.front() == '\t')) {
    x.remove_prefix(1);
  }
  while (!x.empty() && (x.back() == ' ' || x.back() == '\t')) {
    x.remove_suffix(1);
  }
  return x;
}

} // namespace

// -- configuration ------------------------------------------------------------

config config::defaults() {
  return config{};
}

config config::quiet() {
  auto result = defaults();
  result.default_level = log_level::warn;
  return result;
}

config config::verbose() {
  auto result = defaults();
  result.default_level = log_level::debug;
  return result;
}

expected<void> config::validate() const {
  config_check check{"log"};
  check.require("default_level", default_level <= log_level::off, bad_level);
  for (const auto& [name, lvl] : levels) {
    auto field = "levels." + name;
    check.require(field, valid_component_name(name), bad_component_name);
    check.require(field, lvl <= log_level::off, bad_level);
  }
  return std::move(check).result();
}

expected<config> parse_spec(std::string_view spec) {
  auto result = config::defaults();
  config_check check{"log"};
  auto bad_token = [&check](std::string_view token, std::string_view what) {
    check.fail("spec", fmt::format("token '{}': {}", token, what));
  };
  size_t pos = 0;
  while (pos <= spec.size()) {
    auto end = spec.find(',', pos);
    if (end == std::string_view::npos) {
      end = spec.size();
    }
    auto token = trim(spec.substr(pos, end - pos));
    pos = end + 1;
    if (token.empty()) {
      continue;
    }
    auto eq = token.find('=');
    if (eq == std::string_view::npos) {
      if (auto lvl = parse_log_level(token)) {
        result.default_level = *lvl;
      } else {
        bad_token(token, lvl.error().context());
      }
      continue;
    }
    auto name = trim(token.substr(0, eq));
    if (name.starts_with(logger_prefix)) {
      name.remove_prefix(logger_prefix.size());
    }
    if (!valid_component_name(name)) {
      bad_token(token, bad_component_name);
      continue;
    }
    if (auto lvl = parse_log_level(trim(token.substr(eq + 1)))) {
      result.levels[std::string{name}] = *lvl;
    } else {
      bad_token(token, lvl.error().context());
    }
  }
  if (auto res = std::move(check).result(); !res) {
    return unexpected{res.error()};
  }
  return result;
}

expected<void> apply(const config& cfg) {
  if (auto res = cfg.validate(); !res) {
    return res;
  }
  auto& r = reg();
  std::lock_guard<std::mutex> guard{r.mtx};
  auto old_pattern = std::move(r.cfg.pattern);
  r.cfg = cfg;
  r.update_levels();
  if (!cfg.pattern.empty()) {
    r.dist->set_pattern(cfg.pattern);
  } else if (!old_pattern.empty()) {
    r.dist->set_pattern("%+"); // spdlog's default
  }
  return {};
}

config current() {
  auto& r = reg();
  std::lock_guard<std::mutex> guard{r.mtx};
  return r.cfg;
}

void reset() {
  auto& r = reg();
  {
    std::lock_guard<std::mutex> guard{r.mtx};
    r.cfg = config::defaults();
    r.dist->set_sinks({make_default_sink()});
    r.update_levels();
  }
  set_rate_limit_clock(nullptr);
}

// -- components and loggers ---------------------------------------------------

std::shared_ptr<spdlog::logger> logger(std::string_view component) {
  auto& r = reg();
  std::lock_guard<std::mutex> guard{r.mtx};
  if (auto i = r.loggers.find(component); i != r.loggers.end()) {
    return i->second;
  }
  std::string name{logger_prefix};
  name += component;
  auto lg = std::make_shared<spdlog::logger>(std::move(name), r.dist);
  lg->set_level(to_spdlog(r.level_of(component)));
  lg->flush_on(spdlog::level::err);
  r.loggers.emplace(std::string{component}, lg);
  return lg;
}

expected<void> set_level(std::string_view component, log_level level) {
  config_check check{"log"};
  auto field = "levels." + std::string{component};
  check.require(field, valid_component_name(component), bad_component_name);
  check.require(field, level <= log_level::off, bad_level);
  if (auto res = std::move(check).result(); !res) {
    return res;
  }
  auto& r = reg();
  std::lock_guard<std::mutex> guard{r.mtx};
  r.cfg.levels[std::string{component}] = level;
  if (auto i = r.loggers.find(component); i != r.loggers.end()) {
    i->second->set_level(to_spdlog(level));
  }
  return {};
}

void set_default_level(log_level level) {
  auto& r = reg();
  std::lock_guard<std::mutex> guard{r.mtx};
  r.cfg.default_level = level;
  r.update_levels();
}

log_level level(std::string_view component) {
  auto& r = reg();
  std::lock_guard<std::mutex> guard{r.mtx};
  return r.level_of(component);
}

void set_sink(spdlog::sink_ptr sink) {
  if (!sink) {
    sink = make_default_sink();
  }
  auto& r = reg();
  std::lock_guard<std::mutex> guard{r.mtx};
  if (!r.cfg.pattern.empty()) {
    sink->set_pattern(r.cfg.pattern);
  }
  r.dist->set_sinks({std::move(sink)});
}

void flush() {
  reg().dist->flush();
}

log_sink core_sink(std::string_view component) {
  return [lg = logger(component)](log_level lvl, std::string_view msg) {
    auto x = to_spdlog(lvl);
    if (x == spdlog::level::off || !lg->should_log(x)) {
      return;
    }
    lg->log(x, spdlog::string_view_t{msg.data(), msg.size()});
  };
}

// -- rate limiting ------------------------------------------------------------

void set_rate_limit_clock(clock_function fn) noexcept {
  rate_limit_clock.store(fn, std::memory_order_release);
}

// -- implementation details ---------------------------------------------------

namespace detail {

spdlog::logger* component_logger(std::string_view component) {
  return logger(component).get();
}

rate_limiter::time_point rate_limit_now() noexcept {
  if (auto fn = rate_limit_clock.load(std::memory_order_acquire)) {
    return fn();
  }
  return rate_limiter::clock::now();
}

void log_line(spdlog::logger& lg, spdlog::source_loc loc,
              spdlog::level::level_enum lvl, fmt::memory_buffer& line,
              uint64_t suppressed) {
  if (suppressed > 0) {
    fmt::format_to(std::back_inserter(line),
                   " ({} similar messages suppressed)", suppressed);
  }
  lg.log(loc, lvl, spdlog::string_view_t{line.data(), line.size()});
}

} // namespace detail

} // namespace mycorrizal::log
