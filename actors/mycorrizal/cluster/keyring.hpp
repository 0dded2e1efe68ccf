// SPDX-License-Identifier: Apache-2.0
// Keyring operations on every member: serf's key manager over Mycorrizal's
// applications.
#pragma once

#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/interfaces.hpp"

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

/// The gossip keyring (memberlist's `Keyring`) is local to each node; a
/// rotation must reach every node. As serf's key manager does with a query,
/// the node that is asked (`node::keyring_install` and friends) sends the
/// operation to every alive Mycorrizal member (itself included) and collects
/// each member's answer within a timeout: the report names every member
/// asked and what failed where.
///
/// Every node registers the application `keyring_app_id` with a handler
/// (`spawn_keyring_handler`) that applies a request to its own membership
/// actor (`keyop_atom`, `keys_atom`). Requests travel on QUIC, not on
/// gossip, so they reach members whatever key their gossip uses.
///
/// Request payload: one byte (0 list, 1 install, 2 use, 3 remove), then the
/// raw key (none for list). Reply: empty for an operation; for list, each
/// key as one length byte and its bytes, primary first. A refused operation
/// (a bad key, `use` of a key that is not installed, `remove` of the primary
/// key) answers `errc::invalid_config`.
namespace mycorrizal {

/// The internal application every node registers.
inline constexpr std::string_view keyring_app_id = "mycorrizal.keyring";

/// One member's answer.
struct keyring_member_reply {
  std::string node;
  /// Set when the member did not apply the operation (or did not answer).
  std::optional<error> failure;
  /// For a list: the member's keys, primary first.
  std::vector<std::vector<std::byte>> keys;
};

/// A keyring operation across the cluster (serf's `KeyResponse`).
struct keyring_report {
  /// One per member asked, sorted by name.
  std::vector<keyring_member_reply> replies;

  /// Members that failed.
  size_t failed() const noexcept;
};

/// Spawns the handler of `keyring_app_id` for the membership actor `m`; it
/// ends with `caf::exit_reason::user_shutdown`.
caf::actor spawn_keyring_handler(caf::actor_system& sys, membership_actor m);

namespace detail {

/// The request payload of `op` (nothing: list) with `key`.
std::vector<std::byte>
encode_keyring_request(std::optional<key_op> op,
                       const std::vector<std::byte>& key);

/// The keys of a list reply; `errc::malformed_frame` for bad bytes.
expected<std::vector<std::vector<std::byte>>>
decode_keyring_list(const std::vector<std::byte>& reply);

} // namespace detail

} // namespace mycorrizal
