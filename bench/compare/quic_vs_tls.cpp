// SPDX-License-Identifier: Apache-2.0
// quic_vs_tls: Mycorrizal's QUIC transport against GnuTLS TLS 1.3 over TCP,
// measured in the same run on 127.0.0.1 (issue 3). Results and their
// reading: bench/RESULTS.md, section "QUIC transport vs TLS/TCP".
//
//   quic_vs_tls [--quick] [--json FILE] [--only hs,bulk,msg,mem]
//               [--no-actors] [--no-raw] [--no-tls] [--handshakes N]
//               [--bulk-mib N] [--msgs N] [--streams N] [--conns N]
//               [--idle-streams N] [--outstanding N] [--workers N]
//               [--repeat N] [--log SPEC] [-v]
//
// Three variants, all in this process, both ends of every connection too:
// - "QUIC actors": what users get. `spawn_transport` on a `net::reactor`
//   per side (client "node-a", server "node-b"), CAF with `--workers`
//   scheduler threads; a writer actor sends DATA frames with `write_atom`
//   requests to the stream actor (`--outstanding` unanswered at most;
//   after `queue_full` it waits for the stream's `stream_drained`), a
//   consumer actor per accepted stream
//   counts the DATA frames it receives and answers every `stream_frames`.
// - "QUIC core": the same QUIC cores (`quic::endpoint`, ngtcp2 + GnuTLS)
//   without actors, one thread per side over a plain UDP socket (ppoll,
//   recvmmsg, sendmmsg). The difference to "QUIC actors" is the cost of the
//   actors, the reactor and the stream framing.
// - "TLS/TCP": the baseline. GnuTLS TLS 1.3 over TCP (TCP_NODELAY), the
//   same priority string, certificates and mutual authentication, the
//   server on a thread with blocking sockets.
// Certificates (one CA, node-a, node-b; ECDSA P-256) are made in memory at
// start with quic::make_ca / make_node_cert; nothing is written to disk.
//
// Cases (`--only`):
// - hs: sequential handshakes with mutual authentication, each on a new
//   connection. QUIC: dial request until the client is authenticated
//   (connection_info; the core: handshake_completed, i.e. HANDSHAKE_DONE
//   received). TLS/TCP: socket + connect + handshake until the server's first
//   application byte arrives, i.e. until the client knows the server
//   accepted its certificate (what HANDSHAKE_DONE says in QUIC); the
//   client-side handshake alone is reported too.
// - bulk: one stream, one direction, --bulk-mib of payload in 64 KiB
//   writes; from the first write until the receiver has the last byte.
// - msg: 1 KiB DATA frames on one stream (one write request per frame, and
//   batched 16 per request), and on --streams streams of one connection in
//   parallel; TLS/TCP sends the same payloads with a 4-byte length prefix,
//   one record per message, corked (~16 KiB records), and over --streams
//   connections.
// - mem: heap (mallinfo2) and RSS growth per idle connection (--conns from
//   one client to one server, both ends counted) and per idle stream
//   (--idle-streams on one connection, STREAM_INIT sent, both ends).
// CPU s/GB and CPU us/msg are process CPU time (all threads, both ends) over
// the measured interval.
#include "mycorrizal/runtime/log.hpp"

#include "common.hpp"
#include "quic_actors.hpp"
#include "quic_raw.hpp"
#include "tls_tcp.hpp"

#include <gnutls/gnutls.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

using namespace mycorrizal::bench;

namespace {

[[noreturn]] void usage(const char* msg) {
  std::fprintf(
    stderr,
    "%s\nusage: quic_vs_tls [--quick] [--json FILE] [--only hs,bulk,msg,mem]\n"
    "  [--no-actors] [--no-raw] [--no-tls] [--handshakes N] [--bulk-mib N]\n"
    "  [--msgs N] [--streams N] [--conns N] [--idle-streams N]\n"
    "  [--outstanding N] [--workers N] [--repeat N] [--log SPEC] [-v]\n",
    msg);
  std::exit(1);
}

size_t to_size(const char* s) {
  char* end = nullptr;
  auto v = std::strtoull(s, &end, 10);
  if (end == s || *end != '\0') {
    usage("not a number");
  }
  return static_cast<size_t>(v);
}

options parse(int argc, char** argv) {
  options o;
  // --quick first, so that explicit sizes override it in any order.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view{argv[i]} == "--quick") {
      o.quick = true;
      o.handshakes = 20;
      o.bulk_bytes = size_t{32} << 20;
      o.msgs = 20'000;
      o.idle_connections = 20;
      o.idle_streams = 100;
    }
  }
  for (int i = 1; i < argc; ++i) {
    std::string_view a{argv[i]};
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        usage("missing value");
      }
      return argv[++i];
    };
    if (a == "--quick") {
      continue;
    } else if (a == "--json") {
      o.json_path = next();
    } else if (a == "--only") {
      std::stringstream ss{next()};
      std::string part;
      while (std::getline(ss, part, ',')) {
        o.parts.push_back(part);
      }
    } else if (a == "--no-actors") {
      o.run_actors = false;
    } else if (a == "--no-raw") {
      o.run_raw = false;
    } else if (a == "--no-tls") {
      o.run_tls = false;
    } else if (a == "--handshakes") {
      o.handshakes = to_size(next());
    } else if (a == "--bulk-mib") {
      o.bulk_bytes = to_size(next()) << 20;
    } else if (a == "--msgs") {
      o.msgs = to_size(next());
    } else if (a == "--streams") {
      o.parallel_streams = to_size(next());
    } else if (a == "--conns") {
      o.idle_connections = to_size(next());
    } else if (a == "--idle-streams") {
      o.idle_streams = to_size(next());
    } else if (a == "--outstanding") {
      o.outstanding = to_size(next());
    } else if (a == "--workers") {
      o.workers = to_size(next());
    } else if (a == "--repeat") {
      o.repeat = to_size(next());
    } else if (a == "--log") {
      o.log_spec = next();
    } else if (a == "-v" || a == "--verbose") {
      o.verbose = true;
    } else {
      usage("unknown option");
    }
  }
  if (o.handshakes == 0 || o.bulk_bytes == 0 || o.msgs == 0
      || o.parallel_streams == 0 || o.idle_connections == 0
      || o.idle_streams == 0 || o.outstanding == 0 || o.workers == 0
      || o.repeat == 0) {
    usage("counts must be positive");
  }
  return o;
}

std::string fmt_value(double v) {
  char buf[64];
  if (v >= 1e5) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else if (v >= 100) {
    std::snprintf(buf, sizeof(buf), "%.0f", v);
  } else if (v >= 10) {
    std::snprintf(buf, sizeof(buf), "%.1f", v);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f", v);
  }
  return buf;
}

void print_table(const report& r) {
  std::printf("| test | variant | metric | value | note |\n");
  std::printf("|---|---|---|---:|---|\n");
  for (auto& x : r.rows) {
    std::printf("| %s | %s | %s | %s | %s |\n", x.test.c_str(),
                x.variant.c_str(), x.metric.c_str(), fmt_value(x.value).c_str(),
                x.note.c_str());
  }
}

/// One verdict line; `ratio` < 0 when a side is missing.
void verdict(const char* what, double ratio, const char* target, bool ok) {
  if (ratio < 0) {
    std::printf("- %s: n/a\n", what);
    return;
  }
  if (std::string_view{target} == "none") {
    std::printf("- %s: %.2f (no target)\n", what, ratio);
    return;
  }
  std::printf("- %s: %.2f (target %s): %s\n", what, ratio, target,
              ok ? "met" : "NOT met");
}

void print_verdicts(const report& r) {
  std::printf("\nTargets (QUIC actors against TLS/TCP of this run):\n");
  auto ratio = [&](const std::string& test, const char* metric, const char* num,
                   const char* den) {
    auto a = r.get(test, num, metric);
    auto b = r.get(test, den, metric);
    return a < 0 || b <= 0 ? -1.0 : a / b;
  };
  auto hs = ratio("handshake", "median us", "QUIC actors", "TLS/TCP");
  verdict("handshake median, QUIC actors / TLS/TCP", hs, "<= 2", hs <= 2.0);
  auto hs99 = ratio("handshake", "p99 us", "QUIC actors", "TLS/TCP");
  verdict("handshake p99, QUIC actors / TLS/TCP", hs99, "none", true);
  auto bulk = ratio("bulk", "MB/s", "QUIC actors", "TLS/TCP");
  verdict("bulk MB/s, QUIC actors / TLS/TCP", bulk, ">= 0.40", bulk >= 0.40);
  auto raw = ratio("bulk", "MB/s", "QUIC core", "TLS/TCP");
  verdict("bulk MB/s, QUIC core (no actors, sendmmsg) / TLS/TCP", raw,
          ">= 0.40", raw >= 0.40);
  auto gso = ratio("bulk", "MB/s", "QUIC core GSO", "TLS/TCP");
  verdict("bulk MB/s, QUIC core (no actors, GSO/GRO) / TLS/TCP", gso, ">= 0.40",
          gso >= 0.40);
  for (auto& row : r.rows) {
    if (row.variant == "QUIC actors" && row.metric == "msgs/s") {
      auto m = ratio(row.test, "msgs/s", "QUIC actors", "TLS/TCP");
      verdict((row.test + " msgs/s, QUIC actors / TLS/TCP").c_str(), m, "none",
              true);
    }
  }
  auto mem = [&](const char* test, const char* what, double target) {
    auto rss = r.get(test, "QUIC actors", "RSS KiB");
    auto heap = r.get(test, "QUIC actors", "heap KiB");
    if (rss < 0 || heap < 0) {
      return;
    }
    // Both ends are in this process: one end is half.
    std::printf("- %s, one end: %.1f KiB RSS, %.1f KiB heap (both ends: %.1f "
                "/ %.1f) (target <= %.0f KiB): %s\n",
                what, rss / 2, heap / 2, rss, heap, target,
                rss / 2 <= target && heap / 2 <= target ? "met" : "NOT met");
  };
  mem("idle connection (both ends)", "idle connection", 64);
  mem("idle stream (both ends)", "idle stream", 16);
}

std::string json_escape(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      r += '\\';
      r += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      r += ' ';
    } else {
      r += c;
    }
  }
  return r;
}

void write_json(const report& r, const options& o, const std::string& path) {
  std::ofstream out{path};
  out << "{\n  \"quick\": " << (o.quick ? "true" : "false")
      << ",\n  \"rows\": [\n";
  for (size_t i = 0; i < r.rows.size(); ++i) {
    auto& x = r.rows[i];
    out << "    {\"test\": \"" << json_escape(x.test) << "\", \"variant\": \""
        << json_escape(x.variant) << "\", \"metric\": \""
        << json_escape(x.metric) << "\", \"value\": " << x.value
        << ", \"note\": \"" << json_escape(x.note) << "\"}"
        << (i + 1 < r.rows.size() ? ",\n" : "\n");
  }
  out << "  ],\n  \"notes\": [";
  for (size_t i = 0; i < r.notes.size(); ++i) {
    out << (i > 0 ? ", " : "") << '"' << json_escape(r.notes[i]) << '"';
  }
  out << "]\n}\n";
}

} // namespace

int main(int argc, char** argv) {
  auto opts = parse(argc, argv);
  gnutls_global_init();
  auto log_cfg = mycorrizal::log::parse_spec(opts.log_spec);
  if (!log_cfg || !mycorrizal::log::apply(*log_cfg)) {
    usage("bad --log spec");
  }
  report rep;
  std::vector<std::string> part_notes;
  try {
    auto certs = pki::make();
    // Part by part, and within a part the variants one after the other per
    // repetition, so that a burst of load on the machine hits all of them.
    std::vector<std::string> parts = {"hs", "bulk", "msg", "mem"};
    for (auto& part : parts) {
      if (!opts.wants(part)) {
        continue;
      }
      auto one = opts;
      one.parts = {part};
      auto m0 = machine_cpu::now();
      auto own0 = cpu_seconds();
      auto w0 = clock_type::now();
      for (size_t i = 0; i < opts.repeat; ++i) {
        // Notes (counters, threads) of the last repetition only.
        rep.notes.clear();
        if (opts.run_tls) {
          run_tls(one, certs, rep);
        }
        if (opts.run_raw) {
          run_raw(one, certs, rep);
        }
        if (opts.run_actors) {
          run_actors(one, certs, rep);
        }
      }
      auto m1 = machine_cpu::now();
      auto wall = seconds(w0, clock_type::now());
      auto others = (m1.busy - m0.busy) - (cpu_seconds() - own0);
      char buf[200];
      std::snprintf(buf, sizeof(buf),
                    "part %s: %.1f s; other processes used %.2f cores on "
                    "average, hypervisor steal %.2f cores",
                    part.c_str(), wall, std::max(0.0, others) / wall,
                    (m1.steal - m0.steal) / wall);
      rep.notes.emplace_back(buf);
      part_notes.insert(part_notes.end(), rep.notes.begin(), rep.notes.end());
      rep.notes.clear();
    }
    rep.notes = std::move(part_notes);
    rep.aggregate();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quic_vs_tls: %s\n", e.what());
    return 2;
  }
  print_table(rep);
  for (auto& n : rep.notes) {
    std::printf("\n- %s", n.c_str());
  }
  std::printf("\n");
  print_verdicts(rep);
  if (!opts.json_path.empty()) {
    write_json(rep, opts, opts.json_path);
  }
  return 0;
}
