// SPDX-License-Identifier: Apache-2.0
#include "support/quic_harness.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

namespace mycorrizal::quic::test {

namespace {

const ip_endpoint client_ep = ip_endpoint::v4(10, 0, 0, 1, 40000);
const ip_endpoint server_ep = ip_endpoint::v4(10, 0, 0, 2, 7946);

cert_and_key must(expected<cert_and_key> x) {
  if (!x) {
    ADD_FAILURE() << to_string(x.error());
    std::abort();
  }
  return std::move(*x);
}

} // namespace

const pki& pki::get() {
  static const pki instance = [] {
    auto rng = seeded_rng(42);
    auto now = std::chrono::system_clock::now();
    auto start = now - 1h;
    pki p;
    p.ca = must(make_ca({"Mycorrizal Test CA", start, 24h * 365}, rng));
    p.node_a = must(make_node_cert(p.ca, {"node-a", start, 24h * 30}, rng));
    p.node_b = must(make_node_cert(p.ca, {"node-b", start, 24h * 30}, rng));
    p.node_c = must(make_node_cert(p.ca, {"node-c", start, 24h * 30}, rng));
    p.foreign_ca = must(make_ca({"Foreign CA", start, 24h * 365}, rng));
    p.foreign_a
      = must(make_node_cert(p.foreign_ca, {"node-a", start, 24h * 30}, rng));
    p.expired_a
      = must(make_node_cert(p.ca, {"node-a", now - 24h * 20, 24h * 10}, rng));
    p.future_a = must(make_node_cert(p.ca, {"node-a", now + 24h, 24h}, rng));
    return p;
  }();
  return instance;
}

credentials pki::creds(const cert_and_key& node,
                       const cert_and_key& trust) const {
  // Loaded at a time the node certificate is valid, so that expired test
  // certificates can still be presented.
  auto info = inspect(node.cert_pem);
  auto when = info ? info->not_before + 1s : std::chrono::system_clock::now();
  auto c = credentials::from_pem(trust.cert_pem, node.cert_pem, node.key_pem,
                                 when);
  if (!c) {
    ADD_FAILURE() << to_string(c.error());
    std::abort();
  }
  return *c;
}

pair::pair(const credentials& client_creds, credentials server_creds,
           transport_config client_tc, transport_config server_tc,
           std::string expected_name)
    : now(time_point{} + 1000s), server_creds_(std::move(server_creds)),
      server_tc_(std::move(server_tc)) {
  buffer_.resize(size_t{64} * 1500);
  connection_params p;
  p.transport = std::move(client_tc);
  p.rng = seeded_rng(1);
  p.local = client_ep;
  p.remote = server_ep;
  p.expected_peer_name = std::move(expected_name);
  p.wall_now = std::chrono::system_clock::now();
  auto c = connection::connect(client_creds, std::move(p), now);
  if (!c) {
    ADD_FAILURE() << to_string(c.error());
    std::abort();
  }
  client.emplace(std::move(*c));
}

void pair::flush(side from) {
  if (from == side::server && !server) {
    return;
  }
  auto& conn = get(from);
  auto& rules = from == side::client ? to_server : to_client;
  auto& counter = from == side::client ? sent_to_server : sent_to_client;
  auto& queue = in_flight_[from == side::client ? 1 : 0];
  for (;;) {
    out_.clear();
    auto n = conn.write(now, buffer_, out_);
    for (auto& d : out_) {
      ++counter;
      if (!rules.deliver) {
        continue;
      }
      if (rules.drop_every != 0 && counter % rules.drop_every == 0) {
        continue;
      }
      auto at = now + delay;
      if (rules.rate > 0) {
        auto& free = link_free_[from == side::client ? 1 : 0];
        auto start = std::max(now, free);
        free = start
               + std::chrono::duration_cast<duration>(
                 std::chrono::duration<double>(static_cast<double>(d.size())
                                               / rules.rate));
        at = free + delay;
      }
      if (rules.reorder && counter % 2 == 0) {
        at += 300us;
      }
      at = std::max(at, rules.hold_until + delay);
      queue.emplace(at, std::vector<std::byte>(d.begin(), d.end()));
    }
    drain_events(from);
    if (n == 0) {
      break;
    }
  }
}

void pair::drain_events(side s) {
  if (s == side::server && !server) {
    return;
  }
  auto& conn = get(s);
  auto& store = s == side::client ? client_events : server_events;
  // Handlers may call into the connection and add events: index loop. Each
  // event is moved out (a released chunk stays the buffer the core held).
  for (size_t i = 0; i < conn.events().size(); ++i) {
    auto ev = std::move(conn.events()[i]);
    if (auto* d = std::get_if<stream_data>(&ev); d && auto_consume) {
      conn.consume(d->stream_id, d->data.size());
    }
    if (on_event) {
      on_event(s, ev);
    }
    store.push_back(std::move(ev));
  }
  conn.events().clear();
}

bool pair::step(time_point limit) {
  flush(side::client);
  flush(side::server);
  auto next = time_point::max();
  for (auto& q : in_flight_) {
    if (!q.empty()) {
      next = std::min(next, q.begin()->first);
    }
  }
  next = std::min(next, client->next_deadline());
  if (server) {
    next = std::min(next, server->next_deadline());
  }
  if (next > limit) {
    now = limit;
    return false;
  }
  now = std::max(now, next);
  // Deliver what has arrived.
  for (size_t dir = 0; dir < 2; ++dir) {
    auto& q = in_flight_[dir];
    while (!q.empty() && q.begin()->first <= now) {
      auto bytes = std::move(q.begin()->second);
      q.erase(q.begin());
      if (dir == 1) {
        if (!server) {
          connection_params p;
          p.transport = server_tc_;
          p.rng = seeded_rng(2);
          p.local = server_ep;
          p.remote = client_ep;
          p.wall_now = std::chrono::system_clock::now();
          auto s = connection::accept(server_creds_, std::move(p), bytes, now);
          if (s) {
            server.emplace(std::move(*s));
          }
        } else {
          server->handle_datagram(client_ep, bytes, now);
        }
        drain_events(side::server);
      } else {
        client->handle_datagram(server_ep, bytes, now);
        drain_events(side::client);
      }
    }
  }
  if (client->next_deadline() <= now) {
    client->on_timeout(now);
    drain_events(side::client);
  }
  if (server && server->next_deadline() <= now) {
    server->on_timeout(now);
    drain_events(side::server);
  }
  return true;
}

bool pair::run_until(const std::function<bool()>& done, duration limit) {
  auto end = now + limit;
  while (!done()) {
    if (now >= end || !step(end)) {
      return done();
    }
  }
  return true;
}

void pair::run_for(duration d) {
  run_until(
    [] {
      return false;
    },
    d);
}

void pair::inject(side to, std::vector<std::byte> bytes) {
  if (to == side::client) {
    client->handle_datagram(server_ep, bytes, now);
  } else if (server) {
    server->handle_datagram(client_ep, bytes, now);
  }
  drain_events(to);
}

std::optional<connection_closed> pair::closed(side s) const {
  const auto& store = s == side::client ? client_events : server_events;
  for (const auto& ev : store) {
    if (auto* c = std::get_if<connection_closed>(&ev)) {
      return *c;
    }
  }
  return std::nullopt;
}

bool pair::run_until_closed(side s, duration limit) {
  return run_until(
    [this, s] {
      return closed(s).has_value();
    },
    limit);
}

bool pair::handshaken(side s) const {
  const auto& store = s == side::client ? client_events : server_events;
  return std::any_of(store.begin(), store.end(), [](const event& ev) {
    return std::holds_alternative<handshake_completed>(ev);
  });
}

} // namespace mycorrizal::quic::test
