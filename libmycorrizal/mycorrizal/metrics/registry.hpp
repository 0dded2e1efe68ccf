// SPDX-License-Identifier: Apache-2.0
// Counters, gauges and histograms with labels, and their Prometheus text
// exposition (format 0.0.4).
#pragma once

#include "mycorrizal/expected.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

/// The metrics of one node (or of anything else that wants them): a
/// `registry` holds *families* (one metric name, its help text, its label
/// names), each family holds one *series* per combination of label values.
///
/// - Updating a series is one relaxed atomic operation (a histogram: two,
///   plus a CAS loop for its sum); any thread may update any series.
///   Looking a series up by its label values takes the family's mutex:
///   hot paths look up once and keep the `std::shared_ptr`.
/// - Removing a series (a peer that left) takes it out of the exposition;
///   whoever still holds it may go on updating it harmlessly.
/// - Collectors are functions run at exposition time for values that are
///   read rather than counted along (a socket's counters, a store's size).
///   They run on the thread that asks for the text and must be thread-safe.
///
/// Names follow Prometheus: `[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics,
/// `[a-zA-Z_][a-zA-Z0-9_]*` (not starting with `__`) for labels. Registering
/// a name again with the same kind, help and label names returns the same
/// family, so that every actor of a kind can register what it reports;
/// registering it with anything else is an error.
///
/// Pure: no clock, no I/O.
namespace mycorrizal::metrics {

/// The values of a series' labels, in the order of the family's label names.
using label_values = std::vector<std::string>;

/// A name/value pair of a label.
using label = std::pair<std::string, std::string>;

/// A count that only goes up (`_total` by convention).
class counter {
public:
  void inc(uint64_t n = 1) noexcept {
    value_.fetch_add(n, std::memory_order_relaxed);
  }

  /// For a count kept elsewhere (a socket's counters): the new total. A
  /// total below the current value is ignored (counters never go down).
  void set_total(uint64_t total) noexcept;

  uint64_t value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<uint64_t> value_{0};
};

/// A value that goes up and down.
class gauge {
public:
  void set(double x) noexcept {
    value_.store(x, std::memory_order_relaxed);
  }

  void inc(double x = 1) noexcept {
    value_.fetch_add(x, std::memory_order_relaxed);
  }

  void dec(double x = 1) noexcept {
    value_.fetch_add(-x, std::memory_order_relaxed);
  }

  double value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

private:
  std::atomic<double> value_{0};
};

/// Observations counted into buckets with fixed upper bounds (and +Inf),
/// with their sum.
class histogram {
public:
  /// `bounds` must be strictly increasing and finite (the family checks).
  explicit histogram(std::span<const double> bounds);

  void observe(double x) noexcept;

  /// Cumulative counts per bound (the last one is +Inf, i.e. the count),
  /// and the sum. Taken without stopping writers: a concurrent observation
  /// may be in the counts but not yet in the sum.
  struct snapshot {
    std::vector<uint64_t> cumulative;
    double sum = 0;

    uint64_t count() const noexcept {
      return cumulative.empty() ? 0 : cumulative.back();
    }
  };

  snapshot read() const;

  std::span<const double> bounds() const noexcept {
    return bounds_;
  }

private:
  std::vector<double> bounds_;
  /// One per bound, plus one for +Inf; not cumulative.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

/// Bucket bounds in seconds for latencies from 50 µs to 10 s.
std::vector<double> latency_buckets();

/// `count` bounds starting at `start`, each `factor` times the one before.
std::vector<double> exponential_buckets(double start, double factor,
                                        size_t count);

enum class kind : uint8_t { counter, gauge, histogram };

/// "counter", "gauge" or "histogram".
std::string_view to_string(kind k) noexcept;

/// What a collector reports: whole families, read at exposition time.
class collector_sink {
public:
  collector_sink() = default;
  collector_sink(const collector_sink&) = delete;
  collector_sink& operator=(const collector_sink&) = delete;
  collector_sink(collector_sink&&) = delete;
  collector_sink& operator=(collector_sink&&) = delete;
  virtual ~collector_sink();

  /// One sample of family `name`. Samples of one family must agree on kind
  /// and help; label names may differ between samples only in value.
  virtual void counter(std::string_view name, std::string_view help,
                       std::span<const label> labels, uint64_t value)
    = 0;

  virtual void gauge(std::string_view name, std::string_view help,
                     std::span<const label> labels, double value)
    = 0;

  /// A histogram series kept elsewhere: `snap.cumulative` holds one count
  /// per bound plus the +Inf count (as `histogram::read` returns it). A
  /// snapshot whose size does not match `bounds` is dropped.
  virtual void histogram(std::string_view name, std::string_view help,
                         std::span<const label> labels,
                         std::span<const double> bounds,
                         const metrics::histogram::snapshot& snap)
    = 0;

  /// Convenience for unlabeled samples.
  void counter(std::string_view name, std::string_view help, uint64_t value) {
    counter(name, help, {}, value);
  }

  void gauge(std::string_view name, std::string_view help, double value) {
    gauge(name, help, {}, value);
  }
};

/// A function that reports values at exposition time.
using collector = std::function<void(collector_sink&)>;

/// One metric name with its help text and label names, and its series.
template <class Metric>
class family {
public:
  family(std::string name, std::string help, std::vector<std::string> labels,
         std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)),
        label_names_(std::move(labels)), bounds_(std::move(bounds)) {
    // nop
  }

  /// The series for `values` (as many as the family has label names;
  /// missing ones are empty, extra ones ignored), created on first use.
  std::shared_ptr<Metric> with(std::span<const std::string_view> values);

  std::shared_ptr<Metric> with(std::initializer_list<std::string_view> values) {
    return with(std::span{values.begin(), values.size()});
  }

  /// The series without labels (families without label names).
  std::shared_ptr<Metric> get() {
    return with(std::span<const std::string_view>{});
  }

  /// Takes the series for `values` out of the exposition.
  void remove(std::span<const std::string_view> values);

  void remove(std::initializer_list<std::string_view> values) {
    remove(std::span{values.begin(), values.size()});
  }

  const std::string& name() const noexcept {
    return name_;
  }

  const std::string& help() const noexcept {
    return help_;
  }

  const std::vector<std::string>& label_names() const noexcept {
    return label_names_;
  }

  const std::vector<double>& bounds() const noexcept {
    return bounds_;
  }

  /// Series in label order, for the exposition.
  std::vector<std::pair<label_values, std::shared_ptr<Metric>>> series() const;

private:
  label_values key_of(std::span<const std::string_view> values) const;

  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;
  mutable std::mutex mtx_;
  std::map<label_values, std::shared_ptr<Metric>, std::less<>> series_;
};

using counter_family = family<counter>;
using gauge_family = family<gauge>;
using histogram_family = family<histogram>;

/// A registry's families and collectors; see the namespace comment.
class registry {
public:
  /// `const_labels` go on every sample this registry writes, first (e.g.
  /// `{"node", "n1"}` when one process exposes several nodes).
  explicit registry(std::vector<label> const_labels = {});

  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;
  registry(registry&&) = delete;
  registry& operator=(registry&&) = delete;
  ~registry() = default;

  /// Registers (or finds) a family.
  /// @returns `errc::invalid_config` for an invalid metric or label name,
  ///          duplicate label names, bad histogram bounds, or a name that
  ///          is registered with another kind, help or label names.
  expected<std::shared_ptr<counter_family>>
  add_counter(std::string_view name, std::string_view help,
              std::vector<std::string> labels = {});

  expected<std::shared_ptr<gauge_family>>
  add_gauge(std::string_view name, std::string_view help,
            std::vector<std::string> labels = {});

  expected<std::shared_ptr<histogram_family>>
  add_histogram(std::string_view name, std::string_view help,
                std::vector<double> bounds,
                std::vector<std::string> labels = {});

  /// Adds a collector; returns its id for `remove_collector`.
  uint64_t add_collector(collector f);

  void remove_collector(uint64_t id);

  /// Everything, in the Prometheus text format 0.0.4 (families sorted by
  /// name, series by label values; collectors' families merged in).
  std::string text() const;

  /// `text()` with `extra` run as one more collector (values gathered for
  /// this exposition only).
  std::string text(const collector& extra) const;

  const std::vector<label>& const_labels() const noexcept {
    return const_labels_;
  }

private:
  struct entry {
    kind what;
    std::shared_ptr<void> fam;
    std::string help;
    std::vector<std::string> labels;
  };

  expected<std::shared_ptr<void>>
  add(kind what, std::string_view name, std::string_view help,
      std::vector<std::string> labels, std::vector<double> bounds);

  std::vector<label> const_labels_;
  mutable std::mutex mtx_;
  std::map<std::string, entry, std::less<>> families_;
  std::map<uint64_t, collector> collectors_;
  uint64_t next_collector_ = 1;
};

/// Whether `name` is a valid metric name.
bool valid_metric_name(std::string_view name) noexcept;

/// Whether `name` is a valid label name.
bool valid_label_name(std::string_view name) noexcept;

/// A sample value as Prometheus writes it: integers without a fraction,
/// `+Inf`, `-Inf`, `NaN`, otherwise the shortest text that reads back.
std::string format_value(double x);

/// Appends `x` escaped for a label value (`\\`, `\"`, `\n`).
void escape_label_value(std::string& out, std::string_view x);

/// Appends `x` escaped for a HELP line (`\\`, `\n`).
void escape_help(std::string& out, std::string_view x);

} // namespace mycorrizal::metrics
