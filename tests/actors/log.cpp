// SPDX-License-Identifier: Apache-2.0
// Tests for mycorrizal/runtime/log.hpp: components, sinks, macros, rate
// limiting.
#include "mycorrizal/runtime/log.hpp"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/base_sink.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace mlog = mycorrizal::log;
using mycorrizal::errc;
using mycorrizal::log_level;

namespace {

// -- test helpers -------------------------------------------------------------

struct captured {
  std::string logger;
  spdlog::level::level_enum level;
  std::string payload;
  std::string line; // formatted by the sink's formatter, without newline
};

/// Records every line it receives.
class capture_sink : public spdlog::sinks::base_sink<std::mutex> {
public:
  std::vector<captured> lines() {
    std::lock_guard<std::mutex> guard{mutex_};
    return lines_;
  }

  std::vector<std::string> payloads() {
    std::vector<std::string> result;
    for (auto& x : lines()) {
      result.push_back(x.payload);
    }
    return result;
  }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::string line{buf.data(), buf.size()};
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
      line.pop_back();
    }
    lines_.push_back(
      {std::string{msg.logger_name.data(), msg.logger_name.size()}, msg.level,
       std::string{msg.payload.data(), msg.payload.size()}, std::move(line)});
  }

  void flush_() override {
    // nop
  }

private:
  std::vector<captured> lines_;
};

/// Counts how often it gets formatted.
struct counted {
  int* count;
};

const auto t0 = mlog::rate_limiter::time_point{} + 1h;

std::atomic<int64_t> fake_now_ns{0};

mlog::rate_limiter::time_point fake_now() noexcept {
  return mlog::rate_limiter::time_point{}
         + std::chrono::nanoseconds{fake_now_ns.load()};
}

void advance_fake_clock(std::chrono::nanoseconds d) {
  fake_now_ns.fetch_add(d.count());
}

class actors_log : public testing::Test {
protected:
  void SetUp() override {
    mlog::reset();
    sink_ = std::make_shared<capture_sink>();
    mlog::set_sink(sink_);
    // Every test starts an hour later: the rate limiters of all call sites
    // are full again, also under --gtest_repeat.
    mlog::set_rate_limit_clock(fake_now);
    advance_fake_clock(1h);
  }

  void TearDown() override {
    mlog::reset();
  }

  std::shared_ptr<capture_sink> sink_;
};

std::string unknown_level(std::string_view text) {
  return "unknown log level '" + std::string{text}
         + "' (expected trace, debug, info, warn, error or off)";
}

} // namespace

template <>
struct fmt::formatter<counted> : fmt::formatter<int> {
  auto format(counted x, fmt::format_context& ctx) const {
    ++*x.count;
    return fmt::formatter<int>::format(*x.count, ctx);
  }
};

// -- components and levels ----------------------------------------------------

TEST_F(actors_log, one_logger_per_component_with_its_own_level) {
  ASSERT_TRUE(mlog::set_level("gossip", log_level::debug));
  MYCORRIZAL_LOG_DEBUG("gossip", "probe {}", 1);
  MYCORRIZAL_LOG_DEBUG("quic", "dropped {}", 2);
  MYCORRIZAL_LOG_INFO("quic", "hello {}", 3);
  auto got = sink_->lines();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].logger, "mycorrizal.gossip");
  EXPECT_EQ(got[0].level, spdlog::level::debug);
  EXPECT_EQ(got[0].payload, "probe 1");
  EXPECT_EQ(got[1].logger, "mycorrizal.quic");
  EXPECT_EQ(got[1].level, spdlog::level::info);
  EXPECT_EQ(got[1].payload, "hello 3");
  EXPECT_EQ(mlog::logger("gossip")->name(), "mycorrizal.gossip");
  EXPECT_EQ(mlog::logger("gossip"), mlog::logger("gossip"));
  EXPECT_NE(mlog::logger("gossip"), mlog::logger("quic"));
  EXPECT_EQ(mlog::level("gossip"), log_level::debug);
  EXPECT_EQ(mlog::level("quic"), log_level::info);
}

TEST_F(actors_log, levels_apply_to_loggers_created_later) {
  ASSERT_TRUE(mlog::set_level("late-a", log_level::error));
  mlog::set_default_level(log_level::warn);
  EXPECT_EQ(mlog::logger("late-a")->level(), spdlog::level::err);
  EXPECT_EQ(mlog::logger("late-b")->level(), spdlog::level::warn);
  mlog::set_default_level(log_level::trace);
  EXPECT_EQ(mlog::logger("late-a")->level(), spdlog::level::err);
  EXPECT_EQ(mlog::logger("late-b")->level(), spdlog::level::trace);
}

TEST_F(actors_log, set_level_rejects_bad_component_names) {
  auto res = mlog::set_level("Bad.Name", log_level::info);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code(), errc::invalid_config);
  EXPECT_EQ(res.error().context(),
            "log.levels.Bad.Name: component name must be [a-z0-9_-]+");
  EXPECT_TRUE(mlog::current().levels.empty());
}

TEST_F(actors_log, component_names) {
  EXPECT_TRUE(mlog::valid_component_name("gossip"));
  EXPECT_TRUE(mlog::valid_component_name("quic_conn-2"));
  EXPECT_FALSE(mlog::valid_component_name(""));
  EXPECT_FALSE(mlog::valid_component_name("Gossip"));
  EXPECT_FALSE(mlog::valid_component_name("a.b"));
  EXPECT_FALSE(mlog::valid_component_name("qu ic"));
}

// -- sinks --------------------------------------------------------------------

TEST_F(actors_log, host_sink_replaces_sinks_of_existing_and_future_loggers) {
  MYCORRIZAL_LOG_INFO("node", "before");
  auto host = std::make_shared<capture_sink>();
  mlog::set_sink(host);
  MYCORRIZAL_LOG_INFO("node", "after");
  MYCORRIZAL_LOG_INFO("host-sink-test", "from a new logger");
  EXPECT_EQ(sink_->payloads(), std::vector<std::string>{"before"});
  EXPECT_EQ(host->payloads(),
            (std::vector<std::string>{"after", "from a new logger"}));
  mlog::set_sink(nullptr); // back to stderr
  MYCORRIZAL_LOG_DEBUG("node", "not shown at info");
  EXPECT_EQ(host->payloads().size(), 2u);
}

TEST_F(actors_log, swapping_sinks_while_logging_loses_no_line) {
  constexpr int n = 2000;
  auto other = std::make_shared<capture_sink>();
  std::atomic<bool> done{false};
  std::thread writer{[&done] {
    for (int i = 0; i < n; ++i) {
      MYCORRIZAL_LOG_INFO("swap-test", "line {}", i);
    }
    done = true;
  }};
  for (int i = 0; !done; ++i) {
    mlog::set_sink(i % 2 == 0 ? spdlog::sink_ptr{other} : sink_);
    std::this_thread::yield();
  }
  writer.join();
  EXPECT_EQ(sink_->lines().size() + other->lines().size(),
            static_cast<size_t>(n));
}

TEST_F(actors_log, core_sink_forwards_with_level_mapping) {
  auto sink = mlog::core_sink("wire");
  ASSERT_TRUE(mlog::set_level("wire", log_level::trace));
  for (auto lvl : {log_level::trace, log_level::debug, log_level::info,
                   log_level::warn, log_level::error, log_level::off}) {
    sink(lvl, to_string(lvl));
  }
  auto got = sink_->lines();
  ASSERT_EQ(got.size(), 5u); // `off` lines are dropped
  const spdlog::level::level_enum want[]
    = {spdlog::level::trace, spdlog::level::debug, spdlog::level::info,
       spdlog::level::warn, spdlog::level::err};
  const char* payloads[] = {"trace", "debug", "info", "warn", "error"};
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].logger, "mycorrizal.wire");
    EXPECT_EQ(got[i].level, want[i]);
    EXPECT_EQ(got[i].payload, payloads[i]);
  }
  // The component's runtime level applies to the core's lines.
  ASSERT_TRUE(mlog::set_level("wire", log_level::warn));
  sink(log_level::info, "dropped");
  sink(log_level::error, "kept");
  EXPECT_EQ(sink_->lines().size(), 6u);
  EXPECT_EQ(sink_->lines().back().payload, "kept");
}

TEST_F(actors_log, level_mapping_round_trips) {
  for (auto lvl : {log_level::trace, log_level::debug, log_level::info,
                   log_level::warn, log_level::error, log_level::off}) {
    EXPECT_EQ(mlog::from_spdlog(mlog::to_spdlog(lvl)), lvl);
  }
  EXPECT_EQ(mlog::from_spdlog(spdlog::level::critical), log_level::error);
}

// -- macros -------------------------------------------------------------------

TEST_F(actors_log, trace_is_compiled_out_by_default) {
  static_assert(MYCORRIZAL_LOG_LEVEL == MYCORRIZAL_LOG_LEVEL_DEBUG);
  ASSERT_TRUE(mlog::set_level("node", log_level::trace));
  int evaluated = 0;
  MYCORRIZAL_LOG_TRACE("node", "trace {}", ++evaluated);
  MYCORRIZAL_LOG_TRACE_RL("node", 10, "trace {}", ++evaluated);
  EXPECT_EQ(evaluated, 0);
  EXPECT_TRUE(sink_->lines().empty());
  MYCORRIZAL_LOG_DEBUG("node", "debug {}", ++evaluated);
  EXPECT_EQ(evaluated, 1);
  EXPECT_EQ(sink_->payloads(), std::vector<std::string>{"debug 1"});
}

TEST_F(actors_log, runtime_level_is_checked_before_formatting) {
  int formatted = 0;
  int evaluated = 0;
  MYCORRIZAL_LOG_DEBUG("node", "{} {}", counted{&formatted}, ++evaluated);
  MYCORRIZAL_LOG_DEBUG_RL("node", 10, "{}", counted{&formatted});
  EXPECT_EQ(formatted, 0);
  EXPECT_EQ(evaluated, 0);
  MYCORRIZAL_LOG_WARN("node", "{} {}", counted{&formatted}, ++evaluated);
  EXPECT_EQ(formatted, 1);
  EXPECT_EQ(evaluated, 1);
  EXPECT_EQ(sink_->payloads(), std::vector<std::string>{"1 1"});
}

TEST_F(actors_log, every_level_macro_logs_at_its_level) {
  ASSERT_TRUE(mlog::set_level("node", log_level::trace));
  MYCORRIZAL_LOG_DEBUG("node", "d");
  MYCORRIZAL_LOG_INFO("node", "i");
  MYCORRIZAL_LOG_WARN("node", "w");
  MYCORRIZAL_LOG_ERROR("node", "e");
  auto got = sink_->lines();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].level, spdlog::level::debug);
  EXPECT_EQ(got[1].level, spdlog::level::info);
  EXPECT_EQ(got[2].level, spdlog::level::warn);
  EXPECT_EQ(got[3].level, spdlog::level::err);
}

TEST_F(actors_log, arg_formats_key_value) {
  std::string name = "n1";
  uint16_t port = 7946;
  MYCORRIZAL_LOG_INFO("node", "joined {} {} {:x}", MYCORRIZAL_ARG(name),
                      MYCORRIZAL_ARG(port), MYCORRIZAL_ARG(port));
  EXPECT_EQ(sink_->payloads(),
            std::vector<std::string>{"joined name=n1 port=7946 port=1f0a"});
  EXPECT_EQ(fmt::format("{}", MYCORRIZAL_ARG(port)), "port=7946");
  EXPECT_EQ(fmt::format("[{:>4}]", MYCORRIZAL_ARG(name)), "[name=  n1]");
}

TEST_F(actors_log, runtime_format_strings) {
  std::string format = "runtime {}";
  MYCORRIZAL_LOG_INFO("node", fmt::runtime(format), 5);
  MYCORRIZAL_LOG_INFO_RL("node", 10, fmt::runtime(format), 6);
  // A bad runtime format is logged as an error line, never thrown.
  std::string bad = "bad {";
  MYCORRIZAL_LOG_INFO_RL("node", 10, fmt::runtime(bad), 7);
  auto got = sink_->payloads();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], "runtime 5");
  EXPECT_EQ(got[1], "runtime 6");
  EXPECT_EQ(got[2].rfind("[*** LOG ERROR: ", 0), 0u) << got[2];
}

// -- rate limiting ------------------------------------------------------------

TEST(actors_log_rate_limiter, burst_lets_exactly_per_second_through) {
  mlog::rate_limiter rl{4}; // one token per 250 ms, bursts of 4
  int allowed = 0;
  for (int i = 0; i < 10; ++i) {
    if (rl.acquire(t0)) {
      ++allowed;
    }
  }
  EXPECT_EQ(allowed, 4);
  EXPECT_FALSE(rl.acquire(t0 + 249ms));
  auto p = rl.acquire(t0 + 250ms);
  EXPECT_TRUE(p.allowed);
  EXPECT_EQ(p.suppressed, 7u); // 6 in the burst, 1 at 249 ms
  EXPECT_FALSE(rl.acquire(t0 + 250ms));
  // After a quiet period the bucket is full again, and the first line that
  // passes reports the one suppressed line.
  auto later = t0 + 10s;
  std::vector<uint64_t> reported;
  for (int i = 0; i < 6; ++i) {
    if (auto q = rl.acquire(later)) {
      reported.push_back(q.suppressed);
    }
  }
  EXPECT_EQ(reported, (std::vector<uint64_t>{1, 0, 0, 0}));
}

TEST(actors_log_rate_limiter, refills_at_the_configured_rate) {
  mlog::rate_limiter rl{10};
  EXPECT_EQ(rl.per_second(), 10u);
  int allowed = 0;
  // 20 events per second for 10 seconds, evenly spaced: after the initial
  // burst of 10, 10 per second get through.
  for (int i = 0; i < 200; ++i) {
    if (rl.acquire(t0 + i * 50ms)) {
      ++allowed;
    }
  }
  EXPECT_GE(allowed, 100);
  EXPECT_LE(allowed, 110);
}

TEST(actors_log_rate_limiter, zero_per_second_counts_as_one) {
  mlog::rate_limiter rl{0};
  EXPECT_EQ(rl.per_second(), 1u);
  EXPECT_TRUE(rl.acquire(t0));
  EXPECT_FALSE(rl.acquire(t0 + 999ms));
  EXPECT_TRUE(rl.acquire(t0 + 1s));
}

TEST(actors_log_rate_limiter, concurrent_acquire_is_exact) {
  constexpr int threads = 4;
  constexpr int per_thread = 1000;
  mlog::rate_limiter rl{100};
  std::atomic<int> allowed{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back([&] {
      for (int j = 0; j < per_thread; ++j) {
        if (rl.acquire(t0)) {
          ++allowed;
        }
      }
    });
  }
  for (auto& w : workers) {
    w.join();
  }
  EXPECT_EQ(allowed.load(), 100);
  auto p = rl.acquire(t0 + 1s);
  EXPECT_TRUE(p.allowed);
  EXPECT_EQ(p.suppressed, uint64_t{threads * per_thread - 100});
}

TEST_F(actors_log, rate_limited_macro_suppresses_and_reports) {
  auto emit = [](int i) {
    MYCORRIZAL_LOG_WARN_RL("quic", 3, "bad datagram {}", i);
  };
  for (int i = 0; i < 10; ++i) {
    emit(i);
  }
  EXPECT_EQ(sink_->payloads(),
            (std::vector<std::string>{"bad datagram 0", "bad datagram 1",
                                      "bad datagram 2"}));
  advance_fake_clock(1s);
  emit(10);
  emit(11);
  auto got = sink_->lines();
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[3].payload, "bad datagram 10 (7 similar messages suppressed)");
  EXPECT_EQ(got[3].level, spdlog::level::warn);
  EXPECT_EQ(got[3].logger, "mycorrizal.quic");
  EXPECT_EQ(got[4].payload, "bad datagram 11");
}

TEST_F(actors_log, rate_limiter_ignores_lines_below_the_runtime_level) {
  auto emit = [](int i) {
    MYCORRIZAL_LOG_INFO_RL("gossip", 1, "x {}", i);
  };
  ASSERT_TRUE(mlog::set_level("gossip", log_level::warn));
  for (int i = 0; i < 5; ++i) {
    emit(i);
  }
  ASSERT_TRUE(mlog::set_level("gossip", log_level::info));
  emit(5);
  emit(6);
  EXPECT_EQ(sink_->payloads(), std::vector<std::string>{"x 5"});
  advance_fake_clock(1s);
  emit(7);
  EXPECT_EQ(sink_->payloads().back(), "x 7 (1 similar messages suppressed)");
}

// -- config -------------------------------------------------------------------

TEST_F(actors_log, presets) {
  EXPECT_EQ(mlog::config::defaults().default_level, log_level::info);
  EXPECT_EQ(mlog::config::quiet().default_level, log_level::warn);
  EXPECT_EQ(mlog::config::verbose().default_level, log_level::debug);
  for (const auto& cfg : {mlog::config::defaults(), mlog::config::quiet(),
                          mlog::config::verbose()}) {
    EXPECT_TRUE(cfg.levels.empty());
    EXPECT_TRUE(cfg.pattern.empty());
    EXPECT_TRUE(cfg.validate());
  }
}

TEST_F(actors_log, validate_names_bad_fields) {
  auto cfg = mlog::config::defaults();
  cfg.levels["gossip"] = log_level::debug;
  EXPECT_TRUE(cfg.validate());
  cfg.levels["qu ic"] = log_level::debug;
  auto res = cfg.validate();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().code(), errc::invalid_config);
  EXPECT_EQ(res.error().context(),
            "log.levels.qu ic: component name must be [a-z0-9_-]+");
  cfg.levels.erase("qu ic");
  cfg.default_level = static_cast<log_level>(9);
  cfg.levels["wire"] = static_cast<log_level>(7);
  res = cfg.validate();
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().context(),
            "log.default_level: must be trace, debug, info, warn, error or "
            "off; log.levels.wire: must be trace, debug, info, warn, error "
            "or off");
}

TEST_F(actors_log, parse_spec_accepts_good_specs) {
  auto cfg = mlog::parse_spec("info,gossip=debug,quic=trace");
  ASSERT_TRUE(cfg) << to_string(cfg.error());
  EXPECT_EQ(cfg->default_level, log_level::info);
  EXPECT_EQ(cfg->levels,
            (std::map<std::string, log_level>{{"gossip", log_level::debug},
                                              {"quic", log_level::trace}}));
  EXPECT_TRUE(cfg->validate());

  cfg = mlog::parse_spec("");
  ASSERT_TRUE(cfg);
  EXPECT_EQ(cfg->default_level, log_level::info);
  EXPECT_TRUE(cfg->levels.empty());

  cfg = mlog::parse_spec(" warn , node = off ,,");
  ASSERT_TRUE(cfg) << to_string(cfg.error());
  EXPECT_EQ(cfg->default_level, log_level::warn);
  EXPECT_EQ(cfg->levels,
            (std::map<std::string, log_level>{{"node", log_level::off}}));

  cfg = mlog::parse_spec("mycorrizal.gossip=warning,debug,error,gossip=error");
  ASSERT_TRUE(cfg) << to_string(cfg.error());
  EXPECT_EQ(cfg->default_level, log_level::error); // the later token wins
  EXPECT_EQ(cfg->levels,
            (std::map<std::string, log_level>{{"gossip", log_level::error}}));
}

TEST_F(actors_log, parse_spec_names_the_bad_token) {
  auto check = [](std::string_view spec, const std::string& want) {
    auto cfg = mlog::parse_spec(spec);
    ASSERT_FALSE(cfg) << spec;
    EXPECT_EQ(cfg.error().code(), errc::invalid_config) << spec;
    EXPECT_EQ(cfg.error().context(), want) << spec;
  };
  check("infoo", "log.spec: token 'infoo': " + unknown_level("infoo"));
  check("info,gossip=loud",
        "log.spec: token 'gossip=loud': " + unknown_level("loud"));
  check("gossip=", "log.spec: token 'gossip=': " + unknown_level(""));
  check("qu ic=debug", "log.spec: token 'qu ic=debug': component name must "
                       "be [a-z0-9_-]+");
  check("=debug",
        "log.spec: token '=debug': component name must be [a-z0-9_-]+");
  check("Gossip=debug",
        "log.spec: token 'Gossip=debug': component name must be [a-z0-9_-]+");
  check("x=1, y", "log.spec: token 'x=1': " + unknown_level("1")
                    + "; log.spec: token 'y': " + unknown_level("y"));
}

TEST_F(actors_log, apply_sets_levels_of_existing_and_future_loggers) {
  auto node = mlog::logger("node");
  auto cfg = mlog::parse_spec("warn,gossip=debug");
  ASSERT_TRUE(cfg);
  ASSERT_TRUE(mlog::apply(*cfg));
  EXPECT_EQ(node->level(), spdlog::level::warn);
  EXPECT_EQ(mlog::logger("gossip")->level(), spdlog::level::debug);
  EXPECT_EQ(mlog::logger("apply-test-new")->level(), spdlog::level::warn);
  EXPECT_EQ(mlog::current().default_level, log_level::warn);
  EXPECT_EQ(mlog::current().levels, cfg->levels);
}

TEST_F(actors_log, apply_rejects_invalid_config_and_changes_nothing) {
  auto cfg = mlog::config::verbose();
  cfg.levels["Bad"] = log_level::trace;
  auto res = mlog::apply(cfg);
  ASSERT_FALSE(res);
  EXPECT_EQ(res.error().context(),
            "log.levels.Bad: component name must be [a-z0-9_-]+");
  EXPECT_EQ(mlog::current().default_level, log_level::info);
  EXPECT_TRUE(mlog::current().levels.empty());
  EXPECT_EQ(mlog::logger("node")->level(), spdlog::level::info);
}

TEST_F(actors_log, apply_sets_the_pattern_of_all_sinks) {
  auto cfg = mlog::config::defaults();
  cfg.pattern = "%n|%l|%v";
  ASSERT_TRUE(mlog::apply(cfg));
  MYCORRIZAL_LOG_INFO("node", "hello");
  auto host = std::make_shared<capture_sink>();
  mlog::set_sink(host); // a sink handed in later gets the pattern too
  MYCORRIZAL_LOG_WARN("node", "again");
  ASSERT_EQ(sink_->lines().size(), 1u);
  EXPECT_EQ(sink_->lines()[0].line, "mycorrizal.node|info|hello");
  ASSERT_EQ(host->lines().size(), 1u);
  EXPECT_EQ(host->lines()[0].line, "mycorrizal.node|warning|again");
  // An empty pattern restores spdlog's default.
  ASSERT_TRUE(mlog::apply(mlog::config::defaults()));
  MYCORRIZAL_LOG_INFO("node", "default");
  // "%+" shows the macro's source location: [log.cpp:<line>].
  auto line = host->lines().back().line;
  EXPECT_NE(line.find("[mycorrizal.node] [info] [log.cpp:"), std::string::npos)
    << line;
  EXPECT_TRUE(line.ends_with("] default")) << line;
}

TEST_F(actors_log, reset_restores_defaults) {
  ASSERT_TRUE(mlog::apply(mlog::config::verbose()));
  ASSERT_TRUE(mlog::set_level("gossip", log_level::trace));
  mlog::reset();
  EXPECT_EQ(mlog::current().default_level, log_level::info);
  EXPECT_TRUE(mlog::current().levels.empty());
  EXPECT_EQ(mlog::level("gossip"), log_level::info);
  EXPECT_EQ(mlog::logger("gossip")->level(), spdlog::level::info);
  MYCORRIZAL_LOG_DEBUG("gossip", "not captured"); // the sink is gone
  EXPECT_TRUE(sink_->lines().empty());
}
