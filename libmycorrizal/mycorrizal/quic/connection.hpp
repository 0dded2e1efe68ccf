// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/log_sink.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/quic/fwd.hpp"
#include "mycorrizal/quic/transport_config.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

/// One QUIC connection (ngtcp2 0.12 + GnuTLS, TLS 1.3 only, ALPN
/// `mycorrizal/1`, mutual certificate authentication against the cluster
/// CA), as a sans-I/O core (STYLE.md §B): the owner feeds received datagrams
/// and timer expiries in, with `now` from its clock, and after every call
/// drains `write` (datagrams to send) and `events()`, and re-arms its timer
/// for `next_deadline()`.
///
/// Authentication: the peer's certificate chain is checked against the CA
/// bundle, its validity against the wall time given at creation, and (on a
/// client with an expected name) its CN. The peer counts as authenticated,
/// and `handshake_completed` is reported, only once the peer can no longer
/// reject us: on the server when the handshake completes (it has verified
/// the client's Finished and certificate), on the client when the handshake
/// is confirmed (HANDSHAKE_DONE), because a TLS 1.3 client completes before
/// the server has judged its certificate (PLATFORM.md §3.7).
///
/// Lifecycle: handshaking -> established -> closing (we closed: our
/// CONNECTION_CLOSE is repeated when the peer keeps sending) or draining
/// (the peer closed) for 3 x PTO -> finished. `connection_closed` is reported
/// when closing/draining starts; `finished()` says when the owner may drop
/// the core. An idle timeout goes straight to finished, silently (RFC 9000
/// §10.1).
///
/// Reachability: an established connection that sent an ack-eliciting
/// packet and then received nothing for
/// `transport_config::unreachable_timeout` closes as unreachable
/// (`connection_closed::unreachable`), long before the idle timeout. Time
/// runs from the earliest ack-eliciting packet sent after the last packet
/// received; any packet received clears it. Its deadline is part of
/// `next_deadline()`.
namespace mycorrizal::quic {

// -- events ------------------------------------------------------------------

/// The peer is authenticated; `peer_name` is its certificate's CN.
struct handshake_completed {
  std::string peer_name;
};

/// The peer opened a stream.
struct stream_opened {
  int64_t stream_id = -1;
};

/// Bytes arrived on a stream, in order (the data of several packets of one
/// stream that arrived together may come as one event). Call
/// `consume(stream_id, n)` once the
/// application took them, to let the peer send more.
struct stream_data {
  int64_t stream_id = -1;
  std::vector<std::byte> data;
  /// The peer finished its side of the stream after these bytes.
  bool fin = false;
};

/// Send buffer space became free on a stream after a `send` accepted less
/// than offered.
struct stream_writable {
  int64_t stream_id = -1;
};

/// The peer acknowledged all of a large chunk that `send` took whole
/// (`released_chunk_min` bytes or more): the core no longer needs it, and
/// the owner chooses where it is freed. Freeing a large buffer is not free:
/// giving 10 MiB back to the kernel took 0.4-1.2 ms on the bench machine
/// (munmap, or an arena trim), and whatever runs this core would wait.
struct send_chunk_released {
  int64_t stream_id = -1;
  std::vector<std::byte> data;
};

/// A stream is gone (both directions finished, or reset).
struct stream_closed {
  int64_t stream_id = -1;
  /// The application error code of a reset, if any.
  std::optional<uint64_t> app_error_code;
};

/// Why a handshake did not complete (`connection_closed::handshake`).
enum class handshake_failure : uint8_t {
  /// The handshake completed (or the connection never started one).
  none = 0,
  /// We refused the peer's certificate: another CA, expired, not yet
  /// valid, no usable name, a name other than the one dialed.
  peer_certificate,
  /// The peer sent no certificate where one is required.
  no_certificate,
  /// No common ALPN.
  alpn,
  /// The peer closed during the handshake (it refused our certificate,
  /// name or ALPN, or is shutting down).
  refused_by_peer,
  /// Not completed within the handshake timeout (or the peer went silent).
  timeout,
  /// Another TLS failure (an alert).
  tls,
  /// A QUIC protocol error.
  protocol,
  /// Closed locally before it completed (shutting down, a duplicate).
  closed,
};

/// The number of `handshake_failure` values.
constexpr size_t handshake_failures = 9;

/// "peer_certificate", "no_certificate", ... ("none" for `none`).
std::string_view to_string(handshake_failure x) noexcept;

/// The connection is closing (by us, the peer, or a timeout). Reported once.
struct connection_closed {
  /// Why: `errc::shutting_down` (closed locally), `errc::connection_lost`
  /// (peer closed, peer unreachable, authentication failed on either side,
  /// protocol error), `errc::timeout` (idle or handshake timeout),
  /// `errc::unsupported_version` (ALPN mismatch); the context says exactly
  /// what happened.
  error reason;
  /// The peer closed (we only learn that it did; ngtcp2 0.12 does not expose
  /// its error code or reason phrase).
  bool by_peer = false;
  /// We closed because the peer did not answer our packets within
  /// `transport_config::unreachable_timeout` (see there); `reason` is
  /// `errc::connection_lost`. The peer may still hear us: it gets our
  /// CONNECTION_CLOSE.
  bool unreachable = false;
  /// Why the handshake failed, if it closed before completing.
  handshake_failure handshake = handshake_failure::none;
};

/// Everything a connection reports to its owner.
using event = std::variant<handshake_completed, stream_opened, stream_data,
                           stream_writable, send_chunk_released, stream_closed,
                           connection_closed>;

/// Acknowledged chunks at least this large come back as
/// `send_chunk_released` instead of being freed inside the core.
inline constexpr size_t released_chunk_min = size_t{256} * 1024;

// -- stats -------------------------------------------------------------------

/// Counters and congestion state of a connection.
struct connection_stats {
  duration smoothed_rtt{};
  duration min_rtt{};
  duration latest_rtt{};
  duration rttvar{};
  /// Congestion window and bytes in flight (bytes).
  uint64_t cwnd = 0;
  uint64_t bytes_in_flight = 0;
  /// UDP payload bytes and datagrams, both directions.
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t datagrams_sent = 0;
  uint64_t datagrams_received = 0;
  /// The largest UDP payload sent so far (bytes).
  uint64_t largest_datagram_sent = 0;
  /// Received datagrams dropped before QUIC processing (empty, no valid QUIC
  /// header) or discarded by ngtcp2 as undecryptable/invalid.
  uint64_t datagrams_dropped = 0;
  /// Packets carrying stream data declared lost (ngtcp2 0.12 exposes only
  /// per-stream loss counts; ACK-only and handshake packets not counted).
  uint64_t lost_packets = 0;
  /// Current PTO.
  duration pto{};
};

// -- connection --------------------------------------------------------------

/// Where a connection runs and what it checks; see `connection::connect`.
struct connection_params {
  transport_config transport;
  /// Randomness for connection ids and reset tokens. Required.
  random_bytes rng;
  /// Optional diagnostics sink.
  log_sink log;
  /// Our address and the peer's (ngtcp2 keys paths by them).
  ip_endpoint local;
  ip_endpoint remote;
  /// Client only: the CN the server must have; empty accepts any name the
  /// CA signed.
  std::string expected_peer_name;
  /// Wall-clock time peer certificates are checked against.
  wall_time wall_now;
};

/// States of a connection.
enum class connection_state : uint8_t {
  handshaking,
  established,
  closing,
  draining,
  finished,
};

/// One QUIC connection core. Move-only.
class connection {
public:
  struct impl;

  connection(connection&&) noexcept;
  connection& operator=(connection&&) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection();

  /// Starts a client connection (the first Initial is in the next `write`).
  /// @returns `errc::invalid_config` for a bad transport config, missing rng
  ///          or credentials without certificate... (context says which),
  ///          or a TLS/ngtcp2 setup failure.
  static expected<connection> connect(const credentials& creds,
                                      connection_params params, time_point now);

  /// Accepts a server connection from a client's first Initial datagram
  /// (which is processed right away).
  /// @returns `errc::invalid_config` as for `connect`, or
  ///          `errc::malformed_frame` when `first` is not a client Initial.
  static expected<connection> accept(const credentials& creds,
                                     connection_params params, bytes_view first,
                                     time_point now);

  // -- inputs ----------------------------------------------------------------

  /// Processes one received datagram. Garbage is dropped and counted; it
  /// never closes the connection by itself.
  void handle_datagram(const ip_endpoint& from, bytes_view data,
                       time_point now);

  /// Handles timer expiry (loss detection, pacing, idle, keep-alive, end of
  /// closing/draining). Call when `now >= next_deadline()`.
  void on_timeout(time_point now);

  /// Writes datagrams to send into `buffer`, back to back, and appends a
  /// view of each to `out`. `buffer` should hold at least
  /// `transport.max_udp_payload` bytes; fewer datagrams fit otherwise.
  /// Call after every input and API call.
  /// @returns the number of datagrams appended.
  size_t write(time_point now, std::span<std::byte> buffer,
               std::vector<std::span<const std::byte>>& out);

  /// When `on_timeout` is due next (`time_point::max()` when never).
  time_point next_deadline() const noexcept;

  // -- outputs ---------------------------------------------------------------

  /// Events since the owner last cleared this vector.
  std::vector<event>& events() noexcept;

  // -- streams ---------------------------------------------------------------

  /// Opens a bidirectional stream.
  /// @returns its id; `errc::queue_full` when the peer's stream limit is
  ///          reached, `errc::shutting_down` when not established.
  expected<int64_t> open_stream();

  /// Queues bytes (and optionally the end of our side) on a stream, up to
  /// the free send buffer; the bytes leave in later `write` calls, as flow
  /// and congestion control allow.
  /// @returns how many bytes were accepted (FIN only counts once all bytes
  ///          are accepted); `errc::unexpected_frame` for an unknown or
  ///          finished stream, `errc::shutting_down` when not established.
  expected<size_t> send(int64_t stream_id, bytes_view data, bool fin = false);

  /// Like the other overload, but keeps `data` itself (no copy): when it
  /// fits the free send buffer whole, it is taken; when it would fit an
  /// empty buffer but not now, nothing is taken (`data` is left as it was)
  /// and `stream_writable` follows once room frees; a chunk larger than
  /// `stream_send_buffer` is taken whole when nothing else is buffered on
  /// the stream (and waits like the others until then).
  expected<size_t> send(int64_t stream_id, std::vector<std::byte>&& data,
                        bool fin = false);

  /// The application took `n` bytes of a stream: extends the stream's
  /// receive window by `n`. (The connection's window is extended as bytes
  /// arrive, so a stream whose consumer stalls never blocks the others.)
  void consume(int64_t stream_id, size_t n);

  /// Resets a stream in both directions with an application error code.
  /// @returns `errc::unexpected_frame` for an unknown stream.
  expected<void> reset_stream(int64_t stream_id, uint64_t app_error_code);

  /// Bytes `send` would accept now on a stream (0 for an unknown one).
  size_t send_capacity(int64_t stream_id) const noexcept;

  // -- connection ------------------------------------------------------------

  /// Closes gracefully with an application error code and reason phrase;
  /// the CONNECTION_CLOSE leaves in the next `write`. Codes are `errc`
  /// values or 0 (protocol.md §5): `errc::shutting_down` says that this
  /// endpoint stops, and the peer's core then reports `errc::node_down`.
  void close(uint64_t app_error_code, std::string_view reason, time_point now);

  /// Current state.
  connection_state state() const noexcept;

  /// Whether the owner may drop this core (closing/draining period over).
  bool finished() const noexcept {
    return state() == connection_state::finished;
  }

  /// Whether the peer is authenticated (see the module comment).
  bool authenticated() const noexcept;

  /// The peer's CN; empty until `authenticated()`.
  const std::string& peer_name() const noexcept;

  /// Why the connection closed (`errc::none` while open).
  const error& close_reason() const noexcept;

  /// Whether we are the server.
  bool is_server() const noexcept;

  /// Counters and congestion state.
  connection_stats stats() const;

  /// Connection ids that route to this connection (ours, plus on a server
  /// the client's original destination id), for an endpoint's routing table.
  std::vector<std::vector<std::byte>> routing_ids() const;

  /// Changes whenever `routing_ids()` does, so an owner copies the ids only
  /// when they changed.
  uint64_t routing_epoch() const noexcept;

private:
  explicit connection(std::unique_ptr<impl> ptr) noexcept;

  std::unique_ptr<impl> impl_;
};

/// Returns "handshaking", "established", "closing", "draining" or
/// "finished".
std::string_view to_string(connection_state x) noexcept;

} // namespace mycorrizal::quic
