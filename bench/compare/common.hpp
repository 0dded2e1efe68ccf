// SPDX-License-Identifier: Apache-2.0
// Shared pieces of the comparison benchmarks (quic_vs_tls, rpc_baselines):
// options, certificates, clocks, CPU and memory probes, percentiles and the
// result rows the table and JSON print.
#pragma once

#include "mycorrizal/quic/certs.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mycorrizal::bench {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;

/// Sizes and counts of one run (`--quick` shrinks them).
struct options {
  size_t handshakes = 200;
  size_t bulk_bytes = size_t{1} << 30;
  size_t bulk_chunk = size_t{64} << 10;
  size_t msg_size = 1024;
  size_t msgs = 1'000'000;
  size_t parallel_streams = 10;
  size_t idle_connections = 200;
  size_t idle_streams = 1000;
  /// Outstanding write requests per writer actor.
  size_t outstanding = 16;
  /// CAF worker threads.
  size_t workers = 2;
  /// Repetitions of every case; the table shows the median of them.
  size_t repeat = 1;
  bool quick = false;
  bool run_actors = true;
  bool run_raw = true;
  bool run_tls = true;
  /// Which parts: "hs", "bulk", "msg", "mem" (all when empty).
  std::vector<std::string> parts;
  std::string json_path;
  bool verbose = false;
  /// Log levels of the actors (`log::parse_spec`).
  std::string log_spec = "warn";

  bool wants(const std::string& part) const;
};

/// The certificates of the run: one CA, a client ("node-a") and a server
/// ("node-b") certificate, made in memory at start.
struct pki {
  quic::cert_and_key ca;
  quic::cert_and_key client;
  quic::cert_and_key server;
  static pki make();
};

/// Random bytes from GnuTLS (serials, connection ids).
void random_fill(std::span<std::byte> out);

/// Seconds between two time points.
inline double seconds(time_point from, time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// Microseconds between two time points.
inline double micros(time_point from, time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

/// Resident set size of this process (VmRSS), bytes.
size_t rss_bytes();

/// Bytes malloc has handed out and not taken back (all arenas, mallinfo2).
size_t heap_bytes();

/// A memory snapshot.
struct mem_probe {
  size_t rss = 0;
  size_t heap = 0;
  static mem_probe now();
  /// Returns free heap pages to the kernel (`malloc_trim`), then probes: so
  /// that memory freed by earlier tests does not hide the growth.
  static mem_probe baseline();
};

/// CPU time (user + system) of the whole process so far, seconds.
double cpu_seconds();

/// CPU time (user + system, all threads) of another process of this user,
/// e.g. a forked child, from /proc/<pid>/stat; seconds, 0 when unreadable.
double process_cpu_seconds(int pid);

/// CPU seconds all processes of the machine spent busy (/proc/stat: user,
/// nice, system, irq, softirq) and stolen by the hypervisor (steal).
struct machine_cpu {
  double busy = 0;
  double steal = 0;
  static machine_cpu now();
};

/// Per-thread CPU time and context switches from /proc/self/task, summed by
/// thread name; `diff` renders what happened between two samples.
struct thread_sample {
  struct entry {
    std::string name;
    double cpu = 0;
    uint64_t voluntary = 0;
    uint64_t involuntary = 0;
    size_t threads = 0;
  };
  std::vector<entry> by_name;
  static thread_sample now();
  /// e.g. "caf.multiplexer x2: 0.91 s CPU, 52k/1k switches; ...".
  static std::string diff(const thread_sample& before,
                          const thread_sample& after);
};

/// Median, p99, min, max and mean of samples (microseconds).
struct summary {
  size_t n = 0;
  double median = 0;
  double p99 = 0;
  double min = 0;
  double max = 0;
  double mean = 0;
  static summary of(std::vector<double> xs);
};

/// One line of the result table.
struct row {
  std::string test;    ///< e.g. "handshake (mTLS)".
  std::string variant; ///< "QUIC actors", "QUIC core", "TLS/TCP".
  std::string metric;  ///< e.g. "median us".
  double value = 0;
  std::string note;
};

/// Collected results and run facts.
struct report {
  std::vector<row> rows;
  std::vector<std::string> notes;
  void add(std::string test, std::string variant, std::string metric,
           double value, std::string note = {});
  /// Merges rows of the same test, variant and metric (repetitions) into
  /// one with the median value and, for more than one, the range.
  void aggregate();
  /// The value of a row, or a negative number when absent.
  double get(const std::string& test, const std::string& variant,
             const std::string& metric) const;
};

/// Prints a line to stderr when verbose (progress).
void progress(const options& opts, const std::string& line);

} // namespace mycorrizal::bench
