// SPDX-License-Identifier: Apache-2.0
// The floor under bench/idle/idle_cpu.py: a CAF actor system with no actors
// of ours, CAF's default scheduler settings unless told otherwise, until
// SIGTERM or SIGINT. What its threads spend idle is what any host of a
// node spends before the node adds anything.
//
//   caf_idle_floor [--node-settings]
//
// --node-settings: the scheduler settings mycorrizal-node uses (two
// workers on two cores, no moderate polling, 50 ms relaxed sleeps).

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>

int main(int argc, char** argv) {
  bool node_settings = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--node-settings") == 0) {
      node_settings = true;
    } else {
      std::fprintf(stderr, "usage: caf_idle_floor [--node-settings]\n");
      return 2;
    }
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  caf::actor_system_config cfg;
  cfg.set("logger.verbosity", caf::atom("quiet"));
  if (node_settings) {
    cfg.set("scheduler.max-threads",
            std::max(size_t{2}, size_t{std::thread::hardware_concurrency()}));
    cfg.set("work-stealing.moderate-poll-attempts", size_t{0});
    cfg.set("work-stealing.relaxed-sleep-duration",
            caf::timespan{std::chrono::milliseconds{50}});
  }
  caf::actor_system sys{cfg};
  std::puts("ready");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  return 0;
}
