// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/peering/dialer.hpp"

/// From the membership core's events to the dialer's input.
namespace mycorrizal::peering {

/// What `ev` says to the dialer: joined, updated, suspect and alive_again
/// are `alive`; the QUIC port comes from the member's meta
/// (`gossip::node_meta`), 0 when the meta is not Mycorrizal's, is
/// malformed, or names no port.
member_update from_gossip(gossip::member_event_kind kind,
                          const gossip::member& m);

} // namespace mycorrizal::peering
