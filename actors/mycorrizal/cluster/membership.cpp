// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cluster/membership.hpp"

#include "mycorrizal/cluster/internal/subscribers.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/runtime/actor_time.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/deadline_timer.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/time.hpp"

#include <caf/all.hpp>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <unordered_map>

namespace mycorrizal {

namespace {

constexpr std::string_view membership_component = "gossip";

/// A tick later than this makes the actor read its socket before the
/// core's timers run (see the tick handler). Well above the lateness of a
/// busy but running process, well below a probe timeout.
constexpr duration late_tick = std::chrono::milliseconds{100};

gossip::byte_buffer to_bytes(const std::string& s) {
  gossip::byte_buffer out(s.size());
  std::transform(s.begin(), s.end(), out.begin(), [](char c) {
    return static_cast<std::byte>(c);
  });
  return out;
}

std::string to_text(const gossip::byte_buffer& b) {
  std::string out(b.size(), '\0');
  std::transform(b.begin(), b.end(), out.begin(), [](std::byte c) {
    return static_cast<char>(c);
  });
  return out;
}

} // namespace

/// What the factory hands the actor once its sockets are bound.
struct detail::membership_init {
  gossip::membership_config config;
  std::shared_ptr<net::reactor> reactor;
  net::udp_socket_id udp{};
  net::tcp_listener_id tcp{};
  /// The address the sockets are bound to (outgoing TCP leaves from it).
  ip_endpoint bind;
};

namespace {

using init_ptr = detail::membership_init_ptr;

/// The longest the actor's timer waits (deadline_timer::arm).
constexpr duration timer_horizon = std::chrono::seconds{2};

struct membership_state {
  static inline const char* name = "mycorrizal.membership";

  std::unique_ptr<gossip::membership> core;
  std::shared_ptr<net::reactor> reactor;
  net::udp_socket_id udp{};
  net::tcp_listener_id tcp{};
  ip_endpoint bind;

  /// One TCP exchange: an outgoing one (push/pull or TCP ping, with the
  /// core's stream id) or an accepted one.
  struct exchange {
    bool outgoing = false;
    uint64_t stream_id = 0;
    ip_endpoint peer;
    gossip::byte_buffer received;
    bool done = false;
  };
  std::unordered_map<net::tcp_conn_id, exchange> exchanges;

  std::map<uint64_t, caf::response_promise> joins;
  std::vector<caf::response_promise> leaves;
  detail::subscriber_list subscribers;

  /// The tick for the core's next deadline.
  deadline_timer timer;

  /// A late tick asked the reactor to read the gossip socket first; the
  /// core's timers run when `drained_atom` comes back.
  bool draining = false;

  uint64_t send_errors = 0;
  uint64_t tcp_errors = 0;

  membership_state() = default;
  membership_state(const membership_state&) = delete;
  membership_state& operator=(const membership_state&) = delete;

  /// CAF 0.17 destroys the state in `on_exit`, before attached functors
  /// run, so the cleanup lives here: pending requests fail, sockets close.
  ~membership_state();
};

void fail_all(membership_state& st, const error& why);

membership_state::~membership_state() {
  fail_all(*this, error{errc::shutting_down, "membership stopped"});
  if (reactor) {
    std::ignore = reactor->close_udp(udp);
    std::ignore = reactor->close_tcp_listener(tcp);
    for (auto& [conn, x] : exchanges) {
      std::ignore = reactor->close_tcp(conn, net::close_mode::abort);
    }
  }
}

/// The public interface plus what only the actor itself, its factory and
/// the reactor send it.
using membership_impl = membership_actor::extend<
  caf::reacts_to<init_atom, init_ptr>, caf::reacts_to<tick_atom, int64_t>,
  caf::reacts_to<drained_atom>, caf::reacts_to<net::udp_batch>,
  caf::reacts_to<net::tcp_accepted>, caf::reacts_to<net::tcp_connected>,
  caf::reacts_to<net::tcp_received>, caf::reacts_to<net::tcp_eof>,
  caf::reacts_to<net::tcp_closed>>;

using membership_self = membership_impl::stateful_pointer<membership_state>;

void fail_all(membership_state& st, const error& why) {
  for (auto& [id, rp] : st.joins) {
    rp.deliver(make_caf_error(why));
  }
  st.joins.clear();
  for (auto& rp : st.leaves) {
    rp.deliver(make_caf_error(why));
  }
  st.leaves.clear();
}

/// Sends what the core produced, starts the TCP exchanges it asked for,
/// publishes its events and re-arms the timer. Loops because a TCP
/// exchange that cannot even start is reported back at once.
void flush(membership_self self) {
  auto& st = self->state;
  auto& core = *st.core;
  for (;;) {
    auto now = actor_now(self);
    for (auto& d : core.outbox()) {
      if (auto ok = st.reactor->send_udp(st.udp, d.to, d.bytes); !ok) {
        ++st.send_errors;
        MYCORRIZAL_LOG_DEBUG_RL(membership_component, 10,
                                "send to {} failed: {}", d.to.to_string(),
                                to_string(ok.error()));
      }
    }
    core.outbox().clear();
    auto requests = std::move(core.stream_requests());
    core.stream_requests().clear();
    bool again = false;
    for (auto& r : requests) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        r.deadline - now);
      if (left <= std::chrono::milliseconds::zero()) {
        left = std::chrono::milliseconds{1};
      }
      net::tcp_options opts;
      opts.deadline = left;
      // From the address we bound (not the host's default route), so
      // address-based firewall rules and multi-homed hosts see us.
      opts.source = st.bind;
      opts.max_received_bytes = size_t{64} << 20;
      auto conn = st.reactor->connect_tcp(
        r.to, caf::actor_cast<caf::actor>(self), left, opts);
      if (!conn) {
        ++st.tcp_errors;
        core.stream_failed(r.id, conn.error(), now);
        again = true;
        continue;
      }
      if (auto ok = st.reactor->write_tcp(*conn, std::move(r.bytes)); !ok) {
        ++st.tcp_errors;
        std::ignore = st.reactor->close_tcp(*conn, net::close_mode::abort);
        core.stream_failed(r.id, ok.error(), now);
        again = true;
        continue;
      }
      st.exchanges.emplace(
        *conn, membership_state::exchange{true, r.id, r.to, {}, false});
    }
    for (auto& ev : core.events()) {
      if (auto* m = std::get_if<gossip::member_event>(&ev)) {
        MYCORRIZAL_LOG_INFO(membership_component, "{} {} ({}, incarnation {})",
                            m->who.name, to_string(m->kind),
                            m->who.address.to_string(), m->who.incarnation);
        st.subscribers.publish(self, *m);
      } else if (auto* j = std::get_if<gossip::join_completed>(&ev)) {
        auto i = st.joins.find(j->id);
        if (i == st.joins.end()) {
          continue;
        }
        if (j->contacted > 0 || j->errors.empty()) {
          i->second.deliver(static_cast<uint64_t>(j->contacted));
        } else {
          std::string why;
          for (const auto& e : j->errors) {
            why += why.empty() ? "" : "; ";
            why += to_string(e);
          }
          i->second.deliver(make_caf_error(
            error{errc::connection_lost, "no seed answered: " + why}));
        }
        st.joins.erase(i);
      } else if (auto* l = std::get_if<gossip::leave_completed>(&ev)) {
        for (auto& rp : st.leaves) {
          if (l->timed_out) {
            rp.deliver(make_caf_error(
              error{errc::timeout, "leave was not gossiped in time"}));
          } else {
            rp.deliver(caf::unit);
          }
        }
        st.leaves.clear();
      }
    }
    core.events().clear();
    if (!again) {
      break;
    }
  }
  // Its own thread lives as long as its last tick: at most two seconds
  // after the actor ended (push/pull and reconnect timers are 30 s away).
  st.timer.arm(self, core.next_deadline(), timer_horizon);
}

void on_tcp_bytes(membership_self self, net::tcp_conn_id conn,
                  std::vector<std::byte>& data) {
  auto& st = self->state;
  auto i = st.exchanges.find(conn);
  if (i == st.exchanges.end() || i->second.done) {
    return;
  }
  auto& x = i->second;
  x.received.insert(x.received.end(), data.begin(), data.end());
  auto now = actor_now(self);
  if (x.outgoing) {
    if (st.core->handle_stream_reply(x.stream_id, x.received, now)) {
      x.done = true;
      std::ignore = st.reactor->close_tcp(conn, net::close_mode::flush);
    }
  } else {
    auto step = st.core->handle_stream(x.peer, x.received, now);
    if (step.done) {
      x.done = true;
      if (!step.reply.empty()) {
        std::ignore = st.reactor->write_tcp(conn, std::move(step.reply));
      }
      std::ignore = st.reactor->close_tcp(conn, net::close_mode::flush);
    }
  }
  flush(self);
}

/// Sets up the state from what the factory bound.
void init(membership_self self, const init_ptr& init) {
  auto& st = self->state;
  st.reactor = init->reactor;
  st.udp = init->udp;
  st.tcp = init->tcp;
  st.bind = init->bind;
  auto core = gossip::membership::make(init->config, actor_now(self));
  if (!core) {
    MYCORRIZAL_LOG_ERROR(membership_component, "cannot start: {}",
                         to_string(core.error()));
    self->quit(make_caf_error(core.error()));
    return;
  }
  st.core = std::move(*core);
  MYCORRIZAL_LOG_INFO(membership_component, "{} gossiping on {} ({} keys)",
                      st.core->config().name,
                      st.core->config().advertise.to_string(),
                      st.core->keys().keys().size());
  flush(self);
}

membership_impl::behavior_type membership_fn(membership_self self) {
  self->set_down_handler([=](caf::down_msg& dm) {
    self->state.subscribers.remove(dm.source);
  });
  // Until the factory hands over the bound sockets (`init_atom`), every
  // other message waits in the mailbox: the reactor may report a datagram
  // before that.
  auto ready = [=] {
    return self->state.core != nullptr;
  };
  return {
    [=](init_atom, const init_ptr& x) {
      init(self, x);
    },
    [=](net::udp_batch& batch) -> caf::result<void> {
      if (!ready()) {
        return caf::skip;
      }
      auto& st = self->state;
      auto now = actor_now(self);
      for (auto& d : batch.datagrams) {
        st.core->handle_datagram(d.from, d.data, now);
      }
      flush(self);
      return caf::unit;
    },
    [=](net::tcp_accepted& x) -> caf::result<void> {
      if (!ready()) {
        return caf::skip;
      }
      self->state.exchanges.emplace(
        x.conn, membership_state::exchange{false, 0, x.peer, {}, false});
      return caf::unit;
    },
    [=](net::tcp_connected&) -> caf::result<void> {
      if (!ready()) {
        return caf::skip;
      }
      // The request was queued before the connection was up.
      return caf::unit;
    },
    [=](net::tcp_received& x) -> caf::result<void> {
      if (!ready()) {
        return caf::skip;
      }
      on_tcp_bytes(self, x.conn, x.data);
      return caf::unit;
    },
    [=](net::tcp_eof& x) -> caf::result<void> {
      if (!ready()) {
        return caf::skip;
      }
      std::ignore = self->state.reactor->close_tcp(x.conn);
      return caf::unit;
    },
    [=](net::tcp_closed& x) -> caf::result<void> {
      if (!ready()) {
        return caf::skip;
      }
      auto& st = self->state;
      auto i = st.exchanges.find(x.conn);
      if (i == st.exchanges.end()) {
        return caf::unit;
      }
      auto ex = std::move(i->second);
      st.exchanges.erase(i);
      if (ex.outgoing && !ex.done) {
        ++st.tcp_errors;
        auto why = x.reason.code() == errc::none
                     ? error{errc::connection_lost, "closed before a reply"}
                     : x.reason;
        st.core->stream_failed(ex.stream_id, why, actor_now(self));
        flush(self);
      }
      return caf::unit;
    },
    [=](tick_atom, int64_t armed_ns) {
      auto& st = self->state;
      if (!st.timer.fire(armed_ns)) {
        return; // superseded by an earlier deadline
      }
      if (st.draining) {
        return; // `drained_atom` runs the timers
      }
      // A tick this late means the process did not run for a while
      // (stopped, starved): the acks and refutations sent to us meanwhile
      // may still sit in the socket, and CAF's clock can hand us the tick
      // before the reactor hands us those datagrams. The core's timers
      // wait until the reactor has read the socket.
      auto now = actor_now(self);
      auto armed = time_point{duration{armed_ns}};
      if (now - armed > late_tick && st.reactor) {
        auto asked = st.reactor->drain_udp(
          st.udp, caf::make_message(drained_atom::value));
        if (asked) {
          st.draining = true;
          return;
        }
      }
      st.core->on_timeout(now);
      flush(self);
    },
    [=](drained_atom) {
      auto& st = self->state;
      st.draining = false;
      st.core->on_timeout(actor_now(self));
      flush(self);
    },
    [=](join_atom, std::vector<std::string>& seeds) -> caf::result<uint64_t> {
      std::vector<ip_endpoint> eps;
      for (const auto& s : seeds) {
        auto ep = ip_endpoint::parse(s, 7946);
        if (!ep) {
          return make_caf_error(ep.error());
        }
        eps.push_back(*ep);
      }
      auto rp = self->make_response_promise();
      auto id = self->state.core->join(eps, actor_now(self));
      self->state.joins.emplace(id, rp);
      flush(self);
      return rp;
    },
    [=](leave_atom, caf::timespan timeout) -> caf::result<void> {
      auto rp = self->make_response_promise();
      self->state.leaves.push_back(rp);
      self->state.core->leave(timeout, actor_now(self));
      flush(self);
      return rp;
    },
    [=](members_atom) {
      return self->state.core->members();
    },
    [=](update_atom, const std::string& meta) -> caf::result<void> {
      auto ok = self->state.core->update_meta(to_bytes(meta), actor_now(self));
      if (!ok) {
        return make_caf_error(ok.error());
      }
      flush(self);
      return caf::unit;
    },
    [=](subscribe_atom, const caf::actor& who) {
      self->state.subscribers.add(self, who);
      return self->state.core->members();
    },
    [=](unsub_atom, const caf::actor& who) {
      self->state.subscribers.remove(who.address());
      self->demonitor(who);
    },
    [=](health_atom) {
      return self->state.core->health_score();
    },
    [=](keyop_atom, key_op op, const std::string& key) -> caf::result<void> {
      auto& ring = self->state.core->keys();
      auto bytes = to_bytes(key);
      expected<void> ok;
      switch (op) {
        case key_op::install: ok = ring.install(bytes); break;
        case key_op::use: ok = ring.use(bytes); break;
        case key_op::remove: ok = ring.remove(bytes); break;
      }
      if (!ok) {
        return make_caf_error(ok.error());
      }
      return caf::unit;
    },
    [=](keys_atom) {
      std::vector<std::string> out;
      for (const auto& k : self->state.core->keys().keys()) {
        out.push_back(to_text(k));
      }
      return out;
    },
    [=](stats_atom) {
      auto& st = self->state;
      return membership_counters{st.core->stats(), st.send_errors,
                                 st.tcp_errors};
    },
    [=](local_atom) {
      return self->state.core->config().advertise;
    },
  };
}

/// Binds TCP, then UDP on the same port (memberlist's order); with port 0
/// a few ports are tried until both are free.
expected<std::pair<net::tcp_listener, net::udp_socket>>
bind_sockets(net::reactor& r, const ip_endpoint& bind, const caf::actor& owner,
             duration tcp_timeout) {
  net::tcp_options topts;
  topts.deadline
    = std::chrono::duration_cast<std::chrono::milliseconds>(tcp_timeout);
  topts.max_received_bytes = size_t{64} << 20;
  net::udp_options uopts;
  uopts.max_datagram_size = 65535;
  error last{errc::connection_lost, "no attempt"};
  for (int attempt = 0; attempt < (bind.port() == 0 ? 10 : 1); ++attempt) {
    auto tcp = r.listen_tcp(bind, owner, topts);
    if (!tcp) {
      return unexpected{tcp.error()};
    }
    auto udp_bind = bind;
    udp_bind.port(tcp->local.port());
    auto udp = r.open_udp(udp_bind, owner, uopts);
    if (udp) {
      return std::make_pair(*tcp, *udp);
    }
    last = udp.error();
    std::ignore = r.close_tcp_listener(tcp->id);
  }
  return unexpected{last};
}

} // namespace

expected<membership_handle> spawn_membership(caf::actor_system& sys,
                                             membership_options opts) {
  if (!opts.reactor) {
    return unexpected{error{errc::invalid_config, "membership: no reactor"}};
  }
  auto& cfg = opts.gossip;
  // Validate before binding anything (advertise is filled in below).
  auto probe = cfg;
  probe.advertise = opts.advertise.value_or(opts.bind);
  if (auto ok = probe.validate(); !ok) {
    return unexpected{ok.error()};
  }
  auto actor = opts.own_thread ? sys.spawn<caf::detached>(membership_fn)
                               : sys.spawn(membership_fn);
  auto bound = bind_sockets(*opts.reactor, opts.bind,
                            caf::actor_cast<caf::actor>(actor),
                            cfg.tcp_timeout);
  if (!bound) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return unexpected{bound.error()};
  }
  auto local = bound->first.local;
  if (opts.advertise) {
    local = *opts.advertise;
    if (local.port() == 0) {
      local.port(bound->first.local.port());
    }
  }
  cfg.advertise = local;
  if (cfg.seed == 0) {
    // A fixed seed (tests) gives the same probe order and timer phases in
    // every run; in production each node draws its own.
    std::random_device rd;
    cfg.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  // GCM nonces must never repeat under a key: take them from GnuTLS.
  cfg.make_nonce = [] {
    gossip::gcm_nonce n{};
    gnutls_rnd(GNUTLS_RND_NONCE, n.data(), n.size());
    return n;
  };
  if (!cfg.log) {
    cfg.log = log::core_sink(membership_component);
  }
  auto init = std::make_shared<detail::membership_init>();
  init->config = std::move(cfg);
  init->reactor = opts.reactor;
  init->udp = bound->second.id;
  init->tcp = bound->first.id;
  init->bind = bound->first.local;
  caf::anon_send(actor, init_atom::value, init);
  return membership_handle{actor, local};
}

} // namespace mycorrizal
