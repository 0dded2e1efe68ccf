// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <dirent.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace mycorrizal::bench {

bool options::wants(const std::string& part) const {
  return parts.empty()
         || std::find(parts.begin(), parts.end(), part) != parts.end();
}

void random_fill(std::span<std::byte> out) {
  if (gnutls_rnd(GNUTLS_RND_RANDOM, out.data(), out.size()) != 0) {
    throw std::runtime_error("gnutls_rnd failed");
  }
}

namespace {

quic::cert_and_key must(expected<quic::cert_and_key> x, const char* what) {
  if (!x) {
    throw std::runtime_error(std::string{what} + ": " + to_string(x.error()));
  }
  return std::move(*x);
}

} // namespace

pki pki::make() {
  using namespace std::chrono_literals;
  quic::random_bytes rng = [](std::span<std::byte> out) {
    random_fill(out);
  };
  auto start = std::chrono::system_clock::now() - 1h;
  pki p;
  p.ca = must(quic::make_ca({"Mycorrizal Bench CA", start, 24h * 30}, rng),
              "make_ca");
  p.client = must(quic::make_node_cert(p.ca, {"node-a", start, 24h * 7}, rng),
                  "make_node_cert node-a");
  p.server = must(quic::make_node_cert(p.ca, {"node-b", start, 24h * 7}, rng),
                  "make_node_cert node-b");
  return p;
}

size_t rss_bytes() {
  std::ifstream in{"/proc/self/statm"};
  size_t pages_total = 0;
  size_t pages_resident = 0;
  in >> pages_total >> pages_resident;
  return pages_resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

size_t heap_bytes() {
  auto mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

mem_probe mem_probe::now() {
  return {rss_bytes(), heap_bytes()};
}

mem_probe mem_probe::baseline() {
  malloc_trim(0);
  return now();
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto tv = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return tv(ru.ru_utime) + tv(ru.ru_stime);
}

double process_cpu_seconds(int pid) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/stat"};
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) {
    return 0;
  }
  // Fields after the name: state(3) ... utime(14) stime(15), in clock ticks.
  std::istringstream rest{line.substr(close + 2)};
  std::string field;
  double utime = 0;
  double stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) {
      utime = std::stod(field);
    } else if (i == 15) {
      stime = std::stod(field);
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

machine_cpu machine_cpu::now() {
  std::ifstream in{"/proc/stat"};
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
         softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq
    >> steal;
  auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {(user + nice + system + irq + softirq) / ticks, steal / ticks};
}

thread_sample thread_sample::now() {
  std::map<std::string, entry> acc;
  auto ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  if (auto* dir = opendir("/proc/self/task"); dir != nullptr) {
    while (auto* de = readdir(dir)) {
      if (de->d_name[0] == '.') {
        continue;
      }
      std::string base = std::string{"/proc/self/task/"} + de->d_name;
      std::ifstream stat_in{base + "/stat"};
      std::string line;
      std::getline(stat_in, line);
      auto open = line.find('(');
      auto close = line.rfind(')');
      if (open == std::string::npos || close == std::string::npos) {
        continue;
      }
      auto name = line.substr(open + 1, close - open - 1);
      std::istringstream rest{line.substr(close + 2)};
      std::string field;
      double utime = 0;
      double stime = 0;
      // Fields after the name: state(3) ... utime(14) stime(15).
      for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) {
          utime = std::stod(field);
        } else if (i == 15) {
          stime = std::stod(field);
        }
      }
      auto& e = acc[name];
      e.name = name;
      e.cpu += (utime + stime) / ticks;
      e.threads++;
      std::ifstream status_in{base + "/status"};
      while (std::getline(status_in, line)) {
        if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
          e.voluntary += std::stoull(line.substr(24));
        } else if (line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
          e.involuntary += std::stoull(line.substr(27));
        }
      }
    }
    closedir(dir);
  }
  thread_sample out;
  for (auto& [k, v] : acc) {
    out.by_name.push_back(v);
  }
  return out;
}

std::string thread_sample::diff(const thread_sample& before,
                                const thread_sample& after) {
  std::string out;
  for (auto& a : after.by_name) {
    entry b;
    for (auto& x : before.by_name) {
      if (x.name == a.name) {
        b = x;
      }
    }
    auto cpu = a.cpu - b.cpu;
    auto vol = a.voluntary - std::min(a.voluntary, b.voluntary);
    auto inv = a.involuntary - std::min(a.involuntary, b.involuntary);
    if (cpu < 0.005 && vol + inv < 100) {
      continue;
    }
    char buf[200];
    std::snprintf(buf, sizeof(buf),
                  "%s%s x%zu: %.2f s CPU, %llu voluntary / %llu involuntary "
                  "switches",
                  out.empty() ? "" : "; ", a.name.c_str(), a.threads, cpu,
                  static_cast<unsigned long long>(vol),
                  static_cast<unsigned long long>(inv));
    out += buf;
  }
  return out;
}

summary summary::of(std::vector<double> xs) {
  summary s;
  if (xs.empty()) {
    return s;
  }
  std::sort(xs.begin(), xs.end());
  s.n = xs.size();
  auto at = [&](double q) {
    // Nearest rank.
    auto idx
      = static_cast<size_t>(q * static_cast<double>(xs.size() - 1) + 0.5);
    return xs[std::min(idx, xs.size() - 1)];
  };
  s.median = at(0.5);
  s.p99 = at(0.99);
  s.min = xs.front();
  s.max = xs.back();
  s.mean = std::accumulate(xs.begin(), xs.end(), 0.0)
           / static_cast<double>(xs.size());
  return s;
}

void report::add(std::string test, std::string variant, std::string metric,
                 double value, std::string note) {
  rows.push_back({std::move(test), std::move(variant), std::move(metric), value,
                  std::move(note)});
}

void report::aggregate() {
  std::vector<row> merged;
  std::vector<std::vector<double>> values;
  for (auto& r : rows) {
    auto i = std::find_if(merged.begin(), merged.end(), [&](const row& m) {
      return m.test == r.test && m.variant == r.variant && m.metric == r.metric;
    });
    if (i == merged.end()) {
      merged.push_back(r);
      values.push_back({r.value});
    } else {
      values[static_cast<size_t>(i - merged.begin())].push_back(r.value);
    }
  }
  for (size_t k = 0; k < merged.size(); ++k) {
    auto& xs = values[k];
    if (xs.size() < 2) {
      continue;
    }
    auto s = summary::of(xs);
    merged[k].value = s.median;
    char buf[96];
    auto prec = s.max >= 100 ? 0 : (s.max >= 10 ? 1 : 2);
    std::snprintf(buf, sizeof(buf), "median of %zu runs: %.*f-%.*f", xs.size(),
                  prec, s.min, prec, s.max);
    merged[k].note = merged[k].note.empty() ? std::string{buf}
                                            : merged[k].note + " (" + buf + ")";
  }
  rows = std::move(merged);
}

double report::get(const std::string& test, const std::string& variant,
                   const std::string& metric) const {
  for (auto& r : rows) {
    if (r.test == test && r.variant == variant && r.metric == metric) {
      return r.value;
    }
  }
  return -1;
}

void progress(const options& opts, const std::string& line) {
  if (opts.verbose) {
    std::fprintf(stderr, "[bench] %s\n", line.c_str());
  }
}

} // namespace mycorrizal::bench
