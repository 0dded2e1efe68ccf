// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cluster/stack.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <optional>
#include <string>
#include <vector>

namespace mycorrizal {

namespace {

/// Stops every valid actor of `xs` and waits for each.
void stop_all(caf::actor_system& sys, const std::vector<caf::actor>& xs) {
  std::vector<caf::actor> started;
  for (const auto& a : xs) {
    if (a) {
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      started.push_back(a);
    }
  }
  if (!started.empty()) {
    caf::scoped_actor self{sys};
    for (const auto& a : started) {
      self->wait_for(a);
    }
  }
}

/// Sets the QUIC port (and our roles) in the membership's metadata and
/// waits for it.
expected<void>
announce_quic_port(caf::actor_system& sys, const membership_actor& membership,
                   uint16_t port, uint8_t roles, caf::timespan wait) {
  gossip::node_meta meta;
  meta.quic_port = port;
  meta.roles = roles;
  auto bytes = gossip::encode_node_meta(meta);
  if (!bytes) {
    return unexpected{bytes.error()};
  }
  std::string text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  caf::scoped_actor self{sys};
  std::optional<error> failed;
  self->request(membership, wait, update_atom::value, std::move(text))
    .receive([] {},
             [&](caf::error& e) {
               failed = from_caf_error(e);
             });
  if (failed) {
    return unexpected{std::move(*failed)};
  }
  return {};
}

} // namespace

expected<cluster_stack> start_cluster_stack(caf::actor_system& sys,
                                            cluster_stack_options opts) {
  cluster_stack out;
  auto undo = [&](error e) -> expected<cluster_stack> {
    stop_all(sys, {caf::actor_cast<caf::actor>(out.transport.actor),
                   caf::actor_cast<caf::actor>(out.peers),
                   caf::actor_cast<caf::actor>(out.membership.actor)});
    return unexpected{std::move(e)};
  };
  auto reactor = opts.membership.reactor;
  auto m = spawn_membership(sys, std::move(opts.membership));
  if (!m) {
    return unexpected{m.error()};
  }
  out.membership = *m;
  if (!opts.peers.membership) {
    opts.peers.membership = out.membership.actor;
  }
  if (!opts.peers.streams) {
    opts.peers.streams = opts.streams;
  }
  auto p = spawn_peers(sys, std::move(opts.peers));
  if (!p) {
    return undo(p.error());
  }
  out.peers = *p;
  opts.transport.handler = out.peers;
  if (!opts.transport.reactor) {
    opts.transport.reactor = reactor;
  }
  auto t = spawn_transport(sys, std::move(opts.transport));
  if (!t) {
    return undo(t.error());
  }
  out.transport = *t;
  // Others dial the QUIC port our gossip metadata names; only then may the
  // peers actor follow the membership and dial.
  if (auto ok = announce_quic_port(sys, out.membership.actor,
                                   out.transport.local.port(), opts.roles,
                                   opts.wait);
      !ok) {
    return undo(ok.error());
  }
  caf::anon_send(out.peers, set_transport_atom::value, out.transport.actor);
  return out;
}

void stop_cluster_stack(caf::actor_system& sys, const cluster_stack& stack) {
  stop_all(sys, {caf::actor_cast<caf::actor>(stack.transport.actor),
                 caf::actor_cast<caf::actor>(stack.peers),
                 caf::actor_cast<caf::actor>(stack.membership.actor)});
}

} // namespace mycorrizal
