// SPDX-License-Identifier: Apache-2.0
// Tests for mycorrizal/metrics/registry.hpp: the registry's rules and the
// Prometheus text format 0.0.4, with expected texts written from the
// format's specification.
#include "mycorrizal/metrics/registry.hpp"

#include "mycorrizal/errc.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace metrics = mycorrizal::metrics;
using mycorrizal::errc;

namespace {

TEST(metrics_names, valid_and_invalid) {
  EXPECT_TRUE(metrics::valid_metric_name("mycorrizal_probes_total"));
  EXPECT_TRUE(metrics::valid_metric_name("a:b_c9"));
  EXPECT_TRUE(metrics::valid_metric_name("_x"));
  EXPECT_FALSE(metrics::valid_metric_name(""));
  EXPECT_FALSE(metrics::valid_metric_name("9lives"));
  EXPECT_FALSE(metrics::valid_metric_name("a-b"));
  EXPECT_FALSE(metrics::valid_metric_name("a b"));
  EXPECT_FALSE(metrics::valid_metric_name("é"));
  EXPECT_TRUE(metrics::valid_label_name("state"));
  EXPECT_TRUE(metrics::valid_label_name("_a1"));
  EXPECT_FALSE(metrics::valid_label_name("__reserved"));
  EXPECT_FALSE(metrics::valid_label_name("a:b"));
  EXPECT_FALSE(metrics::valid_label_name("1a"));
  EXPECT_FALSE(metrics::valid_label_name(""));
}

TEST(metrics_format, values) {
  EXPECT_EQ(metrics::format_value(0), "0");
  EXPECT_EQ(metrics::format_value(42), "42");
  EXPECT_EQ(metrics::format_value(-3), "-3");
  EXPECT_EQ(metrics::format_value(0.25), "0.25");
  EXPECT_EQ(metrics::format_value(0.1), "0.1");
  EXPECT_EQ(metrics::format_value(std::numeric_limits<double>::infinity()),
            "+Inf");
  EXPECT_EQ(metrics::format_value(-std::numeric_limits<double>::infinity()),
            "-Inf");
  EXPECT_EQ(metrics::format_value(std::nan("")), "NaN");
  // Large values keep their magnitude (and read back exactly).
  EXPECT_EQ(std::stod(metrics::format_value(1e20)), 1e20);
  EXPECT_EQ(std::stod(metrics::format_value(1.0 / 3)), 1.0 / 3);
}

TEST(metrics_format, escaping) {
  std::string out;
  metrics::escape_label_value(out, "a\\b\"c\nd");
  EXPECT_EQ(out, R"(a\\b\"c\nd)");
  out.clear();
  metrics::escape_help(out, "a\\b\"c\nd");
  EXPECT_EQ(out, R"(a\\b"c\nd)");
}

TEST(metrics_registry, counter_and_gauge_text) {
  metrics::registry reg;
  auto probes = reg.add_counter("mycorrizal_probes_total", "Probes sent.");
  ASSERT_TRUE(probes.has_value()) << to_string(probes.error());
  (*probes)->get()->inc(3);
  auto members = reg.add_gauge("mycorrizal_members", "Members by state.",
                               {"state"});
  ASSERT_TRUE(members.has_value());
  (*members)->with({"alive"})->set(4);
  (*members)->with({"dead"})->set(0);
  (*members)->with({"suspect"})->set(1.5);
  EXPECT_EQ(reg.text(), "# HELP mycorrizal_members Members by state.\n"
                        "# TYPE mycorrizal_members gauge\n"
                        "mycorrizal_members{state=\"alive\"} 4\n"
                        "mycorrizal_members{state=\"dead\"} 0\n"
                        "mycorrizal_members{state=\"suspect\"} 1.5\n"
                        "# HELP mycorrizal_probes_total Probes sent.\n"
                        "# TYPE mycorrizal_probes_total counter\n"
                        "mycorrizal_probes_total 3\n");
}

TEST(metrics_registry, histogram_text_is_cumulative_and_le_inclusive) {
  metrics::registry reg;
  auto h = reg.add_histogram("rt_seconds", "Round trips.", {0.1, 1, 2.5},
                             {"op"});
  ASSERT_TRUE(h.has_value()) << to_string(h.error());
  auto get = (*h)->with({"get"});
  for (double x : {0.05, 0.1, 0.5, 1.0, 3.0}) {
    get->observe(x);
  }
  auto snap = get->read();
  EXPECT_EQ(snap.count(), 5u);
  EXPECT_DOUBLE_EQ(snap.sum, 4.65);
  EXPECT_EQ(reg.text(), "# HELP rt_seconds Round trips.\n"
                        "# TYPE rt_seconds histogram\n"
                        "rt_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"
                        "rt_seconds_bucket{op=\"get\",le=\"1\"} 4\n"
                        "rt_seconds_bucket{op=\"get\",le=\"2.5\"} 4\n"
                        "rt_seconds_bucket{op=\"get\",le=\"+Inf\"} 5\n"
                        "rt_seconds_sum{op=\"get\"} 4.65\n"
                        "rt_seconds_count{op=\"get\"} 5\n");
}

TEST(metrics_registry, const_labels_escaped_values_and_help) {
  metrics::registry reg{{{"node", "n\"1"}}};
  auto c = reg.add_counter("x_total", "Line one\nline \\two", {"peer"});
  ASSERT_TRUE(c.has_value());
  (*c)->with({"a\\b"})->inc();
  EXPECT_EQ(reg.text(), "# HELP x_total Line one\\nline \\\\two\n"
                        "# TYPE x_total counter\n"
                        "x_total{node=\"n\\\"1\",peer=\"a\\\\b\"} 1\n");
}

TEST(metrics_registry, registering_again_returns_the_same_family) {
  metrics::registry reg;
  auto a = reg.add_counter("c_total", "C.", {"kind"});
  auto b = reg.add_counter("c_total", "C.", {"kind"});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->get(), b->get());
  (*a)->with({"x"})->inc();
  (*b)->with({"x"})->inc();
  EXPECT_EQ((*a)->with({"x"})->value(), 2u);
}

TEST(metrics_registry, conflicts_and_bad_definitions_are_errors) {
  metrics::registry reg{{{"node", "n1"}}};
  ASSERT_TRUE(reg.add_counter("c_total", "C.", {"kind"}));
  auto expect_invalid = [](const auto& res, const char* what) {
    ASSERT_FALSE(res.has_value()) << what;
    EXPECT_EQ(res.error().code(), errc::invalid_config) << what;
    EXPECT_FALSE(res.error().context().empty()) << what;
  };
  expect_invalid(reg.add_gauge("c_total", "C.", {"kind"}), "other kind");
  expect_invalid(reg.add_counter("c_total", "Other.", {"kind"}), "other help");
  expect_invalid(reg.add_counter("c_total", "C.", {"type"}), "other labels");
  expect_invalid(reg.add_counter("bad-name", "B."), "bad name");
  expect_invalid(reg.add_counter("ok_total", "B.", {"__x"}), "reserved label");
  expect_invalid(reg.add_counter("ok_total", "B.", {"a", "a"}), "twice");
  expect_invalid(reg.add_counter("ok_total", "B.", {"node"}),
                 "same as a const label");
  expect_invalid(reg.add_histogram("h", "H.", {1, 2}, {"le"}), "le label");
  expect_invalid(reg.add_histogram("h", "H.", {}), "no bounds");
  expect_invalid(reg.add_histogram("h", "H.", {2, 1}), "decreasing");
  expect_invalid(reg.add_histogram("h", "H.", {1, 1}), "equal bounds");
  expect_invalid(
    reg.add_histogram("h", "H.", {1, std::numeric_limits<double>::infinity()}),
    "infinite bound");
}

TEST(metrics_registry, removed_series_leave_the_text_but_stay_usable) {
  metrics::registry reg;
  auto rtt = reg.add_gauge("rtt_seconds", "RTT.", {"peer"});
  ASSERT_TRUE(rtt);
  auto a = (*rtt)->with({"a"});
  (*rtt)->with({"b"})->set(2);
  a->set(1);
  (*rtt)->remove({"a"});
  a->set(5); // harmless
  EXPECT_EQ(reg.text(), "# HELP rtt_seconds RTT.\n"
                        "# TYPE rtt_seconds gauge\n"
                        "rtt_seconds{peer=\"b\"} 2\n");
  (*rtt)->remove({"b"});
  EXPECT_EQ(reg.text(), "") << "a family without series is not written";
  EXPECT_EQ((*rtt)->with({"a"})->value(), 0) << "a new series starts at 0";
}

TEST(metrics_registry, missing_label_values_are_empty) {
  metrics::registry reg;
  auto c = reg.add_counter("c_total", "C.", {"a", "b"});
  ASSERT_TRUE(c);
  (*c)->with({"x"})->inc();
  (*c)->with({"x", "", "ignored"})->inc();
  EXPECT_EQ(reg.text(), "# HELP c_total C.\n"
                        "# TYPE c_total counter\n"
                        "c_total{a=\"x\",b=\"\"} 2\n");
}

TEST(metrics_registry, collectors_are_merged_in_name_order) {
  metrics::registry reg{{{"node", "n1"}}};
  auto m = reg.add_gauge("b_gauge", "B.");
  ASSERT_TRUE(m);
  (*m)->get()->set(7);
  std::vector<metrics::label> lbl{{"socket", "gossip"}};
  auto id = reg.add_collector([&lbl](metrics::collector_sink& s) {
    s.counter("a_total", "A.", lbl, 11);
    s.counter("a_total", "A.", {}, 12);
    s.gauge("b_gauge", "B.", lbl, 8); // joins the registered family
    s.counter("b_gauge", "B.", 9);    // wrong kind: dropped
    s.gauge("c", "C.", 0.5);
    s.gauge("bad name", "X.", 1); // invalid: dropped
  });
  EXPECT_EQ(reg.text(), "# HELP a_total A.\n"
                        "# TYPE a_total counter\n"
                        "a_total{node=\"n1\",socket=\"gossip\"} 11\n"
                        "a_total{node=\"n1\"} 12\n"
                        "# HELP b_gauge B.\n"
                        "# TYPE b_gauge gauge\n"
                        "b_gauge{node=\"n1\"} 7\n"
                        "b_gauge{node=\"n1\",socket=\"gossip\"} 8\n"
                        "# HELP c C.\n"
                        "# TYPE c gauge\n"
                        "c{node=\"n1\"} 0.5\n");
  reg.remove_collector(id);
  EXPECT_EQ(reg.text(), "# HELP b_gauge B.\n"
                        "# TYPE b_gauge gauge\n"
                        "b_gauge{node=\"n1\"} 7\n");
}

TEST(metrics_registry, a_collected_histogram_reads_as_a_registered_one) {
  // The same observations, once in a registered histogram and once as a
  // snapshot a collector reports: one exposition text.
  std::vector<double> bounds{0.001, 0.01, 0.1};
  std::vector<metrics::label> lbl{{"op", "get"}};
  metrics::registry registered{{{"node", "n1"}}};
  auto h = registered.add_histogram("op_seconds", "Ops.", bounds, {"op"});
  ASSERT_TRUE(h.has_value());
  metrics::histogram kept{bounds};
  for (double x : {0.0005, 0.001, 0.05, 0.2, 0.02}) {
    (*h)->with({"get"})->observe(x);
    kept.observe(x);
  }
  metrics::registry collected{{{"node", "n1"}}};
  collected.add_collector([&](metrics::collector_sink& s) {
    s.histogram("op_seconds", "Ops.", lbl, bounds, kept.read());
    // A snapshot that does not match its bounds is dropped.
    s.histogram("bad_seconds", "Bad.", lbl, bounds, {{1, 2}, 0.5});
  });
  EXPECT_EQ(collected.text(), registered.text());
  EXPECT_NE(collected.text().find(
              "op_seconds_bucket{node=\"n1\",op=\"get\",le=\"0.01\"} 2\n"),
            std::string::npos)
    << collected.text();
}

TEST(metrics_counter, set_total_never_goes_down) {
  metrics::counter c;
  c.set_total(10);
  EXPECT_EQ(c.value(), 10u);
  c.set_total(4);
  EXPECT_EQ(c.value(), 10u);
  c.inc();
  EXPECT_EQ(c.value(), 11u);
}

TEST(metrics_buckets, helpers) {
  auto e = metrics::exponential_buckets(1, 2, 4);
  EXPECT_EQ(e, (std::vector<double>{1, 2, 4, 8}));
  auto l = metrics::latency_buckets();
  ASSERT_FALSE(l.empty());
  for (size_t i = 1; i < l.size(); ++i) {
    EXPECT_LT(l[i - 1], l[i]);
  }
  metrics::registry reg;
  EXPECT_TRUE(reg.add_histogram("lat_seconds", "L.", l));
}

TEST(metrics_concurrency, updates_from_many_threads_add_up) {
  metrics::registry reg;
  auto c = reg.add_counter("c_total", "C.", {"t"});
  auto g = reg.add_gauge("g", "G.");
  auto h = reg.add_histogram("h", "H.", {0.5, 1.5});
  ASSERT_TRUE(c && g && h);
  constexpr int threads = 4;
  constexpr int rounds = 20'000;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        // Looked up each time: the family's lookup races with the others.
        (*c)->with({t % 2 == 0 ? "even" : "odd"})->inc();
        (*g)->get()->inc(1);
        (*h)->get()->observe(i % 2);
        if (i % 1000 == 0) {
          static_cast<void>(reg.text());
        }
      }
    });
  }
  for (auto& t : ts) {
    t.join();
  }
  EXPECT_EQ((*c)->with({"even"})->value(), uint64_t{2} * rounds);
  EXPECT_EQ((*c)->with({"odd"})->value(), uint64_t{2} * rounds);
  EXPECT_EQ((*g)->get()->value(), double{threads} * rounds);
  auto snap = (*h)->get()->read();
  EXPECT_EQ(snap.count(), uint64_t{threads} * rounds);
  EXPECT_EQ(snap.cumulative[0], uint64_t{threads} * rounds / 2);
  EXPECT_EQ(snap.sum, double{threads} * rounds / 2);
}

} // namespace
