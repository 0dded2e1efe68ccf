// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/log_sink.hpp"
#include "mycorrizal/peering/fwd.hpp"
#include "mycorrizal/time.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

/// The dial policy of the peers actor, as a sans-I/O core (STYLE.md §B):
/// which QUIC connection to keep to each alive Mycorrizal member, when to
/// dial it, when to give up. The owner feeds it what happened (membership
/// changes, dial results, connections up and down, timer expiries), each
/// with `now`, then drains `commands()` and re-arms one timer for
/// `next_deadline()`. It reads no clock, does no I/O and draws its jitter
/// from the seed (or the function) in its config.
///
/// - **Dial rule.** Of two members, the one with the smaller name dials
///   (`dials_first`). The other waits `dial_wait` × [1, 1.5) for that dial,
///   then dials too ("fallback"): the smaller one's gossip may not know it
///   yet. A connection that comes up (either way) ends the wait.
/// - **Duplicates.** When a second connection of a pair comes up, the one
///   the smaller name dialed is kept and the other closed. Both sides decide
///   alike, from the name order and the direction alone.
/// - **Redial.** A failed dial, or a lost connection to a member that is
///   still alive, is retried after `min(backoff_max, backoff_min × 2^f)` ×
///   [0.75, 1.25) where f counts failed dials since the last connection up
///   (capped at 20). Only the side that dials (the smaller name, or a side in
///   fallback) redials; the other waits for the dial again.
/// - **Member gone.** A dead or left member's connection is closed, its
///   timers are cancelled, `publish_down(node_down)` is raised (also without a
///   connection, once); no redial follows. A member seen again at another
///   QUIC address (a restart) has its old connection closed as stale.
/// - **Stopped.** A connection closed by the peer with `errc::node_down` (it
///   stops) counts as its leave: gossip of the same incarnation (alive,
///   suspect) does not revive it, a higher incarnation (its restart) does.
/// - **Unreachable.** A connection to an alive member closed as unreachable
///   raises `publish_unreachable` then `publish_down(connection_lost)`; the
///   member stays marked until a connection to it is up again.
/// - **Leaving.** Once our own member left, no dial starts any more.
/// - **Self.** A connection whose peer is ourselves is closed and counted.
namespace mycorrizal::peering {

/// Whether `self` dials `peer` first: the smaller name of a pair dials.
inline bool dials_first(std::string_view self, std::string_view peer) noexcept {
  return self < peer;
}

// -- inputs ------------------------------------------------------------------

/// What gossip says about a member, as far as dialing cares.
enum class member_change : uint8_t {
  /// Alive or suspect (joined, updated, suspect, refuted, listed).
  alive,
  dead,
  left,
};

/// One member as gossip sees it.
struct member_update {
  member_change change = member_change::alive;
  std::string name;
  /// Its gossip address; the QUIC endpoint is this address at `quic_port`.
  ip_endpoint address;
  /// The port of its QUIC transport from its meta (`gossip::node_meta`);
  /// 0 for a membership-only member (a plain memberlist node).
  uint16_t quic_port = 0;
  uint32_t incarnation = 0;
};

/// An authenticated connection came up.
struct connection_up {
  connection_id id = no_connection;
  /// The peer's certificate CN.
  std::string peer;
  /// Where it comes from (or goes to).
  ip_endpoint remote;
  /// The peer dialed us.
  bool incoming = false;
};

// -- outputs -----------------------------------------------------------------

/// Dial `peer` at `address`, expecting `peer` as the server's CN. Report
/// the result with `on_dial_succeeded` or `on_dial_failed`; a successful
/// dial also arrives as `on_connection_up`.
struct dial {
  std::string peer;
  ip_endpoint address;
};

/// Why a connection is closed.
enum class close_reason : uint8_t {
  /// It is a connection to ourselves.
  self,
  /// The pair has another connection, the one kept.
  duplicate,
  member_dead,
  member_left,
  /// The member came back at another address.
  stale,
};

/// "connection to self", "duplicate connection", "member dead", "member
/// left" or "stale connection": the text the close carries to the peer.
std::string_view to_string(close_reason x) noexcept;

/// Close connection `id` (the dialer no longer holds it).
struct close_connection {
  connection_id id = no_connection;
  std::string peer;
  close_reason reason = close_reason::duplicate;
};

/// A connection to `peer` is up and kept; `peer` is the member as of then.
struct publish_up {
  std::string name;
  connection_id id = no_connection;
  ip_endpoint gossip;
  ip_endpoint quic;
  bool incoming = false;
};

/// The connection to `peer` is gone (or will not come): `node_down` when
/// the member is dead, left or stops, `connection_lost` when it broke.
struct publish_down {
  std::string peer;
  error reason;
};

/// The connection to alive member `peer` stopped answering; the reason is
/// the one the connection closed with.
struct publish_unreachable {
  std::string peer;
  error reason;
};

using command = std::variant<dial, close_connection, publish_up, publish_down,
                             publish_unreachable>;

// -- configuration and state -------------------------------------------------

struct dialer_config {
  /// Our node name (the CN of our certificate, our membership name).
  std::string name;
  /// First and largest redial delay (before jitter).
  duration backoff_min = std::chrono::milliseconds{100};
  duration backoff_max = std::chrono::seconds{10};
  /// How long the larger name of a pair waits for the smaller one's dial
  /// (before jitter) before dialing itself.
  duration dial_wait = std::chrono::seconds{1};
  /// Seeds the jitter when `random` is empty (its low 32 bits).
  uint64_t seed = 0;
  /// Returns a number uniformly in [0, 1) per jitter draw; empty: drawn
  /// from a `std::minstd_rand` seeded with `seed`.
  std::function<double()> random;
  /// Receives the core's log lines; empty discards them.
  log_sink log;

  /// @returns `errc::invalid_config` without a name, or unless
  ///   0 < backoff_min <= backoff_max and dial_wait >= 0.
  expected<void> validate() const;
};

/// Counters, for metrics and tests.
struct dialer_stats {
  uint64_t dials = 0;
  uint64_t dial_failures = 0;
  /// Connections closed because the pair had another one.
  uint64_t duplicates_closed = 0;
  /// Connections to ourselves, closed.
  uint64_t refused = 0;
  uint64_t ups = 0;
  /// Kept connections that went away (closed by us or lost).
  uint64_t downs = 0;
  /// Connections to alive members that stopped answering.
  uint64_t unreachable = 0;
};

/// One Mycorrizal member as the dialer sees it.
struct peer {
  /// Alive (or suspect) in the membership view.
  bool alive = false;
  ip_endpoint gossip;
  ip_endpoint quic;
  /// The connection kept for it, if any.
  connection_id connection = no_connection;
  /// With a connection: the peer dialed it, and from where.
  bool incoming = false;
  ip_endpoint connection_remote;
  /// A dial is in flight.
  bool dialing = false;
  /// Failed dials since the last connection up.
  int failures = 0;
  /// We are not the dialer of this pair, but the peer did not dial within
  /// `dial_wait`: we dial too.
  bool fallback = false;
  /// A scheduled redial, if any.
  std::optional<time_point> redial_at;
  /// The end of the wait for the peer's dial, if waiting.
  std::optional<time_point> wait_until;
  /// Its last connection stopped answering while it was alive; cleared
  /// when a connection to it is up again.
  bool unreachable = false;
  /// Its gossip incarnation as last seen.
  uint32_t incarnation = 0;
  /// It closed its connection because it stops, at this gossip incarnation:
  /// gossip of that incarnation does not revive it, a higher one does.
  std::optional<uint32_t> stopped_at;
};

class dialer {
public:
  using peer_map = std::map<std::string, peer, std::less<>>;

  /// Expects a config that passes `validate`.
  explicit dialer(dialer_config cfg);

  // -- inputs ---------------------------------------------------------------

  /// Gossip changed a member (or listed it at subscription). Updates about
  /// ourselves are noted (our `left` stops all dialing); members without a
  /// QUIC port are ignored.
  void on_member(const member_update& m, time_point now);

  /// A `dial` command succeeded (`on_connection_up` adopts the connection).
  void on_dial_succeeded(std::string_view peer, time_point now);

  /// A `dial` command failed or timed out: a redial follows with backoff.
  void on_dial_failed(std::string_view peer, time_point now);

  /// An authenticated connection is up.
  void on_connection_up(const connection_up& up, time_point now);

  /// Connection `id` is over; `reason` is why (`errc::node_down`: the peer
  /// stops), `unreachable` says it stopped answering. Unknown ids (closed
  /// duplicates, refused ones) are ignored.
  void on_connection_down(connection_id id, const error& reason,
                          bool unreachable, time_point now);

  /// Runs every timer due at `now` (redials, ends of waits), earliest first.
  void on_timeout(time_point now);

  /// When `on_timeout` must run next; `never` without timers.
  time_point next_deadline() const noexcept;

  // -- state ----------------------------------------------------------------

  /// Every member that ever had a QUIC port or a connection, by name.
  const peer_map& peers() const noexcept {
    return peers_;
  }

  /// The member `name`, if known.
  const peer* find(std::string_view name) const;

  /// The member whose kept connection is `id`, or nullptr.
  const std::string* holder(connection_id id) const;

  /// Our own member left: no dial starts any more.
  bool leaving() const noexcept {
    return leaving_;
  }

  const dialer_stats& stats() const noexcept {
    return stats_;
  }

  const dialer_config& config() const noexcept {
    return cfg_;
  }

  // -- outputs (drain after every call) -------------------------------------

  std::vector<command>& commands() noexcept {
    return commands_;
  }

private:
  using peer_iter = peer_map::iterator;

  peer& entry(std::string_view name);
  bool should_dial(const std::string& name, const peer& p) const;
  void maybe_dial(peer_iter i, time_point now);
  void schedule_redial(peer_iter i, time_point now);
  void stop_waiting(peer& p);
  void wait_over(peer_iter i, time_point now);
  /// Uniform in [lo, hi).
  double jitter(double lo, double hi);
  void log(log_level level, std::string_view text) const;

  dialer_config cfg_;
  std::minstd_rand rng_;
  peer_map peers_;
  bool leaving_ = false;
  dialer_stats stats_;
  std::vector<command> commands_;
};

} // namespace mycorrizal::peering
