// SPDX-License-Identifier: Apache-2.0
// The membership actor: drives the SWIM + Lifeguard core over real sockets.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/config.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mycorrizal::net {
class reactor;
} // namespace mycorrizal::net

/// The `membership` actor owns one gossip core (`gossip::membership`), the
/// gossip UDP socket and the TCP listener on the same port (both served by
/// the node's reactor), and the short TCP exchanges of push/pull and TCP
/// pings. It publishes member events to its subscribers.
///
/// Its interface (requests; errors are `mycorrizal::errc` in CAF errors):
///
/// | request | reply |
/// |---|---|
/// | `join_atom, std::vector<std::string> seeds` ("host:port") | `uint64_t`
/// seeds contacted; `connection_lost` when none answered, `invalid_config` for
/// a bad address | | `leave_atom, caf::timespan timeout` | `caf::unit` once the
/// leave was gossiped; `timeout` if it was not in time | | `members_atom` |
/// `std::vector<gossip::member>`, self included | | `update_atom, std::string
/// meta` | `caf::unit`; `too_large` above 512 bytes | | `subscribe_atom,
/// caf::actor who` | `std::vector<gossip::member>` now; then
/// `gossip::member_event` messages to `who` until it ends or unsubscribes | |
/// `unsub_atom, caf::actor who` | `caf::unit` | | `health_atom` | `int`
/// Lifeguard health score, 0 = healthy | | `keyop_atom, key_op, std::string
/// key` | `caf::unit`; `invalid_config` for a bad key | | `keys_atom` |
/// `std::vector<std::string>` installed keys, primary first | | `stats_atom` |
/// `membership_counters` | | `local_atom` | `ip_endpoint` we advertise |
///
/// Stop it with `caf::anon_send_exit(actor, caf::exit_reason::user_shutdown)`
/// (without a leave, others will detect a failure). It closes its sockets;
/// pending requests end with `errc::shutting_down`.
namespace mycorrizal {

/// A keyring operation (memberlist's KeyManager, applied locally).
enum class key_op : uint8_t { install, use, remove };

/// The core's counters plus what the actor saw on its sockets.
struct membership_counters {
  gossip::membership_stats core;
  /// UDP sends the kernel refused.
  uint64_t send_errors = 0;
  /// TCP exchanges that could not start or broke.
  uint64_t tcp_errors = 0;
};

/// How to start a membership actor.
struct membership_options {
  /// The core's settings (a profile: `lan_defaults()` etc.). `name` is
  /// required; `advertise` is filled in from `bind` / `advertise` below.
  gossip::membership_config gossip = gossip::membership_config::lan_defaults();

  /// Where to listen (UDP and TCP on the same port). Port 0 picks a free
  /// port that is free for both.
  ip_endpoint bind = ip_endpoint::v4(127, 0, 0, 1, 0);

  /// What others should dial; defaults to the bound address, which must
  /// then not be a wildcard.
  std::optional<ip_endpoint> advertise;

  /// The node's reactor (started). Required.
  std::shared_ptr<net::reactor> reactor;
};

/// A started membership actor and where it listens.
struct membership_handle {
  caf::actor actor;
  /// The address we advertise (real port).
  ip_endpoint local;
};

/// Spawns a membership actor in `sys`: binds its sockets (retrying other
/// ports when `bind` has port 0 and the UDP port is taken), creates the
/// core with a random seed and GnuTLS nonces, and starts it.
/// @returns `errc::invalid_config` for bad options, `errc::connection_lost`
///   when a socket cannot be bound.
expected<membership_handle> spawn_membership(caf::actor_system& sys,
                                             membership_options opts);

} // namespace mycorrizal
