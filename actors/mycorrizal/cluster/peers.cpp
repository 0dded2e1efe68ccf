// SPDX-License-Identifier: Apache-2.0
// The peers actor: one QUIC connection per pair of Mycorrizal members.
#include "mycorrizal/cluster/peers.hpp"

#include "mycorrizal/cluster/internal/subscribers.hpp"
#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/transport/transport.hpp"
#include "mycorrizal/wire/frame.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <random>

namespace mycorrizal {

namespace {

constexpr std::string_view component = "peers";

struct peers_state {
  static inline const char* name = "mycorrizal.peers";

  struct entry {
    /// Alive (or suspect) in the membership view.
    bool alive = false;
    ip_endpoint gossip;
    ip_endpoint quic;
    /// The connection kept for this member.
    caf::actor conn;
    bool incoming = false;
    ip_endpoint conn_remote;
    bool dialing = false;
    /// Bumped to cancel a scheduled redial.
    uint64_t redial_gen = 0;
    /// We are not the dialer of this pair (the smaller name is), but the
    /// peer did not dial within `dial_wait`: we dial too.
    bool fallback = false;
    /// A `dial_wait` timer runs; bumping `wait_gen` cancels it.
    bool waiting = false;
    uint64_t wait_gen = 0;
    int failures = 0;
    /// The control stream of `conn` and what it told us.
    caf::actor control;
    std::vector<std::string> apps;
    uint8_t version = 0;
    uint64_t incarnation = 0;
    /// Its last connection stopped answering while it was alive; cleared
    /// when a connection to it is up again.
    bool unreachable = false;
    /// Its gossip incarnation as last seen.
    uint32_t gossip_incarnation = 0;
    /// It closed its connection because it stops, at this gossip
    /// incarnation: gossip of that incarnation (alive, suspect) does not
    /// revive it; a higher one (its restart refuting its death) does.
    std::optional<uint32_t> stopped_at;
  };

  peers_options opts;
  caf::actor transport;
  std::map<std::string, entry> peers;
  detail::subscriber_list subscribers;
  peers_stats counters;
  std::minstd_rand rng;
  /// Our applications (sorted) and membership incarnation, for the
  /// control streams.
  std::vector<std::string> apps;
  uint64_t incarnation = 0;
  /// We left the cluster (the node stops): no more dials, so that a peer
  /// that closes its connection to us on our `left` is not dialed again.
  bool leaving = false;

  static peer_info info(const std::string& who, const entry& e) {
    return peer_info{who,        e.gossip, e.quic,    e.conn,
                     e.incoming, e.apps,   e.version, e.unreachable};
  }

  wire::owned_frame hello() const {
    return wire::owned_hello{wire::protocol_version_min,
                             wire::protocol_version_max, incarnation, 0,
                             opts.name};
  }

  wire::owned_frame apps_frame() const {
    return wire::owned_apps{apps};
  }

  /// The peer whose control stream is `stream` (or `peers.end()`).
  std::map<std::string, entry>::iterator by_control(const caf::actor& stream) {
    return std::find_if(peers.begin(), peers.end(), [&](const auto& kv) {
      return kv.second.control && kv.second.control == stream;
    });
  }
};

using peers_actor = caf::stateful_actor<peers_state>;

template <class T>
void publish(peers_actor* self, const T& msg) {
  self->state.subscribers.publish(self, msg);
}

/// Whether we dial `peer` (the smaller name dials).
bool we_dial(const peers_actor* self, const std::string& peer) {
  return self->state.opts.name < peer;
}

/// The pair's dialer, or the other side once it waited `dial_wait` in vain
/// (its gossip may not know us yet; a duplicate is resolved on arrival).
bool should_dial(const peers_actor* self, const std::string& peer,
                 const peers_state::entry& e) {
  return we_dial(self, peer) || e.fallback;
}

/// Stops waiting for a peer's dial (it connected, or it is gone).
void stop_waiting(peers_state::entry& e) {
  e.fallback = false;
  e.waiting = false;
  ++e.wait_gen;
}

/// Forgets what a connection's control stream said.
void forget_control(peers_state::entry& e) {
  e.control = caf::actor{};
  e.apps.clear();
  e.version = 0;
}

void close_connection(peers_actor* self, const caf::actor& conn,
                      const std::string& why) {
  if (conn) {
    self->send(conn, close_atom::value, uint64_t{0}, why);
  }
}

void maybe_dial(peers_actor* self, const std::string& name);

void schedule_redial(peers_actor* self, const std::string& name) {
  auto& st = self->state;
  auto& e = st.peers[name];
  if (!e.alive || !should_dial(self, name, e) || e.conn || e.dialing) {
    return;
  }
  auto base
    = std::min(st.opts.backoff_max,
               st.opts.backoff_min * (int64_t{1} << std::min(e.failures, 20)));
  // ±25 % jitter, so that a cluster does not redial in lock step.
  std::uniform_real_distribution<double> jitter{0.75, 1.25};
  auto wait = std::chrono::duration_cast<caf::timespan>(
    std::chrono::duration<double, std::nano>(static_cast<double>(base.count())
                                             * jitter(st.rng)));
  self->delayed_send(self, wait, redial_atom::value, name, ++e.redial_gen);
}

void maybe_dial(peers_actor* self, const std::string& name) {
  auto& st = self->state;
  auto& e = st.peers[name];
  if (!st.transport || st.leaving || !e.alive || e.conn || e.dialing) {
    return;
  }
  if (!should_dial(self, name, e)) {
    if (!e.waiting) {
      e.waiting = true;
      std::uniform_real_distribution<double> jitter{1.0, 1.5};
      auto wait = std::chrono::duration_cast<caf::timespan>(
        std::chrono::duration<double, std::nano>(
          static_cast<double>(st.opts.dial_wait.count()) * jitter(st.rng)));
      self->delayed_send(self, wait, wait_over_atom::value, name, e.wait_gen);
    }
    return;
  }
  e.dialing = true;
  ++st.counters.dials;
  auto deadline = st.opts.dial_timeout;
  self
    ->request(st.transport, deadline + std::chrono::seconds{1},
              dial_atom::value, e.quic, name, deadline)
    .then(
      [=](connection_info&) {
        // connection_up (to us, as the handler) adopts it.
        self->state.peers[name].dialing = false;
      },
      [=](caf::error& err) {
        auto& cur = self->state;
        auto& p = cur.peers[name];
        p.dialing = false;
        ++p.failures;
        ++cur.counters.dial_failures;
        MYCORRIZAL_LOG_DEBUG_RL(component, 5, "dial {} ({}) failed: {}", name,
                                p.quic.to_string(),
                                to_string(from_caf_error(err)));
        schedule_redial(self, name);
      });
}

/// A member's gossip state changed (or was listed at subscription).
void on_member(peers_actor* self, gossip::member_event_kind kind,
               const gossip::member& m) {
  auto& st = self->state;
  if (m.name == st.opts.name) {
    st.incarnation = m.incarnation;
    if (kind == gossip::member_event_kind::left) {
      st.leaving = true;
    }
    return;
  }
  auto meta = gossip::decode_node_meta(m.meta);
  if (!meta || !*meta || (*meta)->quic_port == 0) {
    return; // a membership-only member (e.g. a plain memberlist node)
  }
  auto& e = st.peers[m.name];
  using k = gossip::member_event_kind;
  if (kind == k::dead || kind == k::left) {
    bool was_alive = e.alive;
    e.alive = false;
    e.unreachable = false; // gone, not unreachable
    ++e.redial_gen;
    stop_waiting(e);
    if (e.conn) {
      auto conn = std::move(e.conn);
      e.conn = caf::actor{};
      forget_control(e);
      close_connection(self, conn,
                       kind == k::dead ? "member dead" : "member left");
      ++st.counters.downs;
    } else if (!was_alive) {
      return; // nothing changed for the subscribers
    }
    // Also without a connection: whoever waits for one to this member
    // (remote handles, queued messages) must learn that it will not come.
    publish(self, peer_down{
                    m.name,
                    error{errc::node_down,
                          m.name + (kind == k::dead ? " is dead" : " left")}});
    return;
  }
  e.gossip_incarnation = m.incarnation;
  auto quic = m.address;
  quic.port((*meta)->quic_port);
  if (e.stopped_at && m.incarnation <= *e.stopped_at) {
    return; // news from before it stopped
  }
  e.stopped_at.reset();
  e.alive = true;
  e.gossip = m.address;
  if (e.conn && e.quic != quic && e.conn_remote != quic) {
    // It came back elsewhere (a restart): the old connection is stale.
    MYCORRIZAL_LOG_INFO(component, "{} moved from {} to {}: reconnecting",
                        m.name, e.quic.to_string(), quic.to_string());
    auto conn = std::move(e.conn);
    e.conn = caf::actor{};
    forget_control(e);
    close_connection(self, conn, "stale connection");
    ++st.counters.downs;
    publish(self, peer_down{m.name, error{errc::connection_lost,
                                          "replaced after a restart"}});
  }
  e.quic = quic;
  maybe_dial(self, m.name);
}

/// The dialer opens the control stream with HELLO and sends APPS.
void open_control(peers_actor* self, const std::string& peer,
                  const caf::actor& conn) {
  auto& st = self->state;
  self
    ->request(conn, std::chrono::seconds{10}, open_atom::value, st.hello(),
              caf::actor_cast<caf::actor>(self))
    .then(
      [=](caf::actor& stream) {
        auto& cur = self->state;
        auto& e = cur.peers[peer];
        if (e.conn != conn) {
          return; // replaced meanwhile
        }
        e.control = stream;
        self->send(stream, write_atom::value, cur.apps_frame());
      },
      [=](caf::error& err) {
        MYCORRIZAL_LOG_WARN_RL(component, 1,
                               "cannot open the control stream to {}: {}", peer,
                               to_string(from_caf_error(err)));
      });
}

/// A HELLO from `peer`: agree on a version or close the connection.
bool on_hello(peers_actor* self, const std::string& peer, peers_state::entry& e,
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
    MYCORRIZAL_LOG_WARN(component, "closing the connection to {}: {}", peer,
                        why);
    close_connection(self, e.conn, why);
    return false;
  }
  e.version = v;
  e.incarnation = h.incarnation;
  return true;
}

/// What the control stream of a peer carried.
void on_control_frames(peers_actor* self, stream_frames& msg) {
  auto& st = self->state;
  auto i = st.by_control(msg.stream);
  if (i == st.peers.end()) {
    return; // a control stream of a connection we dropped
  }
  const auto& peer = i->first;
  auto& e = i->second;
  for (auto& f : msg.frames) {
    if (auto* h = std::get_if<wire::owned_hello>(&f)) {
      if (!on_hello(self, peer, e, *h)) {
        return;
      }
    } else if (auto* a = std::get_if<wire::owned_apps>(&f)) {
      e.apps = a->applications;
      std::sort(e.apps.begin(), e.apps.end());
    }
  }
}

/// The peer opened a stream: the control stream (HELLO) stays here,
/// application streams go to the streams actor.
caf::result<caf::actor> on_stream(peers_actor* self, stream_accepted& msg) {
  auto& st = self->state;
  if (auto* h = std::get_if<wire::owned_hello>(&msg.first)) {
    auto i = st.peers.find(msg.peer_name);
    if (i == st.peers.end() || i->second.conn != msg.connection) {
      return make_caf_error(error{errc::unexpected_frame,
                                  "HELLO on a connection that is not kept"});
    }
    auto& e = i->second;
    if (!on_hello(self, msg.peer_name, e, *h)) {
      return make_caf_error(
        error{errc::unsupported_version, "no common protocol version"});
    }
    e.control = msg.stream;
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

void on_up(peers_actor* self, connection_up& up) {
  auto& st = self->state;
  auto& info = up.info;
  if (info.peer_name == st.opts.name) {
    ++st.counters.refused;
    MYCORRIZAL_LOG_WARN_RL(component, 1,
                           "refused a connection to ourselves ({})",
                           info.remote.to_string());
    close_connection(self, info.connection, "connection to self");
    return;
  }
  auto& e = st.peers[info.peer_name];
  if (e.conn) {
    // Both dialed: keep the connection the smaller name dialed.
    bool keep_new = info.incoming != we_dial(self, info.peer_name);
    ++st.counters.duplicates_closed;
    if (!keep_new) {
      close_connection(self, info.connection, "duplicate connection");
      return;
    }
    auto old = std::move(e.conn);
    e.conn = caf::actor{};
    forget_control(e);
    close_connection(self, old, "duplicate connection");
  }
  e.conn = info.connection;
  stop_waiting(e);
  e.incoming = info.incoming;
  e.conn_remote = info.remote;
  e.failures = 0;
  if (e.unreachable) {
    MYCORRIZAL_LOG_INFO(component, "{} reachable again", info.peer_name);
    e.unreachable = false;
  }
  ++e.redial_gen;
  ++st.counters.ups;
  if (!e.alive && e.quic == ip_endpoint{}) {
    // Not in our membership view yet: it will be soon; its address is where
    // the connection comes from.
    e.quic = info.remote;
  }
  publish(self, peer_up{st.info(info.peer_name, e)});
  if (!info.incoming) {
    open_control(self, info.peer_name, info.connection);
  }
}

void on_down(peers_actor* self, connection_down& down) {
  auto& st = self->state;
  for (auto& [name, e] : st.peers) {
    if (e.conn && e.conn == down.connection) {
      e.conn = caf::actor{};
      forget_control(e);
      ++st.counters.downs;
      if (down.reason == errc::node_down) {
        // It closed because it stops: gone, as if its leave had arrived
        // (which may still come, or not if it was lost). Its restart
        // announces itself as alive again, with a higher incarnation.
        e.alive = false;
        e.unreachable = false;
        e.stopped_at = e.gossip_incarnation;
        ++e.redial_gen;
        stop_waiting(e);
        publish(self, peer_down{
                        name, error{errc::node_down,
                                    name + " left: " + down.reason.context()}});
        return;
      }
      if (down.unreachable && e.alive) {
        // Membership says alive, the connection says otherwise: reachability
        // is reported on its own, once per connection.
        ++st.counters.unreachable;
        e.unreachable = true;
        MYCORRIZAL_LOG_WARN(component, "{} unreachable: {}", name,
                            down.reason.context());
        publish(self, peer_unreachable{name, down.reason});
      }
      publish(self, peer_down{name, error{errc::connection_lost,
                                          "connection lost: "
                                            + to_string(down.reason)}});
      if (e.alive) {
        // The dialer redials; the other side waits for that again.
        schedule_redial(self, name);
        maybe_dial(self, name);
      }
      return;
    }
  }
}

caf::behavior peers_impl(peers_actor* self, const peers_options& opts) {
  auto& init = self->state;
  init.opts = opts;
  init.rng.seed(opts.seed != 0 ? static_cast<uint32_t>(opts.seed)
                               : std::random_device{}());
  self->set_down_handler([=](caf::down_msg& dm) {
    self->state.subscribers.remove(dm.source);
  });
  return {
    [=](set_transport_atom, caf::actor& transport) {
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
            MYCORRIZAL_LOG_ERROR(component, "cannot follow membership: {}",
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
      auto& st = self->state;
      if (auto i = st.by_control(end.stream); i != st.peers.end()) {
        i->second.control = caf::actor{};
      }
    },
    [=](nodes_atom, const std::string& app) {
      std::vector<std::string> out;
      for (auto& [name, e] : self->state.peers) {
        if (e.conn && std::binary_search(e.apps.begin(), e.apps.end(), app)) {
          out.push_back(name);
        }
      }
      return out;
    },
    [=](apps_atom, std::vector<std::string>& apps) {
      auto& st = self->state;
      std::sort(apps.begin(), apps.end());
      apps.erase(std::unique(apps.begin(), apps.end()), apps.end());
      st.apps = std::move(apps);
      for (auto& [name, e] : st.peers) {
        if (e.control) {
          self->send(e.control, write_atom::value, st.apps_frame());
        }
      }
      return caf::unit;
    },
    [=](wait_over_atom, const std::string& name, uint64_t gen) {
      auto& st = self->state;
      auto i = st.peers.find(name);
      if (i == st.peers.end() || i->second.wait_gen != gen) {
        return;
      }
      auto& e = i->second;
      e.waiting = false;
      if (e.alive && !e.conn) {
        MYCORRIZAL_LOG_INFO(
          component, "{} did not dial us within {} ms: dialing it", name,
          std::chrono::duration_cast<std::chrono::milliseconds>(
            st.opts.dial_wait)
            .count());
        e.fallback = true;
        maybe_dial(self, name);
      }
    },
    [=](redial_atom, const std::string& name, uint64_t gen) {
      auto& st = self->state;
      if (auto i = st.peers.find(name);
          i != st.peers.end() && i->second.redial_gen == gen) {
        maybe_dial(self, name);
      }
    },
    [=](connections_atom) {
      auto& st = self->state;
      std::vector<peer_info> out;
      for (auto& [name, e] : st.peers) {
        if (e.alive || e.conn) {
          out.push_back(st.info(name, e));
        }
      }
      return out;
    },
    [=](subscribe_atom, caf::actor& who) {
      auto& st = self->state;
      st.subscribers.add(self, who);
      std::vector<peer_info> out;
      for (auto& [name, e] : st.peers) {
        if (e.conn) {
          out.push_back(st.info(name, e));
        }
      }
      return out;
    },
    [=](stats_atom) {
      return self->state.counters;
    },
  };
}

} // namespace

expected<caf::actor> spawn_peers(caf::actor_system& sys, peers_options opts) {
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
  return sys.spawn(peers_impl, std::move(opts));
}

} // namespace mycorrizal
