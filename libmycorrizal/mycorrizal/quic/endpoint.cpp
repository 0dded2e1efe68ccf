// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/quic/endpoint.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace mycorrizal::quic {

struct endpoint::state {
  struct entry {
    connection conn;
    ip_endpoint remote;
    uint64_t routes_epoch = ~uint64_t{0};
  };

  credentials creds;
  endpoint_params params;
  std::map<connection_id, entry> conns;
  quic::cid_router router;
  std::vector<endpoint_event> events;
  std::vector<std::pair<ip_endpoint, std::vector<std::byte>>> pending;
  endpoint_stats counters;
  connection_id next_id = 1;

  state(credentials c, endpoint_params p)
      : creds(std::move(c)), params(std::move(p)),
        router(params.transport.cid_length, params.accept) {
    // nop
  }

  connection_params conn_params(const ip_endpoint& remote,
                                std::string expected_name, wall_time wall) {
    connection_params cp;
    cp.transport = params.transport;
    cp.rng = params.rng;
    cp.log = params.log;
    cp.local = params.local;
    cp.remote = remote;
    cp.expected_peer_name = std::move(expected_name);
    cp.wall_now = wall;
    return cp;
  }

  // Brings the routing table in line with the connection's ids and moves
  // its events out.
  void sync(connection_id id, entry& e) {
    if (auto epoch = e.conn.routing_epoch(); epoch != e.routes_epoch) {
      router.set_routes(id, e.conn.routing_ids());
      e.routes_epoch = epoch;
    }
    for (auto& ev : e.conn.events()) {
      events.push_back(endpoint_event{id, std::move(ev)});
    }
    e.conn.events().clear();
  }

  void remove_finished() {
    for (auto i = conns.begin(); i != conns.end();) {
      if (i->second.conn.finished()) {
        router.remove(i->first);
        counters.connections_removed++;
        i = conns.erase(i);
      } else {
        ++i;
      }
    }
  }
};

endpoint::endpoint(std::unique_ptr<state> st) noexcept : st_(std::move(st)) {
  // nop
}

endpoint::endpoint(endpoint&&) noexcept = default;

endpoint& endpoint::operator=(endpoint&&) noexcept = default;

endpoint::~endpoint() = default;

expected<endpoint> endpoint::make(credentials creds, endpoint_params params) {
  if (auto ok = params.transport.validate(); !ok) {
    return unexpected{ok.error()};
  }
  if (!params.rng) {
    return unexpected{
      error{errc::invalid_config, "quic.rng: a random source is required"}};
  }
  return endpoint{std::make_unique<state>(std::move(creds), std::move(params))};
}

expected<connection_id> endpoint::connect(const ip_endpoint& remote,
                                          std::string expected_peer_name,
                                          time_point now, wall_time wall_now) {
  auto& s = *st_;
  auto c = connection::connect(
    s.creds, s.conn_params(remote, std::move(expected_peer_name), wall_now),
    now);
  if (!c) {
    return unexpected{std::move(c).error()};
  }
  auto id = s.next_id++;
  auto [i, added] = s.conns.emplace(id,
                                    state::entry{std::move(*c), remote, {}});
  s.sync(id, i->second);
  return id;
}

void endpoint::handle_datagram(const ip_endpoint& from, bytes_view data,
                               time_point now, wall_time wall_now) {
  auto& s = *st_;
  s.counters.datagrams_received++;
  auto r = s.router.classify(data, s.params.rng);
  switch (r.action) {
    case route_action::deliver: {
      auto& e = s.conns.at(r.id);
      e.conn.handle_datagram(from, data, now);
      s.sync(r.id, e);
      return;
    }
    case route_action::reply:
      s.pending.emplace_back(from, std::move(r.reply));
      s.counters.version_negotiations_sent++;
      return;
    case route_action::drop: s.counters.datagrams_dropped++; return;
    case route_action::accept: break;
  }
  if (s.conns.size() >= s.params.max_connections) {
    s.counters.datagrams_dropped++;
    return;
  }
  auto c = connection::accept(s.creds, s.conn_params(from, {}, wall_now), data,
                              now);
  if (!c) {
    s.counters.datagrams_dropped++;
    return;
  }
  auto id = s.next_id++;
  auto [j, added] = s.conns.emplace(id, state::entry{std::move(*c), from, {}});
  s.counters.connections_accepted++;
  s.sync(id, j->second);
}

void endpoint::on_timeout(time_point now) {
  auto& s = *st_;
  for (auto& [id, e] : s.conns) {
    if (e.conn.next_deadline() <= now) {
      e.conn.on_timeout(now);
      s.sync(id, e);
    }
  }
  s.remove_finished();
}

size_t endpoint::write(time_point now, std::span<std::byte> buffer,
                       std::vector<outgoing_datagram>& out) {
  auto& s = *st_;
  size_t used = 0;
  size_t count = 0;
  while (!s.pending.empty()
         && buffer.size() - used >= s.pending.front().second.size()) {
    auto& [to, bytes] = s.pending.front();
    std::memcpy(buffer.data() + used, bytes.data(), bytes.size());
    out.push_back({to, buffer.subspan(used, bytes.size())});
    used += bytes.size();
    ++count;
    s.pending.erase(s.pending.begin());
  }
  std::vector<std::span<const std::byte>> views;
  for (auto& [id, e] : s.conns) {
    views.clear();
    auto n = e.conn.write(now, buffer.subspan(used), views);
    for (auto v : views) {
      out.push_back({e.remote, v});
      used += v.size();
    }
    count += n;
    s.sync(id, e);
  }
  s.remove_finished();
  return count;
}

time_point endpoint::next_deadline() const {
  auto t = time_point::max();
  for (const auto& [id, e] : st_->conns) {
    t = std::min(t, e.conn.next_deadline());
  }
  return t;
}

std::vector<endpoint_event>& endpoint::events() noexcept {
  return st_->events;
}

connection* endpoint::find(connection_id id) noexcept {
  auto i = st_->conns.find(id);
  return i == st_->conns.end() ? nullptr : &i->second.conn;
}

size_t endpoint::size() const noexcept {
  return st_->conns.size();
}

size_t endpoint::routes() const noexcept {
  return st_->router.size();
}

const endpoint_stats& endpoint::stats() const noexcept {
  return st_->counters;
}

} // namespace mycorrizal::quic
