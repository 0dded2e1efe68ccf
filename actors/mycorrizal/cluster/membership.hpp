// SPDX-License-Identifier: Apache-2.0
// The membership actor: drives the SWIM + Lifeguard core over real sockets.
#pragma once

#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/config.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/interfaces.hpp"
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
/// Its interface (`membership_actor`, interfaces.hpp; errors are
/// `mycorrizal::errc` in CAF errors):
///
/// | request | reply |
/// |---|---|
/// | `join_atom, seeds` ("host:port") | seeds contacted;
///   `connection_lost` when none answered, `invalid_config` for a bad
///   address |
/// | `leave_atom, timeout` | once the leave was gossiped; `timeout` if it
///   was not in time |
/// | `members_atom` | every member, self included |
/// | `update_atom, meta` | once set; `too_large` above 512 bytes |
/// | `subscribe_atom, who` | the members now; then `gossip::member_event`
///   messages to `who` until it ends or unsubscribes |
/// | `unsub_atom, who` | once forgotten |
/// | `health_atom` | the Lifeguard health score, 0 = healthy |
/// | `keyop_atom, op, key` | once applied; `invalid_config` for a bad key |
/// | `keys_atom` | the installed keys, primary first |
/// | `stats_atom` | counters |
/// | `local_atom` | the address we advertise |
///
/// `mycorrizal::errc` in CAF errors. Stop it with
/// `caf::anon_send_exit(actor, caf::exit_reason::user_shutdown)` (without a
/// leave, others will detect a failure). It closes its sockets; pending
/// requests end with `errc::shutting_down`.
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

  /// The actor runs on a thread of its own (`caf::detached`) rather than on
  /// the scheduler's workers. Its protocol runs on timers: an idle cluster
  /// still probes every `probe_interval` and answers its peers' probes,
  /// and each of those events, run on a worker, would send that worker
  /// through CAF's polling phases (500 sleeps of 50 us with CAF's defaults:
  /// two idle nodes cost their hosts 2.8 % of a core each; on this thread
  /// 1.0-1.1 %, against 0.65-1.1 % for CAF with nothing in it:
  /// bench/RESULTS.md, "An idle node"). Off only for CAF's test
  /// coordinator, which runs scheduled actors alone.
  bool own_thread = true;
};

/// A started membership actor and where it listens.
struct membership_handle {
  membership_actor actor;
  /// The address we advertise (real port).
  ip_endpoint local;
};

/// Spawns a membership actor in `sys`: binds its sockets (retrying other
/// ports when `bind` has port 0 and the UDP port is taken), creates the
/// core (with `gossip.seed`, or a random seed when it is 0) and GnuTLS
/// nonces, and starts it.
/// @returns `errc::invalid_config` for bad options, `errc::connection_lost`
///   when a socket cannot be bound.
expected<membership_handle> spawn_membership(caf::actor_system& sys,
                                             membership_options opts);

} // namespace mycorrizal
