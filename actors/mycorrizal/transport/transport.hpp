// SPDX-License-Identifier: Apache-2.0
// The QUIC transport actors: transport (endpoint), connection, stream.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/interfaces.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/quic/connection.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/quic/transport_config.hpp"
#include "mycorrizal/transport/stream_options.hpp"
#include "mycorrizal/type_ids.hpp"
#include "mycorrizal/wire/limits.hpp"
#include "mycorrizal/wire/owned_frame.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

/// QUIC between nodes, as actors (DESIGN.md §3):
///
/// - **transport** owns one UDP socket (served by the node's reactor) and
///   the routing table (`quic::cid_router`): it hands each datagram batch to
///   the connection it belongs to, accepts client Initials by spawning a
///   connection, answers unknown versions, and drops and counts the rest.
/// - **connection** (one per QUIC connection) drives a `quic::connection`
///   core: it feeds it datagrams and timer expiries, sends what it writes
///   straight on the socket, re-arms its timer from the core's deadline with
///   `delayed_send`, and spawns one **stream** actor per stream.
/// - **stream** encodes outgoing frames into a bounded queue (a full queue
///   is an error the writer sees), passes bytes to the connection as QUIC
///   flow control allows, decodes incoming frames and delivers them to its
///   consumer; the peer may send more once the consumer answered a delivery
///   (QUIC's flow-control window is extended by what the consumer took).
///
/// Nothing waits forever: when a connection closes, its streams end (their
/// consumers get `stream_end` with the connection's reason) and pending
/// requests to the connection or its streams fail with that reason.
///
/// ### The transport's handler
/// Every connection of a transport reports to the transport's handler:
/// `connection_up` once the peer is authenticated, `connection_down` once
/// (also for a dial that never came up), and `stream_accepted` for every
/// stream the peer opens, once its first frame (STREAM_INIT, HELLO) says
/// what it is for. `stream_accepted` is a request: the handler replies
/// with the `caf::actor` that consumes the rest of the stream (frames are
/// held until then); an error reply or an invalid actor resets the stream.
///
/// ### Requests (typed, see interfaces.hpp)
/// | to | request | reply |
/// |---|---|---|
/// | transport | `dial_atom, ip_endpoint to, std::string name, caf::timespan
///   deadline` | `connection_info` once the peer is authenticated; `timeout`
///   when not within `deadline`, `connection_lost` when refused (context
///   says why: unknown CA, name mismatch, no route...), `shutting_down` |
/// | transport | `stats_atom` | `transport_stats` |
/// | transport | `connections_atom` | `std::vector<connection_info>` |
/// | connection | `open_atom, wire::owned_frame first, caf::actor consumer`
///   | `stream_actor`; `first` must be STREAM_INIT or HELLO; the
///   consumer receives the peer's frames; `queue_full` when the peer's
///   stream limit is reached |
/// | connection | `close_atom, uint64_t code, std::string reason` |
///   an empty reply once the CONNECTION_CLOSE is out |
/// | connection | `stats_atom` | `connection_info` (with `stats`) |
/// | stream | `write_atom, wire::owned_frame` | an empty reply once queued;
///   `queue_full` when the stream's queue is full, `too_large` for a frame
///   above the peer's frame limit (a writer refused with `queue_full` gets
///   `stream_drained` once there is room again), `invalid_identifier` /
///   `malformed_frame` for a frame that cannot be encoded, the stream's end
///   reason after it ended |
/// | stream | `write_atom, std::vector<wire::owned_frame>` | as above, all
///   or nothing |
/// | stream | `write_atom, shared_frames` | as above; the writer keeps its
///   frames, e.g. to retry them after `queue_full`. Once accepted, large
///   payloads (64 KiB and up) may have moved out of them (no copy) |
/// | stream | `close_atom` | an empty reply once QUIC took the end of our side
///   (the FIN goes after everything written before; with a full queue on a
///   slow link that can take a while) |
/// | stream | `reset_atom, uint64_t code` | an empty reply; the stream ends |
/// | stream | `stats_atom` | `stream_stats` |
///
/// ### Messages to a stream's consumer
/// - `stream_frames` (a request: reply with anything, e.g. `caf::unit`, once
///   the frames are handled; up to `stream_options::max_unacked_bytes` are
///   delivered before a reply is needed);
/// - `stream_end` once, when the stream is over (peer finished: `errc::none`;
///   reset, malformed input or connection closed: the reason).
namespace mycorrizal {

/// How to start a transport.
struct transport_options {
  /// Our certificate, key and the cluster CA. Required.
  std::optional<quic::credentials> credentials;

  /// QUIC knobs (LAN defaults).
  quic::transport_config transport = quic::transport_config::lan_defaults();

  /// Stream limits.
  stream_options streams;

  /// Where to bind the UDP socket (port 0 picks one).
  ip_endpoint bind = ip_endpoint::v4(127, 0, 0, 1, 0);

  /// Socket options, including fault injection for tests. GSO and GRO are
  /// on: QUIC sends runs of full-sized datagrams.
  net::udp_options udp = [] {
    net::udp_options o;
    o.gso = true;
    o.gro = true;
    return o;
  }();

  /// Accept incoming connections.
  bool accept = true;

  /// Connections at once (dialed and accepted); more Initials are dropped
  /// and dials fail with `queue_full`.
  size_t max_connections = 4096;

  /// Receives `connection_up`, `connection_down` and `stream_accepted`.
  /// Required.
  transport_handler_actor handler;

  /// The node's reactor (started). Required.
  std::shared_ptr<net::reactor> reactor;
};

/// A connection as the actors report it.
struct connection_info {
  connection_actor connection;
  /// The peer's certificate CN (empty before authentication).
  std::string peer_name;
  ip_endpoint remote;
  /// The peer dialed us.
  bool incoming = false;
  /// Filled by `stats_atom` requests only.
  quic::connection_stats stats;
};

/// A connection is up: the peer is authenticated as `info.peer_name`.
struct connection_up {
  connection_info info;
};

/// A connection is over (closed by us, by the peer, idle timeout, failed
/// handshake). Sent once per connection actor, also for dials that never
/// came up.
struct connection_down {
  connection_actor connection;
  /// Empty if the peer was never authenticated.
  std::string peer_name;
  ip_endpoint remote;
  bool incoming = false;
  /// Why; `errc::shutting_down` when we closed it.
  error reason;
  /// The peer stopped answering our packets
  /// (`quic::transport_config::unreachable_timeout`); `reason` is
  /// `errc::connection_lost`.
  bool unreachable = false;
};

/// The peer opened a stream (a request; see the namespace comment). Sent
/// once its first frame arrived, which says what the stream is for.
struct stream_accepted {
  connection_actor connection;
  stream_actor stream;
  std::string peer_name;
  int64_t stream_id = -1;
  /// STREAM_INIT (an application stream), HELLO (the control stream) or
  /// STREAM_ERROR. It is not delivered to the consumer again.
  wire::owned_frame first;
};

/// `shared_frames` (type_ids.hpp): frames to write that the writer keeps
/// (see `write_atom` above). The writer must not touch them until the
/// write's reply arrived.

/// Frames received on a stream, in order (a request; see above).
struct stream_frames {
  stream_actor stream;
  std::vector<wire::owned_frame> frames;
};

/// The stream is over; nothing follows.
struct stream_end {
  stream_actor stream;
  /// `errc::none`: the peer finished its side normally.
  error reason;
};

/// The stream's queue has room again: sent once to each actor whose write
/// failed with `queue_full`, when the queue fell to half its limit (or the
/// stream ended, so that nobody waits for room that never comes).
struct stream_drained {
  stream_actor stream;
};

/// Counters of one stream.
struct stream_stats {
  int64_t stream_id = -1;
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  /// Writes refused because the queue was full.
  uint64_t queue_full = 0;
  /// Bytes waiting now: queued in the stream actor plus handed to the
  /// connection and not yet taken by QUIC (at most `max_queued_bytes +
  /// max_in_flight_bytes`).
  size_t queued = 0;
};

/// Counters of a transport.
struct transport_stats {
  /// The socket's counters (as the reactor keeps them).
  net::udp_stats udp;
  uint64_t datagrams_received = 0;
  /// Not QUIC, unknown connection id and not an Initial, refused Initial,
  /// no room for another connection.
  uint64_t datagrams_dropped = 0;
  uint64_t version_negotiations_sent = 0;
  uint64_t connections_accepted = 0;
  uint64_t connections_dialed = 0;
  /// Connection actors that ended.
  uint64_t connections_ended = 0;
  /// Connection actors alive now (including closing/draining ones).
  uint64_t connections_open = 0;
  /// Routes in the routing table.
  uint64_t routes = 0;
  /// Handshakes that completed (both sides authenticated), and those that
  /// did not, by `quic::handshake_failure` value (index 0 unused).
  uint64_t handshakes_completed = 0;
  std::array<uint64_t, quic::handshake_failures> handshakes_failed{};
};

/// A started transport.
struct transport_handle {
  transport_actor actor;
  /// The bound address (real port).
  ip_endpoint local;
};

/// Binds the UDP socket and spawns a transport in `sys`. Stop it with
/// `caf::anon_send_exit(actor, caf::exit_reason::user_shutdown)`: it closes
/// every connection (peers see an application close), ends their streams,
/// fails pending dials with `errc::shutting_down` and closes its socket.
/// @returns `errc::invalid_config` for bad options or credentials without a
///   certificate, `errc::connection_lost` when the socket cannot be bound.
expected<transport_handle> spawn_transport(caf::actor_system& sys,
                                           transport_options opts);

} // namespace mycorrizal
