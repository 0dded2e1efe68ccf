// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/broadcast_queue.hpp"
#include "mycorrizal/gossip/config.hpp"
#include "mycorrizal/gossip/fwd.hpp"
#include "mycorrizal/gossip/messages.hpp"
#include "mycorrizal/gossip/packet.hpp"
#include "mycorrizal/gossip/stream.hpp"
#include "mycorrizal/gossip/timing.hpp"
#include "mycorrizal/time.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

/// The SWIM + Lifeguard membership core, speaking memberlist's protocol
/// (memberlist-wire.md §8–§10). Sans-I/O: the owning actor feeds it
/// datagrams, TCP bytes and the time, and drains what it wants to send and
/// the events it raises. It reads no clock, opens no socket and draws its
/// randomness from the seed in its config.
namespace mycorrizal::gossip {

/// One member as this node sees it.
struct member {
  std::string name;
  ip_endpoint address;
  byte_buffer meta;
  uint32_t incarnation = 0;
  node_state state = node_state::dead;
  /// [PMin, PMax, PCur, DMin, DMax, DCur]; zeros when the member sent none.
  std::array<uint8_t, 6> vsn{};
  /// When `state` last changed.
  time_point state_change{};

  bool operator==(const member&) const = default;
};

/// What happened to a member. memberlist's NotifyJoin / NotifyLeave /
/// NotifyUpdate, plus `suspect` and `alive_again` (a suspicion refuted).
enum class member_event_kind : uint8_t {
  joined,
  updated,
  suspect,
  alive_again,
  dead,
  left,
};

std::string_view to_string(member_event_kind x) noexcept;

struct member_event {
  member_event_kind kind;
  /// The member after the change.
  member who;
};

/// A `join` finished: every seed answered, failed or timed out.
struct join_completed {
  uint64_t id = 0;
  /// Seeds with which a push/pull succeeded.
  size_t contacted = 0;
  /// One entry per failed seed, naming it.
  std::vector<error> errors;
};

/// A `leave` finished: our leave was gossiped its full retransmit limit
/// (or nobody else is alive), or the timeout passed first.
struct leave_completed {
  bool timed_out = false;
};

using membership_event
  = std::variant<member_event, join_completed, leave_completed>;

/// A UDP datagram to send.
struct outgoing_datagram {
  ip_endpoint to;
  byte_buffer bytes;
};

/// A short TCP exchange the core wants: connect to `to`, write `bytes`,
/// feed what comes back to `handle_stream_reply(id, ...)` until it returns
/// true, then close. Report a failed connect or an early close with
/// `stream_failed`. The core gives up by itself at `deadline`.
struct stream_request {
  uint64_t id = 0;
  ip_endpoint to;
  byte_buffer bytes;
  time_point deadline{};
};

/// The core's answer to bytes arriving on an accepted TCP connection.
struct stream_step {
  /// False: the message is not complete yet; call again with more bytes.
  bool done = false;
  /// With `done`: write this (may be empty), then close.
  byte_buffer reply;
};

/// Counters, for metrics and tests.
struct membership_stats {
  uint64_t packets_in = 0;
  uint64_t bytes_in = 0;
  uint64_t packets_out = 0;
  uint64_t bytes_out = 0;
  /// Datagrams dropped whole: wrong key, bad CRC, malformed framing.
  uint64_t packets_dropped = 0;
  /// Messages inside datagrams that did not decode or were refused.
  uint64_t messages_dropped = 0;
  uint64_t streams_in = 0;
  uint64_t streams_failed = 0;
  uint64_t probes = 0;
  uint64_t probes_failed = 0;
  uint64_t indirect_probes = 0;
  uint64_t tcp_fallback_ok = 0;
  uint64_t refutations = 0;
  uint64_t suspicions = 0;
  uint64_t deaths_declared = 0;
  uint64_t push_pulls = 0;
  /// Push/pull joins with failed members and seeds (`reconnect_interval`),
  /// and how many of them got an answer.
  uint64_t reconnects = 0;
  uint64_t reconnects_ok = 0;
  /// Messages in gossip datagrams by `message_type` value (0 ping to 13
  /// err), and their bytes: the parts of a compound one by one, inside
  /// compression, encryption, CRC and label (received: those that decoded).
  /// TCP exchanges count in `streams_in` and `push_pulls`.
  static constexpr size_t message_types = 14;
  std::array<uint64_t, message_types> messages_in{};
  std::array<uint64_t, message_types> messages_out{};
  std::array<uint64_t, message_types> message_bytes_in{};
  std::array<uint64_t, message_types> message_bytes_out{};

  /// Counts one message (its first byte is its type) in or out.
  void count_message(bytes_view msg, bool in) noexcept;
};

class membership {
public:
  /// Creates a core. Our own entry is alive with incarnation 1, an alive
  /// about us is queued, and the probe, gossip and push/pull timers start
  /// after random delays shorter than their intervals.
  /// @returns the errors of `membership_config::validate`.
  static expected<std::unique_ptr<membership>> make(membership_config cfg,
                                                    time_point now);

  membership(const membership&) = delete;
  membership& operator=(const membership&) = delete;
  ~membership();

  // -- inputs ---------------------------------------------------------------

  /// A datagram arrived on the gossip port.
  void handle_datagram(const ip_endpoint& from, bytes_view bytes,
                       time_point now);

  /// Bytes arrived on an accepted TCP connection; `received` is everything
  /// received on it so far.
  stream_step handle_stream(const ip_endpoint& from, bytes_view received,
                            time_point now);

  /// Bytes arrived on an outgoing exchange (see `stream_request`);
  /// `received` is everything received so far.
  /// @returns true when the exchange is over (close the connection).
  bool handle_stream_reply(uint64_t id, bytes_view received, time_point now);

  /// An outgoing exchange failed (connect error, early close).
  void stream_failed(uint64_t id, const error& why, time_point now);

  /// Runs every timer due at `now`.
  void on_timeout(time_point now);

  /// When `on_timeout` must run next.
  time_point next_deadline() const noexcept;

  // -- commands -------------------------------------------------------------

  /// Push/pulls with each seed; raises `join_completed` with the returned
  /// id when all have answered or failed. No seeds completes at once.
  uint64_t join(std::span<const ip_endpoint> seeds, time_point now);

  /// Gracefully leaves: gossips `dead{self, From = self}`; raises
  /// `leave_completed` once it was sent its full retransmit limit or after
  /// `timeout`. The core keeps answering until it is destroyed.
  void leave(duration timeout, time_point now);

  /// Sets our metadata and gossips it with a new incarnation.
  /// @returns `errc::too_large` above 512 bytes, `errc::shutting_down`
  ///   after `leave`.
  expected<void> update_meta(byte_buffer meta, time_point now);

  /// The encryption keys (install / use / remove take effect at once).
  keyring& keys() noexcept {
    return cfg_.keys;
  }

  // -- state ----------------------------------------------------------------

  /// Every entry of the node table, self included.
  std::vector<member> members() const;

  /// The entry for `name`, if known.
  const member* find(std::string_view name) const;

  /// Ourselves.
  const member& self() const noexcept;

  /// Lifeguard's health score: 0 is healthy.
  int health_score() const noexcept {
    return awareness_.score();
  }

  /// Entries in the node table (memberlist's estNumNodes).
  size_t num_nodes() const noexcept {
    return nodes_.size();
  }

  /// Other members that are alive or suspect (what a user calls "up").
  size_t num_alive() const noexcept;

  /// Members declared dead (not left) within `reconnect_timeout`, retried
  /// every `reconnect_interval`; they stay here after the node table
  /// reaped them. Sorted by name.
  std::vector<member> failed_members() const;

  /// The addresses `join` was given, retried while a member is failed or
  /// fewer members are up than were before.
  const std::vector<ip_endpoint>& seeds() const noexcept {
    return seeds_;
  }

  bool has_left() const noexcept {
    return leaving_;
  }

  const membership_stats& stats() const noexcept {
    return stats_;
  }

  const membership_config& config() const noexcept {
    return cfg_;
  }

  // -- outputs (drain after every call) -------------------------------------

  std::vector<outgoing_datagram>& outbox() noexcept {
    return outbox_;
  }

  std::vector<stream_request>& stream_requests() noexcept {
    return stream_requests_;
  }

  std::vector<membership_event>& events() noexcept {
    return events_;
  }

private:
  struct suspicion;
  struct node_entry;
  struct probe_state;

  /// Who waits for an ack with a given sequence number.
  struct ack_handler {
    /// false: our own probe; true: we relay for `requester`.
    bool relay = false;
    ip_endpoint requester;
    uint32_t requester_seq = 0;
    bool nack = false;
  };

  struct pending_stream {
    /// `reconnect`: a push/pull join with a failed member or a seed.
    enum class purpose : uint8_t { push_pull, reconnect, ping };
    purpose what = purpose::push_pull;
    /// The join this push/pull belongs to; 0 for a periodic one.
    uint64_t join_id = 0;
    /// The probe this TCP ping belongs to.
    uint32_t seq = 0;
    ip_endpoint to;
  };

  struct pending_join {
    size_t remaining = 0;
    size_t contacted = 0;
    std::vector<error> errors;
  };

  struct timer {
    enum class kind : uint8_t {
      probe,
      gossip,
      push_pull,
      probe_timeout,
      probe_deadline,
      relay_expiry,
      suspicion,
      stream_deadline,
      leave_deadline,
      reconnect,
    };
    explicit timer(kind k, uint64_t a = 0, std::string n = {})
        : what(k), arg(a), name(std::move(n)) {
      // nop
    }

    kind what;
    /// Sequence number, stream id or suspicion generation.
    uint64_t arg;
    /// The suspected node.
    std::string name;
    /// It fired late once and was given `late_timer_grace` (see `fire`).
    bool deferred = false;
  };

  membership(membership_config cfg, time_point now);

  // node table
  node_entry* lookup(std::string_view name) const;
  node_entry& self_entry() const;
  void alive_node(const alive& a, bool bootstrap, time_point now);
  void suspect_node(const suspect& s, time_point now);
  void dead_node(const dead& d, time_point now);
  /// A leave arrived for a member we hold as dead or only remember as
  /// failed: it becomes left and is no longer retried.
  void learn_leave(node_entry* e, const dead& d, time_point now);
  /// Remembers (or forgets) `m` for reconnecting after a state change.
  void remember(const member& m, time_point now);
  void refute(node_entry& me, uint32_t accused);
  void reap_and_shuffle(time_point now);
  bool any_alive() const;
  /// Raises `leave_completed` once, however the leave ended.
  void report_leave(bool timed_out);
  void emit(member_event_kind kind, const node_entry& e);
  std::vector<node_entry*> k_random_nodes(size_t k, auto&& exclude);
  std::array<uint8_t, 6> own_vsn() const noexcept;
  /// Our alive at `incarnation`, with the advertised address and meta.
  alive self_alive(uint32_t incarnation) const;
  /// A ping for `node` with us as the source.
  ping make_ping(uint32_t seq, const std::string& node) const;
  packet_options packet_opts() const;
  stream_options stream_opts() const;
  uint32_t next_incarnation(uint32_t at_least);

  // probing
  void probe(time_point now);
  void probe_node(node_entry& target, time_point now);
  void probe_timed_out(uint32_t seq, time_point now);
  void probe_deadline(uint32_t seq, time_point now);
  void finish_probe(bool ok, time_point now);
  void schedule_next_probe(time_point now);

  // messages
  void handle_message(const ip_endpoint& from, bytes_view msg, time_point now);
  void on_ping(const ip_endpoint& from, const ping& p);
  void on_indirect_ping(const ip_endpoint& from, const indirect_ping& p,
                        time_point now);
  void on_ack(const ack& a, time_point now);
  void on_nack(const nack& n);
  void relay_expired(uint32_t seq);

  // sending
  template <class T>
  void send_msg(const ip_endpoint& to, const node_entry* node, const T& msg);
  void send_packet(const ip_endpoint& to, const node_entry* node,
                   byte_buffer msg, bool piggyback);
  void raw_send(const ip_endpoint& to, const node_entry* node, byte_buffer msg);
  template <class T>
  void broadcast(const std::string& name, const T& msg,
                 broadcast_queue::finished_fn on_finish = {});
  void gossip(time_point now);
  /// Arms the gossip loop if it sleeps and there is something to gossip.
  void wake_gossip();
  size_t encryption_overhead() const noexcept;
  gcm_nonce make_nonce();

  // streams
  byte_buffer local_state(bool join) const;
  byte_buffer frame_out(const byte_buffer& message);
  expected<void> merge_remote(const push_pull& pp, time_point now);
  expected<void> verify_protocol(const push_pull& pp) const;
  uint64_t start_stream(const ip_endpoint& to, byte_buffer bytes,
                        duration timeout, time_point now);
  void push_pull_with(const ip_endpoint& to, std::optional<uint64_t> join_id,
                      time_point now,
                      pending_stream::purpose what
                      = pending_stream::purpose::push_pull);
  void finish_stream(uint64_t id, const error* failure);
  void join_step(uint64_t join_id, const error* failure);
  void periodic_push_pull(time_point now);
  /// One reconnect round: a failed member at random, and the seeds.
  void reconnect(time_point now);

  // timers
  void arm(time_point when, timer t);
  /// Runs timer `t`, due at `due`, at `now`.
  void fire(timer t, time_point due, time_point now);

  void log(log_level level, std::string_view text) const;

  membership_config cfg_;
  std::mt19937_64 rng_;
  awareness awareness_;
  broadcast_queue broadcasts_;

  std::vector<std::unique_ptr<node_entry>> nodes_;
  /// Hashes names for lookups by `std::string_view` without a copy.
  struct name_hash {
    using is_transparent = void;
    size_t operator()(std::string_view x) const noexcept {
      return std::hash<std::string_view>{}(x);
    }
  };
  std::unordered_map<std::string, node_entry*, name_hash, std::equal_to<>>
    by_name_;
  size_t probe_index_ = 0;
  /// Entries alive or suspect, self included (kept by every transition).
  size_t up_ = 0;

  uint32_t incarnation_ = 0;
  uint32_t seq_no_ = 0;
  bool leaving_ = false;
  bool leave_reported_ = false;

  std::unique_ptr<probe_state> probe_;
  time_point next_probe_tick_{};
  /// The gossip loop runs only while there is something to gossip (an
  /// empty round sends nothing, as memberlist's): a gossip timer is
  /// pending, and the earliest time the next round may run.
  bool gossip_armed_ = false;
  time_point next_gossip_tick_{};
  std::unordered_map<uint32_t, ack_handler> ack_handlers_;

  uint64_t next_stream_id_ = 1;
  std::unordered_map<uint64_t, pending_stream> streams_;
  uint64_t next_join_id_ = 1;
  std::unordered_map<uint64_t, pending_join> joins_;

  /// Members that failed or left, by name, as last seen, with when: failed
  /// ones are retried, left ones travel in our push/pull state as left
  /// after the table reaped them (see `reconnect_timeout`).
  std::map<std::string, member, std::less<>> remembered_;
  /// Every address `join` was given (deduplicated).
  std::vector<ip_endpoint> seeds_;
  /// The most other members seen up at once, less those that left since:
  /// while fewer are up, the cluster is smaller than it was and the seeds
  /// are retried (also after failed members were forgotten).
  size_t peak_ = 0;

  std::multimap<time_point, timer> timers_;
  uint64_t suspicion_generation_ = 0;

  membership_stats stats_;
  std::vector<outgoing_datagram> outbox_;
  std::vector<stream_request> stream_requests_;
  std::vector<membership_event> events_;
};

} // namespace mycorrizal::gossip
