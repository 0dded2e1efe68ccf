// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/peering/from_gossip.hpp"

#include "mycorrizal/gossip/node_meta.hpp"

namespace mycorrizal::peering {

member_update from_gossip(gossip::member_event_kind kind,
                          const gossip::member& m) {
  member_update out;
  switch (kind) {
    case gossip::member_event_kind::dead:
      out.change = member_change::dead;
      break;
    case gossip::member_event_kind::left:
      out.change = member_change::left;
      break;
    default: out.change = member_change::alive;
  }
  out.name = m.name;
  out.address = m.address;
  out.incarnation = m.incarnation;
  if (auto meta = gossip::decode_node_meta(m.meta); meta && *meta) {
    out.quic_port = (*meta)->quic_port;
  }
  return out;
}

} // namespace mycorrizal::peering
