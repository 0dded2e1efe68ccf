// SPDX-License-Identifier: Apache-2.0
// The peers actor: one QUIC connection per pair of Mycorrizal members.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/interfaces.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

/// The `peers` actor keeps exactly one authenticated QUIC connection to
/// every alive Mycorrizal member (a member whose meta carries a QUIC port,
/// `gossip::node_meta`); plain memberlist members are membership-only.
///
/// - **Dial rule.** Of two members, the one with the smaller name dials;
///   the other waits to be dialed, `dial_wait` at most: then it dials too
///   (the smaller one may not know it yet: a gossip broadcast missed in a
///   burst of joins waits for the next push-pull). When both dialed, the
///   connection dialed by the smaller name is kept and the other closed,
///   on both sides alike.
/// - **Identity.** A dial expects the member's name as the server's CN (a
///   different CN fails the handshake). An incoming connection is the
///   member its certificate names; one that names us is refused.
/// - **Redial.** A failed dial, or a connection lost while the member is
///   alive, is retried after an exponential backoff with ±25 % jitter,
///   as long as the member is alive.
/// - **Member gone.** When the member is dead or left, its connection is
///   closed and no redial follows. When it comes back at another address
///   or QUIC port (a restart), the old connection is replaced.
/// - **Unreachable.** Reachability is kept apart from membership (as in
///   Akka Cluster): when the connection to a member that gossip still sees
///   alive stops answering (`quic::transport_config::unreachable_timeout`),
///   the member is reported unreachable: a warning, `peer_unreachable` to
///   the subscribers, then `peer_down` with `connection_lost`, and
///   `peer_info::unreachable` until a connection to it is up again. The
///   redial with backoff goes on meanwhile.
///
/// These decisions are taken by `peering::dialer` (a pure core, unit-tested
/// in virtual time); this actor feeds it and carries them out.
///
/// It is the transport's handler (`transport_options::handler`): it gets
/// `connection_up`, `connection_down` and `stream_accepted`. Application
/// streams (STREAM_INIT) go to the `streams` actor given at start (without
/// one they are refused with `unknown_application`).
///
/// - **Control stream.** On every kept connection the dialer opens the
///   control stream with HELLO (name, incarnation, protocol versions); the
///   other side answers with its HELLO. A connection whose versions do not
///   overlap is closed. Each side then sends APPS, the full set of its
///   applications, again whenever the set changes (`apps_atom`), so
///   `nodes_atom` lists the peers that run an application.
///
/// ### Requests (`peers_actor`, interfaces.hpp)
/// | request | reply |
/// |---|---|
/// | `connections_atom` | `std::vector<peer_info>`: every alive Mycorrizal
/// member and its connection, if up |
/// | `subscribe_atom, caf::actor who` | the peers connected now; then
/// `peer_up`, `peer_unreachable` and `peer_down` to `who` until it ends |
/// | `nodes_atom, app` | the peers that announced `app`, sorted |
/// | `stats_atom` | `peers_stats` |
///
/// And messages: `set_transport_atom, transport` (start), `apps_atom,
/// names` (our applications changed: announce them), the membership's
/// `gossip::member_event`s, the transport handler's messages, and the
/// control streams' `stream_frames` and `stream_end`.
namespace mycorrizal {

/// A Mycorrizal member as the peers actor sees it.
struct peer_info {
  std::string name;
  /// Its gossip address and QUIC endpoint.
  ip_endpoint gossip;
  ip_endpoint quic;
  /// The connection when up (invalid otherwise).
  connection_actor connection;
  /// The peer dialed us.
  bool incoming = false;
  /// The applications it announced on the control stream, sorted.
  std::vector<std::string> apps;
  /// The protocol version both speak (0 until the HELLOs crossed).
  uint8_t version = 0;
  /// Its connection stopped answering while the member was alive
  /// (`peer_unreachable`), and no new connection is up yet.
  bool unreachable = false;
};

/// A connection to a member is up (authenticated, the one kept).
struct peer_up {
  peer_info peer;
};

/// The connection to a member that gossip sees alive stopped answering:
/// nothing came back for `quic::transport_config::unreachable_timeout`
/// while our packets waited for acknowledgement. `peer_down` with
/// `connection_lost` follows at once; a redial with backoff goes on.
struct peer_unreachable {
  std::string name;
  /// `errc::connection_lost`; the context says what was missed.
  error reason;
};

/// The connection to a member is gone: `node_down` when the member is dead
/// or left, or closed its connection because it stops (sent also when no
/// connection was up, so that nobody keeps waiting for one),
/// `connection_lost` when it broke while the member lives (a redial
/// follows), `shutting_down` when we stop.
struct peer_down {
  std::string name;
  error reason;
};

/// Counters of the peers actor.
struct peers_stats {
  uint64_t dials = 0;
  uint64_t dial_failures = 0;
  /// Connections closed because the pair had another one.
  uint64_t duplicates_closed = 0;
  /// Connections refused: to ourselves.
  uint64_t refused = 0;
  uint64_t ups = 0;
  uint64_t downs = 0;
  /// Connections to alive members that stopped answering.
  uint64_t unreachable = 0;
};

/// How to start a peers actor.
struct peers_options {
  /// Our node name (the CN of our certificate, our membership name).
  std::string name;
  /// The membership actor to follow. Required.
  membership_actor membership;
  /// Gets the `stream_accepted` requests of application streams
  /// (optional).
  stream_acceptor_actor streams;
  /// A dial must be authenticated within this time.
  caf::timespan dial_timeout = std::chrono::seconds{5};
  /// Redial delays: after f failed dials in a row (since the last
  /// connection up) the next waits `min(backoff_max, backoff_min × 2^f)`,
  /// ±25 % jitter; so the first redial after a failed dial waits about
  /// 2 × backoff_min, and a connection lost while the member lives is
  /// redialed at once.
  caf::timespan backoff_min = std::chrono::milliseconds{100};
  caf::timespan backoff_max = std::chrono::seconds{10};
  /// Of a pair, the member with the smaller name dials. The other waits
  /// this long (plus up to 50 % jitter) for that dial, then dials itself:
  /// gossip may not have told the smaller one about it yet (it would learn
  /// at the next push-pull, 15 s and more later).
  caf::timespan dial_wait = std::chrono::seconds{1};
  /// Seeds the jitter (tests); 0 picks a random seed.
  uint64_t seed = 0;
};

/// Spawns a peers actor. Give it to `spawn_transport` as the handler, then
/// send it `(set_transport_atom, transport)`: it subscribes to the
/// membership actor and starts dialing then.
/// @returns `errc::invalid_config` without a name or membership actor.
expected<peers_actor> spawn_peers(caf::actor_system& sys, peers_options opts);

} // namespace mycorrizal
