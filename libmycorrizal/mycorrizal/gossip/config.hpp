// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/fwd.hpp"
#include "mycorrizal/gossip/keyring.hpp"
#include "mycorrizal/log_sink.hpp"
#include "mycorrizal/time.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

/// Configuration of one membership core (memberlist-wire.md §11). Field names
/// follow memberlist's Config; the presets equal DefaultLANConfig,
/// DefaultWANConfig and DefaultLocalConfig for every field that exists here.
/// `reconnect_interval` and `reconnect_timeout` are ours (Serf's names).
namespace mycorrizal::gossip {

struct membership_config {
  /// This node's name: unique in the cluster (later: the certificate CN).
  std::string name;

  /// Address and port other members use to reach us (UDP and TCP). The
  /// owning actor fills it in after binding.
  ip_endpoint advertise;

  /// Initial node metadata, at most `meta_max_size` bytes.
  byte_buffer meta;

  /// Protocol version we speak (memberlist ProtocolVersion, in [1, 5]); we
  /// advertise [1, 5] as the range, as Go does.
  uint8_t protocol_version = 2;

  /// Time for one TCP exchange (push/pull, TCP ping) end to end.
  duration tcp_timeout = std::chrono::seconds{10};

  /// Relays asked for an indirect probe when a direct one fails.
  int indirect_checks = 3;

  /// Broadcasts are retransmitted `retransmit_mult * ceil(log10(n + 1))`
  /// times.
  int retransmit_mult = 4;

  /// Suspicion lasts at least `suspicion_mult * max(1, log10(max(1, n))) *
  /// probe_interval`; `suspicion_mult - 2` independent confirmations are
  /// expected (Lifeguard).
  int suspicion_mult = 4;

  /// Suspicion starts at `suspicion_max_timeout_mult` times the minimum and
  /// shrinks with each confirmation.
  int suspicion_max_timeout_mult = 6;

  /// Full state exchange with one random member. Scaled up above 32
  /// members: `interval * (ceil(log2(n) - log2(32)) + 1)`. Zero disables.
  duration push_pull_interval = std::chrono::seconds{30};

  /// Time to wait for a direct ack before asking relays.
  duration probe_timeout = std::chrono::milliseconds{500};

  /// One member is probed per interval (scaled by the health score while
  /// a probe fails: `probe_interval * (health + 1)`).
  duration probe_interval = std::chrono::seconds{1};

  /// Fall back to a TCP ping for members that speak protocol 3+.
  bool disable_tcp_pings = false;

  /// Health score range is [0, awareness_max_multiplier - 1].
  int awareness_max_multiplier = 8;

  /// Members gossiped to per gossip interval. Zero disables gossip.
  int gossip_nodes = 3;
  duration gossip_interval = std::chrono::milliseconds{200};

  /// Dead members still receive gossip this long (so a falsely accused
  /// member learns it and refutes); then they are reaped.
  duration gossip_to_the_dead_time = std::chrono::seconds{30};

  /// Compress UDP packets with LZW when that makes them smaller; TCP
  /// streams are always compressed when this is set, as Go does.
  bool enable_compression = true;

  /// The largest UDP payload we build (memberlist UDPBufferSize).
  size_t udp_buffer_size = 1400;

  /// Failed members (declared dead, not left) are retried with a push/pull
  /// join this often, one at random per interval, and so are the seeds
  /// given to `join` while any member is failed: after a partition heals,
  /// the two sides find each other again (memberlist alone never does; Serf
  /// adds this loop above it). Zero disables. Not a memberlist setting.
  duration reconnect_interval = std::chrono::seconds{30};

  /// How long a failed member is remembered (and retried); a member that
  /// left is remembered as left this long too, so that a side that missed
  /// the leave learns it on heal. Serf's default is 24 h.
  duration reconnect_timeout = std::chrono::hours{24};

  /// A dead member's name may be taken by a new address after this long;
  /// zero never allows it (memberlist's default).
  duration dead_node_reclaim_time = std::chrono::seconds{0};

  /// Encryption keys; empty = plaintext. The first key encrypts.
  keyring keys;

  /// With keys: drop plaintext input (true) or accept it (false); encrypt
  /// output (true) or send plaintext (false). For rolling out a key.
  bool gossip_verify_incoming = true;
  bool gossip_verify_outgoing = true;

  /// Cluster label (memberlist upstream's `Label`): sent in front of every
  /// packet and stream and authenticated with the key; traffic with another
  /// label (or none) is dropped. Debian's memberlist 0.2.2 does not know
  /// labels: leave it empty in clusters with such nodes. At most 255 bytes.
  std::string label;

  /// Accept traffic whatever its label (for rolling a label out).
  bool skip_inbound_label_check = false;

  /// Seed of the core's random choices (probe order, relays, gossip
  /// targets, timer phases). Tests fix it; the actor draws it at random.
  uint64_t seed = 0;

  /// Produces GCM nonces; must never repeat under a key. Empty: nonces are
  /// drawn from the seeded generator (fine for tests; the actor passes
  /// GnuTLS's nonce generator).
  std::function<gcm_nonce()> make_nonce;

  /// Receives the core's log lines; empty discards them.
  log_sink log;

  /// memberlist's DefaultLANConfig.
  static membership_config lan_defaults();

  /// memberlist's DefaultWANConfig.
  static membership_config wan_defaults();

  /// memberlist's DefaultLocalConfig.
  static membership_config local_defaults();

  /// Checks every field; the error names each bad one.
  expected<void> validate() const;
};

/// memberlist's MetaMaxSize.
inline constexpr size_t meta_max_size = 512;

/// memberlist's ProtocolVersionMin and ProtocolVersionMax.
inline constexpr uint8_t protocol_version_min = 1;
inline constexpr uint8_t protocol_version_max = 5;

/// Parses "lan", "wan" or "local".
/// @returns `errc::invalid_config` for anything else.
expected<membership_config> profile_defaults(std::string_view profile);

} // namespace mycorrizal::gossip
