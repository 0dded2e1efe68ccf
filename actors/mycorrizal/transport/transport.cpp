// SPDX-License-Identifier: Apache-2.0
// The transport actor: one QUIC endpoint (UDP socket + routing table).
#include "mycorrizal/transport/transport.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/actor_time.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/runtime/send.hpp"
#include "mycorrizal/transport/internal/actors.hpp"

#include <caf/all.hpp>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <mutex>
#include <unordered_map>

namespace mycorrizal {

namespace {

constexpr std::string_view transport_component = "quic";

/// How long a stopping transport waits for its connections to send their
/// CONNECTION_CLOSE before it quits anyway.
constexpr auto stop_grace = std::chrono::seconds{2};

/// Connection ids and reset tokens come from GnuTLS's nonce generator.
void random_fill(std::span<std::byte> out) {
  gnutls_rnd(GNUTLS_RND_NONCE, out.data(), out.size());
}

/// The routing table from connection ids to connection actors, shared by
/// the transport actor (which keeps it) and the reactor (`udp_demux`):
/// datagrams of known connections go from the reactor's thread straight
/// to their actors, one actor hop less per batch than through the
/// transport; the rest (Initials of new connections, ids not routed yet,
/// what draws a Version Negotiation or is dropped) go to the transport
/// actor, which decides on them with the table as it is then.
class conn_routes final : public net::udp_demux {
public:
  conn_routes(size_t cid_length, bool accept) : router_(cid_length, accept) {
    // nop
  }

  void take(net::udp_batch& batch, caf::execution_unit* host) override;

  quic::route_result classify(quic::bytes_view data,
                              const quic::random_bytes& rng) const {
    std::lock_guard<std::mutex> guard{mtx_};
    return router_.classify(data, rng);
  }

  /// Routes `ids` to connection `id`, served by `actor`.
  void add(quic::connection_id id, std::span<const std::vector<std::byte>> ids,
           caf::actor actor) {
    std::lock_guard<std::mutex> guard{mtx_};
    router_.set_routes(id, ids);
    actors_[id] = std::move(actor);
  }

  void set_routes(quic::connection_id id,
                  std::span<const std::vector<std::byte>> ids) {
    std::lock_guard<std::mutex> guard{mtx_};
    router_.set_routes(id, ids);
  }

  void remove(quic::connection_id id) {
    std::lock_guard<std::mutex> guard{mtx_};
    router_.remove(id);
    actors_.erase(id);
  }

  size_t size() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return router_.size();
  }

  /// The connection that every piece of `d` routes to (the one datagram
  /// unless coalesced), and how many pieces; none if they go elsewhere.
  std::optional<std::pair<quic::connection_id, uint64_t>>
  route_of(const net::udp_datagram& d) const {
    std::lock_guard<std::mutex> guard{mtx_};
    return route_of_locked(d);
  }

  /// Datagrams sent on to connections from the reactor's thread.
  uint64_t taken() const noexcept {
    return taken_.load(std::memory_order_relaxed);
  }

private:
  std::optional<std::pair<quic::connection_id, uint64_t>>
  route_of_locked(const net::udp_datagram& d) const;

  /// The actor of the connection that every datagram of `d` belongs to
  /// (all pieces of a coalesced one), or null; counts them into `n`.
  const caf::actor* place(const net::udp_datagram& d, uint64_t& n) const;

  mutable std::mutex mtx_;
  quic::cid_router router_;
  std::unordered_map<quic::connection_id, caf::actor> actors_;
  std::atomic<uint64_t> taken_{0};
};

std::optional<std::pair<quic::connection_id, uint64_t>>
conn_routes::route_of_locked(const net::udp_datagram& d) const {
  static const quic::random_bytes rng{random_fill};
  std::optional<quic::connection_id> one;
  bool same = true;
  uint64_t pieces = 0;
  auto check = [&](std::span<const std::byte> piece) {
    auto r = router_.classify(piece, rng);
    if (r.action != quic::route_action::deliver || (one && *one != r.id)) {
      same = false;
    }
    one = r.id;
    ++pieces;
  };
  if (d.segment != 0 && d.segment < d.data.size()) {
    net::for_each_datagram(d, check);
  } else {
    check(d.data);
  }
  if (!same || !one) {
    return std::nullopt;
  }
  return std::pair{*one, pieces};
}

const caf::actor* conn_routes::place(const net::udp_datagram& d,
                                     uint64_t& n) const {
  auto route = route_of_locked(d);
  if (!route) {
    return nullptr;
  }
  auto i = actors_.find(route->first);
  if (i == actors_.end()) {
    return nullptr;
  }
  n += route->second;
  return &i->second;
}

void conn_routes::take(net::udp_batch& batch, caf::execution_unit* host) {
  // A batch holds the datagrams of few connections (mostly one).
  std::vector<std::pair<caf::actor, detail::routed_datagrams>> groups;
  uint64_t n = 0;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto& ds = batch.datagrams;
    size_t kept = 0;
    for (size_t i = 0; i < ds.size(); ++i) {
      if (const auto* to = place(ds[i], n)) {
        auto g = std::find_if(groups.begin(), groups.end(),
                              [to](const auto& x) {
                                return x.first == *to;
                              });
        if (g == groups.end()) {
          groups.emplace_back(*to, detail::routed_datagrams{});
          g = groups.end() - 1;
        }
        g->second.datagrams.push_back(std::move(ds[i]));
      } else {
        if (kept != i) {
          ds[kept] = std::move(ds[i]);
        }
        ++kept;
      }
    }
    ds.resize(kept);
  }
  taken_.fetch_add(n, std::memory_order_relaxed);
  for (auto& [to, group] : groups) {
    send_hosted(host, to, std::move(group));
  }
}

} // namespace

struct detail::transport_init {
  transport_options opts;
  detail::socket_ptr socket;
  std::shared_ptr<conn_routes> routes;
};

namespace {

using detail::transport_init_ptr;

struct transport_state {
  static inline const char* name = "mycorrizal.transport";

  struct entry {
    caf::actor actor;
    ip_endpoint remote;
    bool incoming = false;
    std::string peer_name;
  };

  transport_options opts;
  detail::socket_ptr socket;
  std::shared_ptr<conn_routes> routes;
  std::unordered_map<quic::connection_id, entry> conns;
  std::unordered_map<caf::actor_addr, quic::connection_id> by_addr;
  quic::connection_id next_id = 1;
  transport_stats counters;
  bool stopping = false;

  transport_state() = default;
  transport_state(const transport_state&) = delete;
  transport_state& operator=(const transport_state&) = delete;

  /// CAF 0.17 destroys the state in on_exit: connections still running
  /// are told to close (they hold the socket until they are done).
  ~transport_state() {
    for (auto& [id, e] : conns) {
      caf::anon_send_exit(e.actor, caf::exit_reason::user_shutdown);
    }
  }

  /// The loopback route's UDP payload limit per address family, asked of
  /// the kernel once (0 until then).
  mutable std::array<size_t, 2> loopback_payload{};

  /// The transport settings for a connection to `remote` (larger packets
  /// to a loopback peer, see `transport_config::loopback_udp_payload`).
  quic::transport_config transport_for(const ip_endpoint& remote) const {
    if (!remote.is_loopback() || opts.transport.loopback_udp_payload == 0) {
      return opts.transport;
    }
    auto& cached = loopback_payload[remote.is_v4() ? 0 : 1];
    if (cached == 0) {
      auto limit = net::max_udp_payload_to(remote);
      if (!limit) {
        MYCORRIZAL_LOG_WARN(transport_component,
                            "no loopback route MTU ({}): loopback peers get "
                            "{}-byte packets",
                            to_string(limit.error()),
                            opts.transport.max_udp_payload);
      }
      cached = limit ? *limit : opts.transport.max_udp_payload;
    }
    return opts.transport.for_peer(remote, cached);
  }

  quic::connection_params params(const ip_endpoint& remote,
                                 std::string expected_name) const {
    quic::connection_params cp;
    cp.transport = transport_for(remote);
    cp.rng = random_fill;
    cp.log = log::core_sink(transport_component);
    cp.local = socket->local();
    cp.remote = remote;
    cp.expected_peer_name = std::move(expected_name);
    cp.wall_now = std::chrono::system_clock::now();
    return cp;
  }
};

/// The public interface plus what the factory, the reactor, the
/// connections and the actor itself send.
using transport_impl = transport_actor::extend<
  caf::reacts_to<init_atom, detail::transport_init_ptr>,
  caf::reacts_to<stop_atom>, caf::reacts_to<net::udp_batch>,
  caf::reacts_to<detail::connection_routes>,
  caf::reacts_to<detail::connection_named>,
  caf::reacts_to<detail::handshake_failed>>;

using transport_self = transport_impl::stateful_pointer<transport_state>;

/// Hands a new core to a new connection actor and routes to it.
caf::actor start_connection(transport_self self, quic::connection core,
                            const ip_endpoint& remote, bool incoming,
                            std::optional<caf::response_promise> dial = {},
                            caf::timespan dial_deadline = {}) {
  auto& st = self->state;
  auto id = st.next_id++;
  auto routing_ids = core.routing_ids();
  auto args = std::make_shared<detail::connection_args>();
  args->id = id;
  args->core.emplace(std::move(core));
  args->socket = st.socket;
  args->remote = remote;
  args->incoming = incoming;
  args->streams = st.opts.streams;
  args->transport = st.transport_for(remote);
  args->transport_actor = caf::actor_cast<caf::actor>(self);
  args->handler = st.opts.handler;
  args->dial = std::move(dial);
  args->dial_deadline = dial_deadline;
  auto actor = detail::spawn_connection(self, std::move(args));
  st.routes->add(id, routing_ids, actor);
  self->monitor(actor);
  st.conns.emplace(id, transport_state::entry{actor, remote, incoming, {}});
  st.by_addr.emplace(actor.address(), id);
  return actor;
}

/// Routes, answers, accepts or drops one datagram.
void on_datagram(
  transport_self self, net::udp_datagram& d,
  std::unordered_map<quic::connection_id, detail::routed_datagrams>& routed,
  const quic::random_bytes& rng) {
  auto& st = self->state;
  ++st.counters.datagrams_received;
  auto r = st.routes->classify(d.data, rng);
  switch (r.action) {
    case quic::route_action::deliver:
      routed[r.id].datagrams.push_back(std::move(d));
      break;
    case quic::route_action::reply:
      if (st.socket->reactor().send_udp(st.socket->id(), d.from, r.reply)) {
        ++st.counters.version_negotiations_sent;
      }
      break;
    case quic::route_action::drop:
      ++st.counters.datagrams_dropped;
      MYCORRIZAL_LOG_DEBUG_RL(transport_component, 10,
                              "dropped a datagram from {}: {}",
                              d.from.to_string(), r.why);
      break;
    case quic::route_action::accept: {
      if (!st.opts.accept || st.conns.size() >= st.opts.max_connections) {
        ++st.counters.datagrams_dropped;
        MYCORRIZAL_LOG_WARN_RL(transport_component, 1,
                               "refused a connection from {}: {} "
                               "connections open",
                               d.from.to_string(), st.conns.size());
        break;
      }
      auto core = quic::connection::accept(
        *st.opts.credentials, st.params(d.from, {}), d.data, actor_now(self));
      if (!core) {
        ++st.counters.datagrams_dropped;
        MYCORRIZAL_LOG_DEBUG_RL(transport_component, 10,
                                "refused an Initial from {}: {}",
                                d.from.to_string(), to_string(core.error()));
        break;
      }
      ++st.counters.connections_accepted;
      start_connection(self, std::move(*core), d.from, true);
      break;
    }
  }
}

void on_batch(transport_self self, net::udp_batch& batch) {
  auto& st = self->state;
  if (st.stopping) {
    return;
  }
  // Datagrams of one batch that belong to one connection travel together.
  std::unordered_map<quic::connection_id, detail::routed_datagrams> routed;
  quic::random_bytes rng{random_fill};
  for (auto& d : batch.datagrams) {
    if (d.segment != 0 && d.segment < d.data.size()) {
      // Coalesced (GRO): when every piece belongs to one connection, the
      // buffer goes there whole; otherwise each piece is handled alone.
      if (auto route = st.routes->route_of(d)) {
        st.counters.datagrams_received += route->second;
        routed[route->first].datagrams.push_back(std::move(d));
        continue;
      }
      net::for_each_datagram(d, [&](std::span<const std::byte> piece) {
        net::udp_datagram single{d.from, {piece.begin(), piece.end()}, 0};
        on_datagram(self, single, routed, rng);
      });
      continue;
    }
    on_datagram(self, d, routed, rng);
  }
  for (auto& [id, group] : routed) {
    if (auto i = st.conns.find(id); i != st.conns.end()) {
      send_untyped(self, i->second.actor, std::move(group));
    }
  }
}

transport_stats current_stats(transport_self self) {
  auto& st = self->state;
  auto out = st.counters;
  if (auto udp = st.socket->reactor().stats(st.socket->id())) {
    out.udp = *udp;
  }
  out.connections_open = st.conns.size();
  out.routes = st.routes->size();
  out.datagrams_received += st.routes->taken();
  return out;
}

transport_impl::behavior_type transport_fn(transport_self self) {
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    auto i = st.by_addr.find(dm.source);
    if (i == st.by_addr.end()) {
      return;
    }
    st.routes->remove(i->second);
    st.conns.erase(i->second);
    st.by_addr.erase(i);
    ++st.counters.connections_ended;
    if (st.stopping && st.conns.empty()) {
      self->quit(caf::exit_reason::user_shutdown);
    }
  });
  // A stop closes every connection gracefully first; they hold the socket
  // (shared) until their CONNECTION_CLOSE is out.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    if (msg.reason == caf::exit_reason::kill || st.conns.empty()
        || st.stopping) {
      self->quit(msg.reason);
      return;
    }
    st.stopping = true;
    for (auto& [id, e] : st.conns) {
      self->send_exit(e.actor, caf::exit_reason::user_shutdown);
    }
    self->delayed_send(self, stop_grace, stop_atom::value);
  });
  return {
    [=](init_atom, const detail::transport_init_ptr& init) {
      auto& st = self->state;
      st.opts = std::move(init->opts);
      st.socket = std::move(init->socket);
      st.routes = std::move(init->routes);
      MYCORRIZAL_LOG_INFO(transport_component, "{} listening on {} (QUIC)",
                          st.opts.credentials->node_name(),
                          st.socket->local().to_string());
    },
    [=](net::udp_batch& batch) -> caf::result<void> {
      // The reactor may report datagrams before the factory's init_atom:
      // they wait in the mailbox.
      if (!self->state.socket) {
        return caf::skip;
      }
      on_batch(self, batch);
      return caf::unit;
    },
    [=](detail::connection_routes& x) {
      auto& st = self->state;
      if (st.conns.count(x.id) != 0) {
        st.routes->set_routes(x.id, x.ids);
      }
    },
    [=](detail::connection_named& x) {
      ++self->state.counters.handshakes_completed;
      if (auto i = self->state.conns.find(x.id); i != self->state.conns.end()) {
        i->second.peer_name = std::move(x.peer_name);
      }
    },
    [=](detail::handshake_failed& x) {
      auto i = static_cast<size_t>(x.reason);
      auto& failed = self->state.counters.handshakes_failed;
      if (i < failed.size()) {
        ++failed[i];
      }
    },
    [=](dial_atom, const ip_endpoint& to, std::string& name,
        caf::timespan deadline) -> caf::result<connection_info> {
      auto& st = self->state;
      if (st.stopping) {
        return make_caf_error(
          error{errc::shutting_down, "the transport is stopping"});
      }
      if (st.conns.size() >= st.opts.max_connections) {
        return make_caf_error(
          error{errc::queue_full,
                fmt::format("{} connections open", st.conns.size())});
      }
      auto core = quic::connection::connect(
        *st.opts.credentials, st.params(to, std::move(name)), actor_now(self));
      if (!core) {
        return make_caf_error(core.error());
      }
      ++st.counters.connections_dialed;
      auto rp = self->make_response_promise();
      start_connection(self, std::move(*core), to, false, rp, deadline);
      return rp;
    },
    [=](stats_atom) {
      return current_stats(self);
    },
    [=](connections_atom) {
      std::vector<connection_info> out;
      for (auto& [id, e] : self->state.conns) {
        connection_info info;
        info.connection = caf::actor_cast<connection_actor>(e.actor);
        info.peer_name = e.peer_name;
        info.remote = e.remote;
        info.incoming = e.incoming;
        out.push_back(std::move(info));
      }
      return out;
    },
    [=](stop_atom) {
      // The grace period for closing connections is over.
      self->quit(caf::exit_reason::user_shutdown);
    },
  };
}

} // namespace

expected<void> stream_options::validate() const {
  std::string bad;
  auto check = [&](bool ok, std::string_view what) {
    if (!ok) {
      bad += bad.empty() ? "" : "; ";
      bad += what;
    }
  };
  check(max_queued_bytes >= 1024,
        "streams.max_queued_bytes: at least 1024 bytes");
  check(max_in_flight_bytes >= 1024,
        "streams.max_in_flight_bytes: at least 1024 bytes");
  check(max_unacked_bytes >= 1024,
        "streams.max_unacked_bytes: at least 1024 bytes");
  check(max_frames_per_delivery >= 1,
        "streams.max_frames_per_delivery: at least 1");
  if (auto ok = limits.validate(); !ok) {
    bad += bad.empty() ? "" : "; ";
    bad += to_string(ok.error());
  }
  if (!bad.empty()) {
    return unexpected{error{errc::invalid_config, bad}};
  }
  return {};
}

expected<transport_handle> spawn_transport(caf::actor_system& sys,
                                           transport_options opts) {
  if (!opts.reactor) {
    return unexpected{error{errc::invalid_config, "transport: no reactor"}};
  }
  if (!opts.handler) {
    return unexpected{error{errc::invalid_config, "transport: no handler"}};
  }
  if (!opts.credentials || !opts.credentials->has_certificate()) {
    return unexpected{error{errc::invalid_config,
                            "transport: the credentials hold no certificate"}};
  }
  if (auto ok = opts.transport.validate(); !ok) {
    return unexpected{ok.error()};
  }
  if (auto ok = opts.streams.validate(); !ok) {
    return unexpected{ok.error()};
  }
  auto routes = std::make_shared<conn_routes>(opts.transport.cid_length,
                                              opts.accept);
  auto udp = opts.udp;
  udp.demux = routes;
  auto actor = sys.spawn(transport_fn);
  auto sock = opts.reactor->open_udp(opts.bind,
                                     caf::actor_cast<caf::actor>(actor), udp);
  if (!sock) {
    caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    return unexpected{sock.error()};
  }
  auto init = std::make_shared<detail::transport_init>();
  init->socket = std::make_shared<detail::shared_socket>(opts.reactor, sock->id,
                                                         sock->local);
  init->opts = std::move(opts);
  init->routes = std::move(routes);
  auto local = sock->local;
  caf::anon_send(actor, init_atom::value, init);
  return transport_handle{actor, local};
}

} // namespace mycorrizal
