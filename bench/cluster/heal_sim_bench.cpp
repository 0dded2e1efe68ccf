// SPDX-License-Identifier: Apache-2.0
// heal_sim_bench: how fast a partitioned cluster becomes one again, in the
// simulated network (tests/support/gossip_sim), over many seeds: N nodes,
// cut in two halves, held, healed; the time from the heal until every node
// sees every other alive. The baseline in the same run is the same scenario
// with reconnect off (memberlist's behaviour): it does not heal at all.
//
// Usage: heal_sim_bench [--sizes 5,20,100] [--trials 20] [--hold 30]
//                       [--profile lan|local]
#include "mycorrizal/gossip/membership.hpp"

#include "support/gossip_sim.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using namespace std::chrono_literals;
using mycorrizal::test::gossip_sim;

namespace {

double secs(duration d) {
  return std::chrono::duration<double>(d).count();
}

bool split(gossip_sim& sim, size_t half) {
  for (size_t i = 0; i < sim.size(); ++i) {
    for (size_t j = 0; j < sim.size(); ++j) {
      if ((i < half) == (j < half)) {
        continue;
      }
      auto* m = sim.core(i).find(sim.name(j));
      if (m != nullptr && m->state != node_state::dead) {
        return false;
      }
    }
  }
  return true;
}

/// Seconds from heal to one cluster; negative when not within `limit`.
double trial(size_t n, const membership_config& cfg, uint64_t seed,
             duration hold, duration limit) {
  gossip_sim sim{{.seed = seed, .jitter = 200us}};
  sim.add_nodes(n, cfg, seed);
  if (!sim.run_until(
        [&] {
          return sim.all_alive();
        },
        120s, 100ms)) {
    return -2;
  }
  std::vector<size_t> a;
  std::vector<size_t> b;
  for (size_t i = 0; i < n; ++i) {
    (i < n / 2 ? a : b).push_back(i);
  }
  sim.partition(a, b);
  if (!sim.run_until(
        [&] {
          return split(sim, n / 2);
        },
        180s, 100ms)) {
    return -3;
  }
  sim.run_for(hold);
  sim.heal();
  auto at = sim.now();
  if (!sim.run_until(
        [&] {
          return sim.all_alive();
        },
        limit, 50ms)) {
    return -1;
  }
  return secs(sim.now() - at);
}

std::vector<size_t> parse_sizes(const char* text) {
  std::vector<size_t> out;
  std::string s{text};
  size_t pos = 0;
  while (pos < s.size()) {
    auto comma = s.find(',', pos);
    out.push_back(std::stoul(s.substr(pos, comma - pos)));
    pos = comma == std::string::npos ? s.size() : comma + 1;
  }
  return out;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes{5, 20, 100};
  int trials = 20;
  duration hold = 30s;
  std::string profile = "lan";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--sizes") == 0) {
      sizes = parse_sizes(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--trials") == 0) {
      trials = std::stoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--hold") == 0) {
      hold = std::chrono::seconds{std::stoi(argv[i + 1])};
    } else if (std::strcmp(argv[i], "--profile") == 0) {
      profile = argv[i + 1];
    } else {
      std::fprintf(stderr, "unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  auto cfg = profile_defaults(profile);
  if (!cfg) {
    std::fprintf(stderr, "%s\n", to_string(cfg.error()).c_str());
    return 2;
  }
  std::printf("profile %s, reconnect_interval %.0f s, halves cut for the "
              "time both need to see the split plus %.0f s, %d trials\n\n",
              profile.c_str(), secs(cfg->reconnect_interval), secs(hold),
              trials);
  std::printf("| N | healed (reconnect) | p50 s | p90 s | max s | healed "
              "within 300 s, reconnect off |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (auto n : sizes) {
    std::vector<double> times;
    for (int t = 0; t < trials; ++t) {
      auto s = trial(n, *cfg, static_cast<uint64_t>(t + 1), hold,
                     cfg->reconnect_interval * 3);
      if (s >= 0) {
        times.push_back(s);
      }
    }
    std::sort(times.begin(), times.end());
    auto at = [&](double q) {
      if (times.empty()) {
        return -1.0;
      }
      auto idx = static_cast<size_t>(q * static_cast<double>(times.size() - 1));
      return times[idx];
    };
    auto off = *cfg;
    off.reconnect_interval = duration::zero();
    int off_healed = 0;
    int off_trials = std::min(trials, 5);
    for (int t = 0; t < off_trials; ++t) {
      off_healed
        += trial(n, off, static_cast<uint64_t>(t + 1), hold, 300s) >= 0 ? 1 : 0;
    }
    std::printf("| %zu | %zu of %d | %.1f | %.1f | %.1f | %d of %d |\n", n,
                times.size(), trials, at(0.5), at(0.9), at(1.0), off_healed,
                off_trials);
    std::fflush(stdout);
  }
  return 0;
}
