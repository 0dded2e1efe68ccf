// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/metrics/registry.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace mycorrizal::metrics {

// -- counter ------------------------------------------------------------------

void counter::set_total(uint64_t total) noexcept {
  auto cur = value_.load(std::memory_order_relaxed);
  while (
    total > cur
    && !value_.compare_exchange_weak(cur, total, std::memory_order_relaxed)) {
    // cur reloaded
  }
}

// -- histogram ----------------------------------------------------------------

histogram::histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds.size() + 1)) {
  // nop
}

void histogram::observe(double x) noexcept {
  // `le` is inclusive: an observation equal to a bound counts in it.
  auto i = static_cast<size_t>(
    std::lower_bound(bounds_.begin(), bounds_.end(), x) - bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(x, std::memory_order_relaxed);
}

histogram::snapshot histogram::read() const {
  snapshot out;
  out.cumulative.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    out.cumulative[i] = total;
  }
  out.sum = sum_.load(std::memory_order_relaxed);
  return out;
}

std::vector<double> latency_buckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

std::vector<double> exponential_buckets(double start, double factor,
                                        size_t count) {
  std::vector<double> out;
  out.reserve(count);
  auto x = start;
  for (size_t i = 0; i < count; ++i) {
    out.push_back(x);
    x *= factor;
  }
  return out;
}

std::string_view to_string(kind k) noexcept {
  switch (k) {
    case kind::counter: return "counter";
    case kind::gauge: return "gauge";
    case kind::histogram: return "histogram";
  }
  return "untyped";
}

collector_sink::~collector_sink() = default;

// -- family -------------------------------------------------------------------

template <class Metric>
label_values
family<Metric>::key_of(std::span<const std::string_view> values) const {
  label_values key(label_names_.size());
  for (size_t i = 0; i < key.size() && i < values.size(); ++i) {
    key[i] = std::string{values[i]};
  }
  return key;
}

template <class Metric>
std::shared_ptr<Metric>
family<Metric>::with(std::span<const std::string_view> values) {
  auto key = key_of(values);
  std::lock_guard guard{mtx_};
  auto i = series_.find(key);
  if (i != series_.end()) {
    return i->second;
  }
  std::shared_ptr<Metric> m;
  if constexpr (std::is_same_v<Metric, histogram>) {
    m = std::make_shared<histogram>(bounds_);
  } else {
    m = std::make_shared<Metric>();
  }
  series_.emplace(std::move(key), m);
  return m;
}

template <class Metric>
void family<Metric>::remove(std::span<const std::string_view> values) {
  auto key = key_of(values);
  std::lock_guard guard{mtx_};
  series_.erase(key);
}

template <class Metric>
std::vector<std::pair<label_values, std::shared_ptr<Metric>>>
family<Metric>::series() const {
  std::lock_guard guard{mtx_};
  return {series_.begin(), series_.end()};
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

// -- names and formatting -----------------------------------------------------

namespace {

bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

} // namespace

bool valid_metric_name(std::string_view name) noexcept {
  if (name.empty()) {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = name[i];
    if (!is_alpha(c) && c != '_' && c != ':' && (i == 0 || !is_digit(c))) {
      return false;
    }
  }
  return true;
}

bool valid_label_name(std::string_view name) noexcept {
  if (name.empty() || name.starts_with("__")) {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = name[i];
    if (!is_alpha(c) && c != '_' && (i == 0 || !is_digit(c))) {
      return false;
    }
  }
  return true;
}

std::string format_value(double x) {
  if (std::isnan(x)) {
    return "NaN";
  }
  if (std::isinf(x)) {
    return x > 0 ? "+Inf" : "-Inf";
  }
  if (x == std::trunc(x) && std::fabs(x) < 1e15) {
    return fmt::format("{}", static_cast<int64_t>(x));
  }
  return fmt::format("{}", x);
}

void escape_label_value(std::string& out, std::string_view x) {
  for (auto c : x) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

void escape_help(std::string& out, std::string_view x) {
  for (auto c : x) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

// -- registry -----------------------------------------------------------------

registry::registry(std::vector<label> const_labels)
    : const_labels_(std::move(const_labels)) {
  // nop
}

expected<std::shared_ptr<void>>
registry::add(kind what, std::string_view name, std::string_view help,
              std::vector<std::string> labels, std::vector<double> bounds) {
  if (!valid_metric_name(name)) {
    return unexpected{error{errc::invalid_config,
                            fmt::format("invalid metric name '{}'", name)}};
  }
  std::set<std::string_view> seen;
  for (const auto& [k, v] : const_labels_) {
    seen.insert(k);
  }
  for (const auto& l : labels) {
    if (!valid_label_name(l) || l == "le") {
      return unexpected{
        error{errc::invalid_config,
              fmt::format("metric '{}': invalid label name '{}'", name, l)}};
    }
    if (!seen.insert(l).second) {
      return unexpected{
        error{errc::invalid_config,
              fmt::format("metric '{}': label '{}' given twice", name, l)}};
    }
  }
  if (what == kind::histogram) {
    bool ok = !bounds.empty();
    for (size_t i = 0; ok && i < bounds.size(); ++i) {
      ok = std::isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
    }
    if (!ok) {
      return unexpected{
        error{errc::invalid_config,
              fmt::format(
                "histogram '{}': bounds must be finite and increasing", name)}};
    }
  }
  std::lock_guard guard{mtx_};
  if (auto i = families_.find(name); i != families_.end()) {
    const auto& e = i->second;
    if (e.what != what || e.help != help || e.labels != labels) {
      return unexpected{error{
        errc::invalid_config,
        fmt::format("metric '{}' is already registered as a {} with other "
                    "help or labels",
                    name, to_string(e.what))}};
    }
    return e.fam;
  }
  std::shared_ptr<void> fam;
  switch (what) {
    case kind::counter:
      fam = std::make_shared<counter_family>(std::string{name},
                                             std::string{help}, labels);
      break;
    case kind::gauge:
      fam = std::make_shared<gauge_family>(std::string{name}, std::string{help},
                                           labels);
      break;
    case kind::histogram:
      fam = std::make_shared<histogram_family>(
        std::string{name}, std::string{help}, labels, std::move(bounds));
      break;
  }
  families_.emplace(std::string{name},
                    entry{what, fam, std::string{help}, std::move(labels)});
  return fam;
}

expected<std::shared_ptr<counter_family>>
registry::add_counter(std::string_view name, std::string_view help,
                      std::vector<std::string> labels) {
  auto f = add(kind::counter, name, help, std::move(labels), {});
  if (!f) {
    return unexpected{f.error()};
  }
  return std::static_pointer_cast<counter_family>(*f);
}

expected<std::shared_ptr<gauge_family>>
registry::add_gauge(std::string_view name, std::string_view help,
                    std::vector<std::string> labels) {
  auto f = add(kind::gauge, name, help, std::move(labels), {});
  if (!f) {
    return unexpected{f.error()};
  }
  return std::static_pointer_cast<gauge_family>(*f);
}

expected<std::shared_ptr<histogram_family>>
registry::add_histogram(std::string_view name, std::string_view help,
                        std::vector<double> bounds,
                        std::vector<std::string> labels) {
  auto f = add(kind::histogram, name, help, std::move(labels),
               std::move(bounds));
  if (!f) {
    return unexpected{f.error()};
  }
  return std::static_pointer_cast<histogram_family>(*f);
}

uint64_t registry::add_collector(collector f) {
  std::lock_guard guard{mtx_};
  auto id = next_collector_++;
  collectors_.emplace(id, std::move(f));
  return id;
}

void registry::remove_collector(uint64_t id) {
  std::lock_guard guard{mtx_};
  collectors_.erase(id);
}

namespace {

/// Appends `{const..., names=values..., extra}` (nothing when all are
/// empty).
void append_labels(std::string& out, std::span<const label> head,
                   std::span<const std::string> names,
                   std::span<const std::string> values,
                   std::span<const label> tail) {
  bool first = true;
  auto one = [&](std::string_view k, std::string_view v) {
    out += first ? '{' : ',';
    first = false;
    out += k;
    out += "=\"";
    escape_label_value(out, v);
    out += '"';
  };
  for (const auto& [k, v] : head) {
    one(k, v);
  }
  for (size_t i = 0; i < names.size(); ++i) {
    one(names[i], i < values.size() ? std::string_view{values[i]} : "");
  }
  for (const auto& [k, v] : tail) {
    one(k, v);
  }
  if (!first) {
    out += '}';
  }
}

void append_header(std::string& out, std::string_view name,
                   std::string_view help, kind what) {
  out += "# HELP ";
  out += name;
  out += ' ';
  escape_help(out, help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += to_string(what);
  out += '\n';
}

/// What collectors reported, by family name.
struct collected_family {
  kind what = kind::gauge;
  std::string help;
  /// Each line without its name: `{labels} value`.
  std::vector<std::string> samples;
};

class sink_impl final : public collector_sink {
public:
  using collector_sink::counter;
  using collector_sink::gauge;

  explicit sink_impl(std::span<const label> consts) : consts_(consts) {
    // nop
  }

  void counter(std::string_view name, std::string_view help,
               std::span<const label> labels, uint64_t value) override {
    add(kind::counter, name, help, labels, fmt::format("{}", value));
  }

  void gauge(std::string_view name, std::string_view help,
             std::span<const label> labels, double value) override {
    add(kind::gauge, name, help, labels, format_value(value));
  }

  void histogram(std::string_view name, std::string_view help,
                 std::span<const label> labels, std::span<const double> bounds,
                 const metrics::histogram::snapshot& snap) override {
    if (snap.cumulative.size() != bounds.size() + 1) {
      return;
    }
    std::vector<label> with_le(labels.begin(), labels.end());
    with_le.emplace_back("le", "");
    for (size_t i = 0; i <= bounds.size(); ++i) {
      with_le.back().second = i < bounds.size() ? format_value(bounds[i])
                                                : "+Inf";
      add(kind::histogram, name, help, with_le,
          fmt::format("{}", snap.cumulative[i]), "_bucket");
    }
    add(kind::histogram, name, help, labels, format_value(snap.sum), "_sum");
    add(kind::histogram, name, help, labels, fmt::format("{}", snap.count()),
        "_count");
  }

  std::map<std::string, collected_family, std::less<>> families;

private:
  void add(kind what, std::string_view name, std::string_view help,
           std::span<const label> labels, const std::string& value,
           std::string_view suffix = {}) {
    if (!valid_metric_name(name)) {
      return;
    }
    for (const auto& l : labels) {
      if (!valid_label_name(l.first)) {
        return;
      }
    }
    auto i = families.find(name);
    if (i == families.end()) {
      i = families
            .emplace(std::string{name},
                     collected_family{what, std::string{help}, {}})
            .first;
    } else if (i->second.what != what) {
      return; // one family, one kind
    }
    std::string line{suffix};
    append_labels(line, consts_, {}, {}, labels);
    line += ' ';
    line += value;
    i->second.samples.push_back(std::move(line));
  }

  std::span<const label> consts_;
};

template <class Metric>
void write_series(std::string& out, const family<Metric>& fam,
                  std::span<const label> consts) {
  const auto& name = fam.name();
  for (const auto& [values, m] : fam.series()) {
    if constexpr (std::is_same_v<Metric, histogram>) {
      auto snap = m->read();
      auto bounds = m->bounds();
      for (size_t i = 0; i <= bounds.size(); ++i) {
        label le{"le", i < bounds.size() ? format_value(bounds[i]) : "+Inf"};
        out += name;
        out += "_bucket";
        append_labels(out, consts, fam.label_names(), values,
                      std::span{&le, 1});
        out += fmt::format(" {}\n", snap.cumulative[i]);
      }
      out += name;
      out += "_sum";
      append_labels(out, consts, fam.label_names(), values, {});
      out += ' ';
      out += format_value(snap.sum);
      out += '\n';
      out += name;
      out += "_count";
      append_labels(out, consts, fam.label_names(), values, {});
      out += fmt::format(" {}\n", snap.count());
    } else {
      out += name;
      append_labels(out, consts, fam.label_names(), values, {});
      out += ' ';
      if constexpr (std::is_same_v<Metric, counter>) {
        out += fmt::format("{}", m->value());
      } else {
        out += format_value(m->value());
      }
      out += '\n';
    }
  }
}

} // namespace

std::string registry::text() const {
  return text(collector{});
}

std::string registry::text(const collector& extra) const {
  std::map<std::string, entry, std::less<>> fams;
  std::vector<collector> cols;
  {
    std::lock_guard guard{mtx_};
    fams = families_;
    for (const auto& [id, f] : collectors_) {
      cols.push_back(f);
    }
  }
  sink_impl sink{const_labels_};
  for (const auto& f : cols) {
    f(sink);
  }
  if (extra) {
    extra(sink);
  }
  std::string out;
  auto i = fams.begin();
  auto j = sink.families.begin();
  while (i != fams.end() || j != sink.families.end()) {
    bool take_registered = j == sink.families.end()
                           || (i != fams.end() && i->first <= j->first);
    if (take_registered) {
      std::string body;
      switch (i->second.what) {
        case kind::counter:
          write_series(body,
                       *std::static_pointer_cast<counter_family>(i->second.fam),
                       const_labels_);
          break;
        case kind::gauge:
          write_series(body,
                       *std::static_pointer_cast<gauge_family>(i->second.fam),
                       const_labels_);
          break;
        case kind::histogram:
          write_series(
            body, *std::static_pointer_cast<histogram_family>(i->second.fam),
            const_labels_);
          break;
      }
      // A collector's samples under a registered name of the same kind.
      if (j != sink.families.end() && j->first == i->first) {
        if (j->second.what == i->second.what) {
          for (const auto& s : j->second.samples) {
            body += i->first;
            body += s;
            body += '\n';
          }
        }
        ++j;
      }
      if (!body.empty()) {
        append_header(out, i->first, i->second.help, i->second.what);
        out += body;
      }
      ++i;
    } else {
      append_header(out, j->first, j->second.help, j->second.what);
      for (const auto& s : j->second.samples) {
        out += j->first;
        out += s;
        out += '\n';
      }
      ++j;
    }
  }
  return out;
}

} // namespace mycorrizal::metrics
