// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/gossip/membership.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

/// A simulated network of membership cores in virtual time (STYLE.md §C.2,
/// after ngtcp2's examples/sim.h): one event queue, per-datagram latency,
/// seeded loss, partitions, crashes and nodes whose processing runs late.
/// TCP exchanges are delivered reliably unless a partition or a crash is in
/// the way, in which case the core's own deadline ends them.
namespace mycorrizal::test {

class gossip_sim {
public:
  struct options {
    uint64_t seed = 1;
    /// One-way delay of every datagram and TCP segment.
    duration latency = std::chrono::microseconds{200};
    /// Extra uniformly random delay in [0, jitter].
    duration jitter = duration::zero();
    /// Probability that a datagram is lost.
    double loss = 0.0;
  };

  /// An event a node raised, stamped with virtual time.
  struct observed {
    time_point at;
    size_t observer;
    gossip::member_event event;
  };

  explicit gossip_sim(options opts);
  ~gossip_sim();

  /// Adds a node named `node-<index>` with `cfg` (name, advertise and seed
  /// are filled in) at the current time. Returns its index.
  size_t add_node(gossip::membership_config cfg);

  /// Adds `n` nodes with `cfg`, `spacing` apart in virtual time; each but
  /// the first joins through a random earlier node (drawn from
  /// `join_seed`).
  void add_nodes(size_t n, const gossip::membership_config& cfg,
                 uint64_t join_seed,
                 duration spacing = std::chrono::milliseconds{10});

  /// Node `i` joins through the nodes in `seeds`.
  void join(size_t i, const std::vector<size_t>& seeds);

  /// Crashes node `i`: it neither sends nor receives from now on.
  void crash(size_t i);

  /// Starts node `i` again as a new process: a fresh core with the same
  /// name, address and settings (incarnation 1, empty table). It has to
  /// `join` to find the others.
  void restart(size_t i);

  /// Gracefully leaves: node `i` gossips its leave (timeout `t`), and is
  /// crashed when that completes.
  void leave(size_t i, duration t);

  /// Datagrams between the two groups are lost until `heal`.
  void partition(const std::vector<size_t>& a, const std::vector<size_t>& b);
  void heal();

  /// Node `i` stops for `d` (SIGSTOP, then SIGCONT): no timer runs and no
  /// input is read meanwhile; then its overdue timers fire first, then it
  /// reads what arrived.
  void pause(size_t i, duration d);

  /// Node `i` handles every input `delay` late, while its clock and timers
  /// run on time: a CPU-starved process whose receive queue backs up
  /// (Lifeguard's "slow message processing").
  void set_processing_delay(size_t i, duration delay);

  /// Advances virtual time by `d`, running every event due.
  void run_for(duration d);

  /// Runs until `done()` holds or `limit` of virtual time passed. `done()`
  /// is checked after each event, or at most once per `check_every` of
  /// virtual time when that is set (for expensive checks at large N).
  /// Returns whether `done()` held.
  bool run_until(const std::function<bool()>& done, duration limit,
                 duration check_every = duration::zero());

  time_point now() const noexcept {
    return now_;
  }

  size_t size() const noexcept {
    return nodes_.size();
  }

  gossip::membership& core(size_t i);

  bool crashed(size_t i) const;

  std::string name(size_t i) const;

  /// How many other nodes node `i` sees alive (suspect counts as alive).
  size_t alive_view(size_t i) const;

  /// Whether every live node sees every other live node alive or suspect.
  bool converged() const;

  /// Whether every live node sees every other live node alive (not
  /// suspect): a cluster after a heal.
  bool all_alive() const;

  /// Events raised so far.
  const std::vector<observed>& events() const noexcept {
    return events_;
  }

  /// Join results per node (the last one).
  const gossip::join_completed* join_result(size_t i) const;

  /// Total datagram bytes sent by live nodes.
  uint64_t bytes_sent() const noexcept {
    return bytes_sent_;
  }

  /// Total bytes of TCP exchanges (push/pull and TCP pings, both ways).
  uint64_t stream_bytes() const noexcept {
    return stream_bytes_;
  }

  /// Total datagrams sent and lost.
  uint64_t datagrams_sent() const noexcept {
    return datagrams_sent_;
  }

  uint64_t datagrams_lost() const noexcept {
    return datagrams_lost_;
  }

  /// A human-readable view of node `i`'s table, for failure messages.
  std::string describe(size_t i) const;

  /// `describe` of every node, one a line.
  std::string describe_all() const;

private:
  struct node;
  struct event;
  struct event_order {
    bool operator()(const event& a, const event& b) const;
  };

  void push(event e);
  void process(event& e);
  void drain(size_t i);
  void rearm(size_t i);
  bool blocked(size_t a, size_t b) const;
  /// Whether `ok` holds for how each live node sees each other live one
  /// (null: not in its table).
  bool
  every_live_pair(const std::function<bool(const gossip::member*)>& ok) const;
  duration delay();
  size_t index_of(const ip_endpoint& ep) const;

  options opts_;
  std::mt19937_64 rng_;
  time_point now_{};
  uint64_t seq_ = 0;
  std::vector<std::unique_ptr<node>> nodes_;
  std::priority_queue<event, std::vector<event>, event_order> queue_;
  std::vector<std::set<size_t>> partition_;
  std::vector<observed> events_;
  uint64_t bytes_sent_ = 0;
  uint64_t stream_bytes_ = 0;
  uint64_t datagrams_sent_ = 0;
  uint64_t datagrams_lost_ = 0;
};

} // namespace mycorrizal::test
