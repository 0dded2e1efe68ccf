// SPDX-License-Identifier: Apache-2.0
// gossip_sim_bench: the membership core at scale, in the simulated network
// (tests/support/gossip_sim): convergence after joins, gossip bytes per node
// per second and CPU per node per simulated second at N = 10, 100, 1000.
//
// The baseline is the same simulation at N = 10, run in the same process:
// SWIM promises per-node load independent of N, so the per-node columns at
// N = 100 and 1000 are reported as ratios to N = 10.
//
// Usage: gossip_sim_bench [--sizes 10,100,1000] [--steady 60] [--seed 1]
//                         [--no-push-pull]
#include "mycorrizal/gossip/membership.hpp"

#include "support/gossip_sim.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using namespace std::chrono_literals;
using mycorrizal::test::gossip_sim;

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double secs(duration d) {
  return std::chrono::duration<double>(d).count();
}

struct result {
  size_t n = 0;
  double join_phase_s = 0;
  double converge_s = 0;
  double spread_s = 0;
  double spread_rounds = 0;
  double bytes_per_node_s = 0;
  double tcp_bytes_per_node_s = 0;
  double datagrams_per_node_s = 0;
  double cpu_us_per_node_per_sim_s = 0;
  double sim_speed = 0; // simulated seconds per CPU second
  bool converged = false;
};

result run(size_t n, duration steady, uint64_t seed, bool push_pull) {
  result r;
  r.n = n;
  auto cfg = membership_config::lan_defaults();
  if (!push_pull) {
    // Periodic anti-entropy off (joins still push/pull with their seed).
    cfg.push_pull_interval = duration::zero();
  }
  gossip_sim sim{{.seed = seed, .jitter = 1ms}};
  std::mt19937 rng{static_cast<unsigned>(seed)};
  auto t0 = sim.now();
  // Nodes join through a random earlier node, 10 ms apart.
  sim.add_nodes(n, cfg, seed);
  r.join_phase_s = secs(sim.now() - t0);
  auto last_join = sim.now();
  // Checked every 10 ms of virtual time (the check walks every table).
  r.converged = sim.run_until(
    [&] {
      return sim.converged();
    },
    300s, 10ms);
  r.converge_s = secs(sim.now() - last_join);
  // Let the join-time broadcasts drain.
  sim.run_for(30s);
  // One more join in a settled cluster: how long until every node knows
  // (SWIM's dissemination time, O(log N) gossip rounds). The median of 5
  // joins, 20 s apart.
  std::vector<double> spreads;
  for (int k = 0; k < 5; ++k) {
    auto extra = sim.add_node(cfg);
    std::uniform_int_distribution<size_t> pick{0, n - 1};
    auto t_join = sim.now();
    sim.join(extra, {pick(rng)});
    auto name = sim.name(extra);
    sim.run_until(
      [&] {
        for (size_t i = 0; i < n; ++i) {
          auto* m = sim.core(i).find(name);
          if (m == nullptr || m->state != node_state::alive) {
            return false;
          }
        }
        return true;
      },
      300s, 5ms);
    spreads.push_back(secs(sim.now() - t_join));
    sim.run_for(20s);
  }
  std::sort(spreads.begin(), spreads.end());
  r.spread_s = spreads[spreads.size() / 2];
  r.spread_rounds = r.spread_s / secs(cfg.gossip_interval);
  sim.run_for(10s);
  auto bytes0 = sim.bytes_sent();
  auto tcp0 = sim.stream_bytes();
  auto dgrams0 = sim.datagrams_sent();
  auto cpu0 = cpu_seconds();
  sim.run_for(steady);
  auto cpu = cpu_seconds() - cpu0;
  auto per_node_s = static_cast<double>(sim.size()) * secs(steady);
  r.bytes_per_node_s = static_cast<double>(sim.bytes_sent() - bytes0)
                       / per_node_s;
  r.tcp_bytes_per_node_s = static_cast<double>(sim.stream_bytes() - tcp0)
                           / per_node_s;
  r.datagrams_per_node_s = static_cast<double>(sim.datagrams_sent() - dgrams0)
                           / per_node_s;
  r.cpu_us_per_node_per_sim_s = cpu * 1e6 / per_node_s;
  r.sim_speed = secs(steady) / cpu;
  return r;
}

std::vector<size_t> parse_sizes(const char* s) {
  std::vector<size_t> out;
  std::string text{s};
  size_t pos = 0;
  while (pos < text.size()) {
    auto comma = text.find(',', pos);
    out.push_back(std::stoul(text.substr(pos, comma - pos)));
    if (comma == std::string::npos) {
      break;
    }
    pos = comma + 1;
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes{10, 100, 1000};
  duration steady = 60s;
  uint64_t seed = 1;
  bool push_pull = true;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no-push-pull") == 0) {
      push_pull = false;
    }
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--sizes") == 0) {
      sizes = parse_sizes(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--steady") == 0) {
      steady = std::chrono::seconds{std::stoi(argv[i + 1])};
    } else if (std::strcmp(argv[i], "--seed") == 0) {
      seed = std::stoull(argv[i + 1]);
    }
  }
  std::printf("| N | formation: all see all after the last join | one more "
              "join known by all | in gossip rounds | UDP bytes/node/s "
              "| datagrams/node/s | TCP bytes/node/s (push/pull) | CPU "
              "us/node/sim-s | vs N=%zu | sim "
              "speed (sim-s per CPU-s) |\n",
              sizes.front());
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  double base_cpu = 0;
  for (auto n : sizes) {
    auto r = run(n, steady, seed, push_pull);
    if (base_cpu == 0) {
      base_cpu = r.cpu_us_per_node_per_sim_s;
    }
    std::printf("| %zu | %s%.2f s | %.2f s | %.1f | %.0f | %.2f | %.0f | "
                "%.1f | %.2fx | %.1f |\n",
                r.n, r.converged ? "" : "NOT ", r.converge_s, r.spread_s,
                r.spread_rounds, r.bytes_per_node_s, r.datagrams_per_node_s,
                r.tcp_bytes_per_node_s, r.cpu_us_per_node_per_sim_s,
                r.cpu_us_per_node_per_sim_s / base_cpu, r.sim_speed);
    std::fflush(stdout);
  }
  return 0;
}
