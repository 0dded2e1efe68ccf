// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/quic/fwd.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace mycorrizal::quic {

/// Congestion controllers ngtcp2 0.12 offers.
enum class congestion_control : uint8_t { reno, cubic, bbr, bbr2 };

/// Every knob of a QUIC connection. The defaults are the LAN preset
/// (`lan_defaults()`); the field comments give the reasoning.
struct transport_config {
  /// RTT assumed before the first sample. 10 ms: with ngtcp2's default
  /// 333 ms the pacer holds the client's Finished and the server's
  /// HANDSHAKE_DONE back ~22 ms (PLATFORM.md §3.8-1). Both sides should use
  /// the same value.
  duration initial_rtt = std::chrono::milliseconds{10};

  /// Largest UDP payload we send: 1500 (Ethernet MTU) - 40 (IPv6) - 8 (UDP)
  /// = 1452. Packets start at 1200 and PMTUD probes up to this value.
  size_t max_udp_payload = 1452;

  /// Send `max_udp_payload`-sized packets at once, without the PMTUD ramp.
  /// Only for networks known to carry them.
  bool fixed_udp_payload = false;

  /// Largest UDP payload towards a peer on a loopback address (127.0.0.0/8,
  /// ::1), sent from the first packet on: the path is this host, so there
  /// is nothing to discover. The transport caps it by the loopback route's
  /// MTU (65536 on Linux, so 65507 bytes over IPv4) and scales
  /// `max_datagrams_per_write` down so that one write stays as many bytes.
  /// Large packets cut the per-packet work (crypto, ACKs, syscalls) by
  /// ~40x, and they lift the ceiling of ngtcp2 0.12's Cubic and Reno, whose
  /// window stops at 2.89x the initial window (10 packets) when the measured
  /// RTT is microseconds. 0: loopback peers get `max_udp_payload` like any.
  size_t loopback_udp_payload = 65527;

  /// Initial receive window of one stream (bytes the peer may send before we
  /// extend it). 1 MiB covers 1 ms RTT at ~1 GB/s; auto-tuning grows it up
  /// to `max_stream_window` when the consumer keeps up.
  uint64_t stream_window = uint64_t{1} << 20;

  /// Auto-tuning cap of one stream's receive window: 16 MiB.
  uint64_t max_stream_window = uint64_t{16} << 20;

  /// Initial receive window of the whole connection: 4 MiB, i.e. several
  /// streams at full speed at once. It reopens as bytes arrive (consumers
  /// hold back only their stream's window), so it paces the sender without
  /// letting one stalled stream shut the others out.
  uint64_t connection_window = uint64_t{4} << 20;

  /// Auto-tuning cap of the connection's receive window: 64 MiB.
  uint64_t max_connection_window = uint64_t{64} << 20;

  /// Bidirectional streams the peer may have open at once (the seeds'
  /// 100..1000). A closed peer stream makes room for a new one.
  uint64_t max_streams = 1000;

  /// Bytes the core buffers per stream for sending, acknowledged or not
  /// yet: `send` accepts at most this much beyond the last acknowledged
  /// byte, except one larger chunk moved in whole on an empty buffer (its
  /// memory exists already). 4 MiB keeps one stream at full speed on a LAN.
  size_t stream_send_buffer = size_t{4} << 20;

  /// Connection closes silently after this long without a packet from the
  /// peer (negotiated: the smaller of both sides' values applies).
  duration idle_timeout = std::chrono::seconds{30};

  /// Send a PING when nothing was sent for this long, so an idle but alive
  /// connection does not time out. 0 disables; must be below
  /// `idle_timeout`.
  duration keep_alive = std::chrono::seconds{10};

  /// An established connection is declared unreachable (closed, reported
  /// as `connection_closed` with `errc::connection_lost` and `unreachable`
  /// set) when it sent an ack-eliciting packet (stream data, PING, ...)
  /// and nothing arrived from the peer for this long since the earliest
  /// such packet sent after the last one received. A peer that hears us but
  /// cannot reach us (a one-way fault) is found long before
  /// `idle_timeout`, even while the membership still sees it alive. An
  /// idle connection sends nothing until the keep-alive PING, so there the
  /// fault shows after at most `keep_alive + unreachable_timeout`. 0
  /// disables; otherwise at least 100 ms (several PTOs on a LAN, so that a
  /// lost packet and its retransmission do not trip it) and below
  /// `idle_timeout`.
  duration unreachable_timeout = std::chrono::seconds{5};

  /// The handshake must complete within this time.
  duration handshake_timeout = std::chrono::seconds{10};

  /// Length of our connection ids (8..20). Fixed per endpoint: short-header
  /// packets carry no length, routing needs it.
  size_t cid_length = 16;

  /// Bytes of the congestion window that bulk transfers leave to small
  /// messages. A stream with more than 64 KiB not yet sent stops filling
  /// packets when less than one packet plus this much of the window is
  /// left, as long as a stream with less queued wrote recently: for 8 ×
  /// the gap since that stream's previous new write, within 20 ms and 1 s
  /// (20 ms after its first one). A request beside a bulk transfer then
  /// leaves at once instead of waiting a round trip for the bulk's
  /// acknowledgements. 0 disables.
  size_t latency_reserve = 4096;

  /// Bytes in flight that a bulk transfer (a stream with more than 64 KiB
  /// unsent) keeps at most while another stream wrote without a backlog
  /// recently (as for `latency_reserve`): it adds a packet only while its
  /// in-flight bytes, the packet included, stay within the larger of this
  /// and twice the path's bandwidth-delay product (ngtcp2's delivery rate ×
  /// minimum RTT). A small message queues behind what is in flight (in the
  /// peer's socket and decryption), so this bounds its wait; twice the BDP
  /// keeps a long path full. With nothing in flight a bulk stream may
  /// always send one packet. 0 disables.
  size_t bulk_in_flight = size_t{64} * 1024;

  /// Upper bound of datagrams one `write` call produces.
  size_t max_datagrams_per_write = 64;

  /// Congestion controller.
  congestion_control cc = congestion_control::cubic;

  /// ALPN offered (client) and required (server). Both sides must agree;
  /// only tests change it.
  std::string alpn{alpn_v1};

  /// The LAN preset: the defaults above.
  static transport_config lan_defaults();

  /// The settings for a connection to `peer` whose route carries at most
  /// `route_payload` bytes of UDP payload: `*this`, or for a loopback peer
  /// the `loopback_udp_payload` rules above.
  transport_config for_peer(const ip_endpoint& peer,
                            size_t route_payload) const;

  /// Checks every field.
  /// @returns `errc::invalid_config` naming each bad field.
  expected<void> validate() const;
};

} // namespace mycorrizal::quic
