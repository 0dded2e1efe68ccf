// SPDX-License-Identifier: Apache-2.0
// mycorrizal-node's watcher and the `demo` application (demo.hpp).
#include "demo.hpp"

#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/cluster/peers.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/type_ids.hpp"

#include <caf/all.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

namespace mycorrizal::tools {

namespace {

using tick_atom = caf::atom_constant<caf::atom("demotick")>;
using answer_atom = caf::atom_constant<caf::atom("demoanswer")>;

using clock_type = std::chrono::steady_clock;

std::mutex say_mtx;

std::vector<std::byte> to_bytes(std::string_view s) {
  std::vector<std::byte> out(s.size());
  if (!s.empty()) {
    std::memcpy(out.data(), s.data(), s.size());
  }
  return out;
}

std::string to_text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string join(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs) {
    if (!out.empty()) {
      out += ", ";
    }
    out += x;
  }
  return out;
}

/// `code: context`, e.g. `node_down: node-3 is dead`.
std::string render(const caf::error& e, caf::timespan waited) {
  if (e == caf::sec::request_receiver_down) {
    return "request_receiver_down: the remote handle had already ended";
  }
  auto x = from_caf_error(e);
  if (x == errc::timeout && x.context().empty()) {
    return fmt::format(
      "timeout: no answer within {} ms",
      std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
  }
  return to_string(x);
}

std::string elapsed(clock_type::time_point since) {
  auto d = clock_type::now() - since;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us < 10000) {
    return fmt::format("{} us", us);
  }
  return fmt::format("{} ms", us / 1000);
}

// -- watcher
// -------------------------------------------------------------------

/// A connection to a peer is up (the tests read this line).
void say_connected(const std::string& name, const peer_info& p) {
  say(name,
      fmt::format("connected to {} over QUIC ({}, {})", p.name,
                  p.quic.to_string(), p.incoming ? "it dialed" : "we dialed"));
}

struct watcher_state {
  static inline const char* name = "mycorrizal.node.watcher";
};

caf::behavior
watcher_impl(caf::stateful_actor<watcher_state>* self, const std::string& name,
             const membership_actor& membership, const peers_actor& peers) {
  auto me = caf::actor_cast<caf::actor>(self);
  self->request(membership, std::chrono::seconds{10}, subscribe_atom::value, me)
    .then(
      [=](std::vector<gossip::member>& now) {
        std::vector<std::string> alive;
        for (auto& m : now) {
          if (m.name != name && m.state == gossip::node_state::alive) {
            alive.push_back(m.name);
          }
        }
        if (!alive.empty()) {
          std::sort(alive.begin(), alive.end());
          say(name, "members: " + join(alive));
        }
      },
      [=](caf::error& e) {
        say(name,
            "cannot follow the membership: " + to_string(from_caf_error(e)));
      });
  self->request(peers, std::chrono::seconds{10}, subscribe_atom::value, me)
    .then(
      [=](std::vector<peer_info>& now) {
        // Connections that came up before we listened (a fast join while
        // this process was starting): as if we had seen them come up.
        for (const auto& p : now) {
          say_connected(name, p);
        }
      },
      [=](caf::error& e) {
        say(name,
            "cannot follow the connections: " + to_string(from_caf_error(e)));
      });
  return {
    [=](gossip::member_event& ev) {
      const auto& m = ev.who;
      if (m.name == name) {
        return;
      }
      switch (ev.kind) {
        case gossip::member_event_kind::joined:
          say(name, fmt::format("member joined: {} (gossip {})", m.name,
                                m.address.to_string()));
          break;
        case gossip::member_event_kind::suspect:
          say(name, "member suspect: " + m.name);
          break;
        case gossip::member_event_kind::alive_again:
          say(name, "member alive again: " + m.name);
          break;
        case gossip::member_event_kind::dead:
          say(name, "member dead: " + m.name);
          break;
        case gossip::member_event_kind::left:
          say(name, "member left: " + m.name);
          break;
        case gossip::member_event_kind::updated:
          break; // its metadata: not interesting here
      }
    },
    [=](peer_up& up) {
      say_connected(name, up.peer);
    },
    [=](peer_unreachable& u) {
      say(name, fmt::format("connection to {} unreachable ({})", u.name,
                            to_string(u.reason)));
    },
    [=](peer_down& down) {
      if (down.reason == errc::shutting_down) {
        return;
      }
      say(name, fmt::format("connection to {} down ({})", down.name,
                            to_string(down.reason)));
    },
  };
}

// -- demo
// ----------------------------------------------------------------------

struct peer_slot {
  /// The remote handle (invalid until `remote_atom` answered).
  caf::actor handle;
  bool fetching = false;
  bool slow_pending = false;
};

struct demo_state {
  static inline const char* name = "mycorrizal.node.demo";

  demo_options opts;
  uint64_t tick = 0;
  /// Requests this node's handler answered.
  uint64_t served = 0;
  /// Slow requests held until their answer is due.
  uint64_t next_slow = 0;
  std::map<uint64_t, std::pair<caf::response_promise, demo_ping>> held;
  /// The last answer of `nodes_atom` (sorted), printed when it changes.
  std::vector<std::string> running;
  bool running_known = false;
  std::map<std::string, peer_slot> peers;

  void say(std::string_view text) const {
    tools::say(opts.name, text);
  }

  std::string pong(const demo_ping& p) const {
    return fmt::format("{}pong from {} (count {})", p.slow ? "slow " : "",
                       opts.name, served);
  }
};

using demo_actor = caf::stateful_actor<demo_state>;

void fetch_handle(demo_actor* self, const std::string& peer) {
  auto& st = self->state;
  st.peers[peer].fetching = true;
  self
    ->request(st.opts.router, std::chrono::seconds{5}, remote_atom::value, peer,
              st.opts.app, std::string{})
    .then(
      [=](caf::actor& h) {
        auto& slot = self->state.peers[peer];
        slot.fetching = false;
        if (slot.handle == h) {
          return;
        }
        slot.handle = h;
        self->monitor(h);
        self->state.say(fmt::format("remote handle for {}/{}: monitoring it",
                                    peer, self->state.opts.app));
      },
      [=](caf::error& e) {
        self->state.peers[peer].fetching = false;
        self->state.say(fmt::format("cannot get a handle for {}: {}", peer,
                                    render(e, std::chrono::seconds{5})));
      });
}

void on_nodes(demo_actor* self, std::vector<std::string>& nodes) {
  auto& st = self->state;
  std::sort(nodes.begin(), nodes.end());
  if (!st.running_known || nodes != st.running) {
    st.running_known = true;
    st.running = nodes;
    st.say(nodes.empty() ? std::string{"no peer runs "} + st.opts.app
                         : "peers running " + st.opts.app + ": " + join(nodes));
  }
  for (auto& n : nodes) {
    auto& slot = st.peers[n];
    if (!slot.handle && !slot.fetching) {
      fetch_handle(self, n);
    }
  }
}

void send_requests(demo_actor* self) {
  auto& st = self->state;
  for (auto& [peer, slot] : st.peers) {
    if (!slot.handle) {
      continue;
    }
    auto to = peer;
    auto h = slot.handle;
    auto start = clock_type::now();
    auto wait = st.opts.request_timeout;
    self->request(h, wait, demo_ping{st.opts.name, st.tick, false})
      .then(
        [=](std::string& reply) {
          self->state.say(fmt::format("request to {}: answered \"{}\" in {}",
                                      to, reply, elapsed(start)));
        },
        [=](caf::error& e) {
          self->state.say(
            fmt::format("request to {} failed: {}", to, render(e, wait)));
        });
    if (slot.slow_pending) {
      continue;
    }
    slot.slow_pending = true;
    auto slow_wait = st.opts.slow_timeout;
    auto done = [=] {
      // The slot may be gone (down-message) or hold a newer handle.
      auto i = self->state.peers.find(to);
      if (i != self->state.peers.end() && i->second.handle == h) {
        i->second.slow_pending = false;
      }
    };
    self->request(h, slow_wait, demo_ping{st.opts.name, st.tick, true})
      .then(
        [=](std::string& reply) {
          done();
          self->state.say(
            fmt::format("slow request to {}: answered \"{}\" in {}", to, reply,
                        elapsed(start)));
        },
        [=](caf::error& e) {
          done();
          self->state.say(fmt::format("slow request to {} failed after {}: {}",
                                      to, elapsed(start),
                                      render(e, slow_wait)));
        });
  }
}

void on_tick(demo_actor* self) {
  auto& st = self->state;
  ++st.tick;
  self->delayed_send(self, st.opts.interval, tick_atom::value);
  self
    ->request(st.opts.router, std::chrono::seconds{2}, nodes_atom::value,
              st.opts.app)
    .then(
      [=](std::vector<std::string>& nodes) {
        on_nodes(self, nodes);
      },
      [=](caf::error& e) {
        self->state.say("cannot list the peers: "
                        + render(e, std::chrono::seconds{2}));
      });
  auto text = fmt::format("hello #{}", st.tick);
  self
    ->request(st.opts.router, std::chrono::seconds{2}, broadcast_atom::value,
              st.opts.app, raw_bytes{to_bytes(text)}, std::string{})
    .then(
      [=](std::vector<std::string>& reached) {
        if (!reached.empty()) {
          self->state.say(
            fmt::format("broadcast \"{}\" reached {}", text, join(reached)));
        }
      },
      [=](caf::error& e) {
        self->state.say(fmt::format("broadcast \"{}\" failed: {}", text,
                                    render(e, std::chrono::seconds{2})));
      });
  send_requests(self);
}

caf::behavior demo_impl(demo_actor* self, demo_options opts) {
  self->state.opts = std::move(opts);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    for (auto i = st.peers.begin(); i != st.peers.end(); ++i) {
      if (i->second.handle && i->second.handle.address() == dm.source) {
        st.say(fmt::format("down-message: {}'s handle ended ({})", i->first,
                           render(dm.reason, caf::timespan{0})));
        st.peers.erase(i);
        return;
      }
    }
  });
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      on_tick(self);
    },
    // -- the handler side: what peers send to our application -----------------
    [=](const app_message& m) {
      self->state.say(
        fmt::format("got \"{}\" from {}", to_text(m.payload), m.node));
    },
    [=](const app_request& r) {
      auto& st = self->state;
      ++st.served;
      return raw_bytes{
        to_bytes(fmt::format("pong from {} to \"{}\" (count {})", st.opts.name,
                             to_text(r.payload), st.served))};
    },
    [=](demo_ping& p) -> caf::result<std::string> {
      auto& st = self->state;
      ++st.served;
      if (!p.slow) {
        return st.pong(p);
      }
      auto rp = self->make_response_promise();
      auto id = st.next_slow++;
      st.held.emplace(id, std::make_pair(rp, std::move(p)));
      self->delayed_send(self, st.opts.slow_delay, answer_atom::value, id);
      return rp;
    },
    [=](answer_atom, uint64_t id) {
      auto& st = self->state;
      auto i = st.held.find(id);
      if (i == st.held.end()) {
        return;
      }
      auto& [rp, p] = i->second;
      rp.deliver(st.pong(p));
      st.held.erase(i);
    },
  };
}

} // namespace

void add_demo_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<demo_ping>("demo_ping");
}

void say(std::string_view name, std::string_view text) {
  auto line = fmt::format("[{}] {}\n", name, text);
  std::lock_guard<std::mutex> guard{say_mtx};
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
}

caf::actor spawn_watcher(caf::actor_system& sys, std::string name,
                         membership_actor membership, peers_actor peers) {
  return sys.spawn(watcher_impl, std::move(name), std::move(membership),
                   std::move(peers));
}

caf::actor spawn_demo(caf::actor_system& sys, demo_options opts) {
  return sys.spawn(demo_impl, std::move(opts));
}

} // namespace mycorrizal::tools
