// SPDX-License-Identifier: Apache-2.0
// Tests that MYCORRIZAL_LOG_LEVEL 0 compiles trace logging in.
#define MYCORRIZAL_LOG_LEVEL 0
#include "mycorrizal/runtime/log.hpp"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <sstream>
#include <string>

namespace mlog = mycorrizal::log;
using mycorrizal::log_level;

namespace {

std::atomic<int64_t> clock_calls{0};

// Each reading is an hour after the previous one: no line is ever limited.
mlog::rate_limiter::time_point hour_per_call() noexcept {
  return mlog::rate_limiter::time_point{} + std::chrono::hours{++clock_calls};
}

} // namespace

TEST(actors_log_trace, trace_is_compiled_in_with_level_0) {
  static_assert(MYCORRIZAL_LOG_LEVEL == MYCORRIZAL_LOG_LEVEL_TRACE);
  mlog::reset();
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_pattern("%n %l %v");
  mlog::set_sink(sink);
  mlog::set_rate_limit_clock(hour_per_call);
  int evaluated = 0;
  MYCORRIZAL_LOG_TRACE("node", "trace {}", ++evaluated); // runtime: info
  EXPECT_EQ(evaluated, 0);
  ASSERT_TRUE(mlog::set_level("node", log_level::trace));
  MYCORRIZAL_LOG_TRACE("node", "trace {}", ++evaluated);
  MYCORRIZAL_LOG_TRACE_RL("node", 5, "limited {}", ++evaluated);
  EXPECT_EQ(evaluated, 2);
  mlog::reset();
  EXPECT_EQ(out.str(), "mycorrizal.node trace trace 1\n"
                       "mycorrizal.node trace limited 2\n");
}
