// SPDX-License-Identifier: Apache-2.0
// The peers actor: one QUIC connection per pair of Mycorrizal members.
#include "mycorrizal/cluster/peers.hpp"

#include "mycorrizal/cluster/internal/subscribers.hpp"
#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/peering/dialer.hpp"
#include "mycorrizal/peering/from_gossip.hpp"
#include "mycorrizal/runtime/actor_time.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/deadline_timer.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/transport/transport.hpp"
#include "mycorrizal/wire/frame.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <random>

// The dial policy (who dials, waits, backoff, duplicates, stale, stopped and
// gone members, leaving) is `peering::dialer`, a pure core; this actor feeds
// it membership events, dial results, connection ups and downs and its
// timer, and carries out what it decides. The control streams (HELLO, APPS)
// and the application streams are handled here.
namespace mycorrizal {

namespace {

constexpr std::string_view peers_component = "peers";

struct peers_state {
  static inline const char* name = "mycorrizal.peers";

  /// A connection the dialer holds, and what its control stream told us.
  struct link {
    std::string peer;
    connection_actor conn;
    ip_endpoint remote;
    stream_actor control;
    std::vector<std::string> apps;
    uint8_t version = 0;
    uint64_t incarnation = 0;
  };

  peers_options opts;
  transport_actor transport;
  std::optional<peering::dialer> core;
  /// By connection id: the connections the core holds (a connection that
  /// comes up is added before the core sees it, and removed when the core
  /// closes it or it goes down).
  std::map<peering::connection_id, link> links;
  detail::subscriber_list subscribers;
  /// Our applications (sorted) and membership incarnation, for the
  /// control streams.
  std::vector<std::string> apps;
  uint64_t incarnation = 0;
  /// The tick for the core's next deadline.
  deadline_timer timer;

  static peering::connection_id id_of(const connection_actor& conn) {
    return conn ? static_cast<peering::connection_id>(conn.id())
                : peering::no_connection;
  }

  /// The link of connection `id`, or nullptr.
  link* find_link(peering::connection_id id) {
    auto i = links.find(id);
    return i != links.end() ? &i->second : nullptr;
  }

  peer_info info(const std::string& who, const peering::peer& p) {
    peer_info out{who,        p.gossip, p.quic, connection_actor{},
                  p.incoming, {},       0,      p.unreachable};
    if (auto* l = find_link(p.connection)) {
      out.connection = l->conn;
      out.apps = l->apps;
      out.version = l->version;
    }
    return out;
  }

  wire::owned_frame hello() const {
    return wire::owned_hello{wire::protocol_version_min,
                             wire::protocol_version_max, incarnation, 0,
                             opts.name};
  }

  wire::owned_frame apps_frame() const {
    return wire::owned_apps{apps};
  }

  /// The link whose control stream is `stream` (or nullptr).
  link* by_control(const stream_actor& stream) {
    auto i = std::find_if(links.begin(), links.end(), [&](const auto& kv) {
      return kv.second.control && kv.second.control == stream;
    });
    return i != links.end() ? &i->second : nullptr;
  }
};

/// The public interface plus the timer.
using peers_impl = peers_actor::extend<caf::reacts_to<tick_atom, int64_t>>;

using peers_self = peers_impl::stateful_pointer<peers_state>;

template <class T>
void publish(peers_self self, const T& msg) {
  self->state.subscribers.publish(self, msg);
}

void close_connection(peers_self self, const connection_actor& conn,
                      const std::string& why) {
  if (conn) {
    self->send(conn, close_atom::value, uint64_t{0}, why);
  }
}

void open_control(peers_self self, const std::string& peer,
                  const connection_actor& conn);

void flush(peers_self self);

/// Dials `cmd.peer` through the transport and reports the result to the
/// core; `connection_up` (to us, as the handler) brings the connection.
void dial(peers_self self, const peering::dial& cmd) {
  auto& st = self->state;
  auto deadline = st.opts.dial_timeout;
  auto name = cmd.peer;
  self
    ->request(st.transport, deadline + std::chrono::seconds{1},
              dial_atom::value, cmd.address, name, deadline)
    .then(
      [=](connection_info&) {
        self->state.core->on_dial_succeeded(name, actor_now(self));
        flush(self);
      },
      [=](caf::error& err) {
        auto& cur = self->state;
        if (auto* p = cur.core->find(name)) {
          MYCORRIZAL_LOG_DEBUG_RL(peers_component, 5, "dial {} ({}) failed: {}",
                                  name, p->quic.to_string(),
                                  to_string(from_caf_error(err)));
        }
        cur.core->on_dial_failed(name, actor_now(self));
        flush(self);
      });
}

/// Carries out what the core decided, then re-arms the timer.
void flush(peers_self self) {
  auto& st = self->state;
  auto& core = *st.core;
  auto cmds = std::move(core.commands());
  core.commands().clear();
  for (auto& cmd : cmds) {
    if (auto* d = std::get_if<peering::dial>(&cmd)) {
      dial(self, *d);
    } else if (auto* c = std::get_if<peering::close_connection>(&cmd)) {
      auto i = st.links.find(c->id);
      if (i == st.links.end()) {
        continue;
      }
      if (c->reason == peering::close_reason::self) {
        MYCORRIZAL_LOG_WARN_RL(peers_component, 1,
                               "refused a connection to ourselves ({})",
                               i->second.remote.to_string());
      }
      close_connection(self, i->second.conn,
                       std::string{peering::to_string(c->reason)});
      st.links.erase(i); // the core no longer holds it
    } else if (auto* u = std::get_if<peering::publish_up>(&cmd)) {
      auto* l = st.find_link(u->id);
      auto* p = core.find(u->name);
      if (l == nullptr || p == nullptr) {
        continue;
      }
      auto conn = l->conn;
      publish(self,
              peer_up{peer_info{u->name, u->gossip, u->quic, conn, u->incoming,
                                l->apps, l->version, p->unreachable}});
      if (!u->incoming) {
        open_control(self, u->name, conn);
      }
    } else if (auto* dn = std::get_if<peering::publish_down>(&cmd)) {
      publish(self, peer_down{std::move(dn->peer), std::move(dn->reason)});
    } else if (auto* un = std::get_if<peering::publish_unreachable>(&cmd)) {
      publish(self,
              peer_unreachable{std::move(un->peer), std::move(un->reason)});
    }
  }
  st.timer.arm(self, core.next_deadline());
}

/// A member's gossip state changed (or was listed at subscription).
void on_member(peers_self self, gossip::member_event_kind kind,
               const gossip::member& m) {
  auto& st = self->state;
  if (m.name == st.opts.name) {
    st.incarnation = m.incarnation;
  }
  st.core->on_member(peering::from_gossip(kind, m), actor_now(self));
  flush(self);
}

/// The dialer opens the control stream with HELLO and sends APPS.
void open_control(peers_self self, const std::string& peer,
                  const connection_actor& conn) {
  auto& st = self->state;
  self
    ->request(conn, std::chrono::seconds{10}, open_atom::value, st.hello(),
              caf::actor_cast<caf::actor>(self))
    .then(
      [=](stream_actor& stream) {
        auto& cur = self->state;
        auto* l = cur.find_link(peers_state::id_of(conn));
        if (l == nullptr) {
          return; // replaced meanwhile
        }
        l->control = stream;
        self->send(stream, write_atom::value, cur.apps_frame());
      },
      [=](caf::error& err) {
        MYCORRIZAL_LOG_WARN_RL(peers_component, 1,
                               "cannot open the control stream to {}: {}", peer,
                               to_string(from_caf_error(err)));
      });
}

/// A HELLO from `peer`: agree on a version or close the connection.
bool on_hello(peers_self self, const std::string& peer, peers_state::link& l,
              const wire::owned_hello& h) {
  auto v = wire::negotiate_version(wire::protocol_version_min,
                                   wire::protocol_version_max, h.version_min,
                                   h.version_max);
  if (h.node_name != peer || v == 0) {
    auto why = v == 0 ? fmt::format("no common protocol version (ours {}-{}, "
                                    "theirs {}-{})",
                                    wire::protocol_version_min,
                                    wire::protocol_version_max, h.version_min,
                                    h.version_max)
                      : fmt::format("HELLO names '{}' on the connection of "
                                    "'{}'",
                                    h.node_name, peer);
    MYCORRIZAL_LOG_WARN(peers_component, "closing the connection to {}: {}",
                        peer, why);
    // Its connection_down tells the core.
    close_connection(self, l.conn, why);
    return false;
  }
  l.version = v;
  l.incarnation = h.incarnation;
  return true;
}

/// What the control stream of a peer carried.
void on_control_frames(peers_self self, stream_frames& msg) {
  auto& st = self->state;
  auto* l = st.by_control(msg.stream);
  if (l == nullptr) {
    return; // a control stream of a connection we dropped
  }
  for (auto& f : msg.frames) {
    if (auto* h = std::get_if<wire::owned_hello>(&f)) {
      if (!on_hello(self, l->peer, *l, *h)) {
        return;
      }
    } else if (auto* a = std::get_if<wire::owned_apps>(&f)) {
      l->apps = a->applications;
      std::sort(l->apps.begin(), l->apps.end());
    }
  }
}

/// The peer opened a stream: the control stream (HELLO) stays here,
/// application streams go to the streams actor.
caf::result<caf::actor> on_stream(peers_self self, stream_accepted& msg) {
  auto& st = self->state;
  if (auto* h = std::get_if<wire::owned_hello>(&msg.first)) {
    auto id = peers_state::id_of(msg.connection);
    auto* holder = st.core->holder(id);
    auto* l = st.find_link(id);
    if (holder == nullptr || *holder != msg.peer_name || l == nullptr) {
      return make_caf_error(error{errc::unexpected_frame,
                                  "HELLO on a connection that is not kept"});
    }
    if (!on_hello(self, msg.peer_name, *l, *h)) {
      return make_caf_error(
        error{errc::unsupported_version, "no common protocol version"});
    }
    l->control = msg.stream;
    std::vector<wire::owned_frame> reply;
    reply.push_back(st.hello());
    reply.push_back(st.apps_frame());
    self->send(msg.stream, write_atom::value, std::move(reply));
    return caf::actor_cast<caf::actor>(self);
  }
  if (!st.opts.streams) {
    auto app = std::string{"?"};
    if (auto* init = std::get_if<wire::owned_stream_init>(&msg.first)) {
      app = init->application;
    }
    return make_caf_error(
      error{errc::unknown_application,
            "no application '" + app + "' on " + st.opts.name});
  }
  // The streams actor names the consumer; its answer is ours.
  auto rp = self->make_response_promise();
  self->request(st.opts.streams, caf::infinite, std::move(msg))
    .then(
      [rp](caf::actor& consumer) mutable {
        rp.deliver(consumer);
      },
      [rp](caf::error& err) mutable {
        rp.deliver(err);
      });
  return rp;
}

void on_up(peers_self self, connection_up& up) {
  auto& st = self->state;
  auto& info = up.info;
  auto id = peers_state::id_of(info.connection);
  if (id == peering::no_connection) {
    return;
  }
  // Known before the core decides: a close names it by id.
  st.links[id] = peers_state::link{
    info.peer_name, info.connection, info.remote, stream_actor{}, {}, 0, 0};
  st.core->on_connection_up(peering::connection_up{id, info.peer_name,
                                                   info.remote, info.incoming},
                            actor_now(self));
  flush(self);
}

void on_down(peers_self self, connection_down& down) {
  auto& st = self->state;
  auto id = peers_state::id_of(down.connection);
  // Whatever its control stream said is gone with it.
  st.links.erase(id);
  st.core->on_connection_down(id, down.reason, down.unreachable,
                              actor_now(self));
  flush(self);
}

peers_impl::behavior_type peers_fn(peers_self self, const peers_options& opts) {
  auto& init = self->state;
  init.opts = opts;
  peering::dialer_config cfg;
  cfg.name = opts.name;
  cfg.backoff_min = opts.backoff_min;
  cfg.backoff_max = opts.backoff_max;
  cfg.dial_wait = opts.dial_wait;
  cfg.seed = opts.seed != 0 ? static_cast<uint32_t>(opts.seed)
                            : std::random_device{}();
  cfg.log = log::core_sink(peers_component);
  init.core.emplace(std::move(cfg));
  self->set_down_handler([=](caf::down_msg& dm) {
    self->state.subscribers.remove(dm.source);
  });
  return {
    [=](set_transport_atom, transport_actor& transport) {
      auto& st = self->state;
      st.transport = std::move(transport);
      self
        ->request(st.opts.membership, std::chrono::seconds{10},
                  subscribe_atom::value, caf::actor_cast<caf::actor>(self))
        .then(
          [=](std::vector<gossip::member>& members) {
            for (auto& m : members) {
              if (m.state == gossip::node_state::alive
                  || m.state == gossip::node_state::suspect) {
                on_member(self, gossip::member_event_kind::joined, m);
              }
            }
          },
          [=](caf::error& err) {
            MYCORRIZAL_LOG_ERROR(peers_component,
                                 "cannot follow membership: {}",
                                 to_string(from_caf_error(err)));
            self->quit(err);
          });
    },
    [=](gossip::member_event& ev) {
      on_member(self, ev.kind, ev.who);
    },
    [=](connection_up& up) {
      on_up(self, up);
    },
    [=](connection_down& down) {
      on_down(self, down);
    },
    [=](stream_accepted& msg) -> caf::result<caf::actor> {
      return on_stream(self, msg);
    },
    [=](stream_frames& msg) {
      on_control_frames(self, msg);
    },
    [=](stream_end& end) {
      if (auto* l = self->state.by_control(end.stream)) {
        l->control = stream_actor{};
      }
    },
    [=](nodes_atom, const std::string& app) {
      std::vector<std::string> out;
      for (auto& [id, l] : self->state.links) {
        if (std::binary_search(l.apps.begin(), l.apps.end(), app)) {
          out.push_back(l.peer);
        }
      }
      std::sort(out.begin(), out.end());
      return out;
    },
    [=](apps_atom, std::vector<std::string>& apps) {
      auto& st = self->state;
      std::sort(apps.begin(), apps.end());
      apps.erase(std::unique(apps.begin(), apps.end()), apps.end());
      st.apps = std::move(apps);
      for (auto& [id, l] : st.links) {
        if (l.control) {
          self->send(l.control, write_atom::value, st.apps_frame());
        }
      }
    },
    [=](tick_atom, int64_t armed_ns) {
      auto& st = self->state;
      if (!st.timer.fire(armed_ns)) {
        return; // superseded by an earlier deadline
      }
      st.core->on_timeout(actor_now(self));
      flush(self);
    },
    [=](connections_atom) {
      auto& st = self->state;
      std::vector<peer_info> out;
      for (auto& [name, p] : st.core->peers()) {
        if (p.alive || p.connection != peering::no_connection) {
          out.push_back(st.info(name, p));
        }
      }
      return out;
    },
    [=](subscribe_atom, caf::actor& who) {
      auto& st = self->state;
      st.subscribers.add(self, who);
      std::vector<peer_info> out;
      for (auto& [name, p] : st.core->peers()) {
        if (p.connection != peering::no_connection) {
          out.push_back(st.info(name, p));
        }
      }
      return out;
    },
    [=](stats_atom) {
      const auto& x = self->state.core->stats();
      return peers_stats{x.dials,      x.dial_failures, x.duplicates_closed,
                         x.refused,    x.ups,           x.downs,
                         x.unreachable};
    },
  };
}

} // namespace

expected<peers_actor> spawn_peers(caf::actor_system& sys, peers_options opts) {
  if (opts.name.empty()) {
    return unexpected{error{errc::invalid_config, "peers.name: required"}};
  }
  if (!opts.membership) {
    return unexpected{
      error{errc::invalid_config, "peers.membership: required"}};
  }
  if (opts.backoff_min <= caf::timespan::zero()
      || opts.backoff_max < opts.backoff_min) {
    return unexpected{error{errc::invalid_config,
                            "peers.backoff_min/max: need 0 < min <= max"}};
  }
  peers_actor actor = sys.spawn(peers_fn, std::move(opts));
  return actor;
}

} // namespace mycorrizal
