// SPDX-License-Identifier: Apache-2.0
// The router actor: application id -> local handler, remote handles per
// (node, application, stream), and the streams peers open.
#include "mycorrizal/apps/router.hpp"

#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/apps/internal/channel.hpp"
#include "mycorrizal/cluster/peers.hpp"
#include "mycorrizal/config_check.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/transport/transport.hpp"
#include "mycorrizal/wire/frame.hpp"
#include "mycorrizal/wire/identifier.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <tuple>

namespace mycorrizal {

expected<void> app_options::validate() const {
  config_check check{"app_options"};
  check.in_range<size_t>("max_streams", max_streams, 0, 100000);
  check.in_range<size_t>("max_message_size", max_message_size, 1,
                         (size_t{16} << 20) - 64);
  check.in_range<size_t>("max_connecting_bytes", max_connecting_bytes,
                         size_t{1} << 10, size_t{1} << 30);
  check.in_range<size_t>("max_pending_requests", max_pending_requests, 1,
                         1000000);
  check.in_range<int64_t>(
    "request_timeout",
    std::chrono::duration_cast<std::chrono::milliseconds>(request_timeout)
      .count(),
    1, int64_t{3600} * 1000);
  return std::move(check).result();
}

namespace {

constexpr std::string_view router_component = "apps";

using key = std::tuple<std::string, std::string, std::string>;

struct router_state {
  static inline const char* name = "mycorrizal.router";

  struct stream_entry {
    /// Created by `create_stream_atom` (not only opened by a peer).
    bool created = false;
    caf::actor handler;
  };

  struct app_entry {
    caf::actor handler;
    app_options options;
    /// Named streams; the default stream is implicit.
    std::map<std::string, stream_entry> streams;
  };

  /// A channel's place.
  struct channel_entry {
    std::string peer;
    std::string app;
    std::string stream;
    bool inbound = false;
    /// Closed or told to exit by us; kept until its exit message arrives
    /// (links deliver exactly one), so that a late exit is known as a
    /// channel's and not taken for the node's.
    bool forgotten = false;
  };

  router_options opts;
  peers_actor peers;
  bool stopping = false;
  std::map<std::string, app_entry> apps;
  /// Connected peers.
  std::map<std::string, connection_actor> connections;
  /// Remote handles (outgoing channels).
  std::map<key, caf::actor> outgoing;
  /// Peers reported unreachable (with why) and not connected again since.
  std::map<std::string, error, std::less<>> unreachable;
  /// Every channel, outgoing and inbound.
  std::map<caf::actor_addr, channel_entry> channels;
  std::map<std::pair<std::string, std::string>,
           std::shared_ptr<detail::stream_counters>>
    counters;

  std::shared_ptr<detail::stream_counters>
  counters_of(const std::string& app, const std::string& stream) {
    auto& c = counters[{app, stream}];
    if (!c) {
      c = std::make_shared<detail::stream_counters>();
    }
    return c;
  }

  /// The handler for what peers send on (app, stream); invalid if none.
  caf::actor handler_of(const std::string& app,
                        const std::string& stream) const {
    auto i = apps.find(app);
    if (i == apps.end()) {
      return {};
    }
    if (auto j = i->second.streams.find(stream);
        j != i->second.streams.end() && j->second.handler) {
      return j->second.handler;
    }
    return i->second.handler;
  }

  app_options options_of(const std::string& app) const {
    auto i = apps.find(app);
    return i == apps.end() ? app_options{} : i->second.options;
  }

  std::vector<std::string> app_names() const {
    std::vector<std::string> out;
    for (auto& [id, e] : apps) {
      out.push_back(id);
    }
    return out;
  }
};

using router_self = router_actor::stateful_pointer<router_state>;

caf::error err(errc code, std::string text) {
  return make_caf_error(error{code, std::move(text)});
}

void announce(router_self self) {
  if (self->state.peers) {
    self->send(self->state.peers, apps_atom::value, self->state.app_names());
  }
}

/// Forgets the channels `pred` selects and hands each (if still alive) to
/// `f`. Their entries stay, marked, until their exit message arrives.
template <class Pred, class F>
void forget_channels(router_self self, Pred pred, F f) {
  auto& st = self->state;
  for (auto& [addr, e] : st.channels) {
    if (e.forgotten || !pred(e)) {
      continue;
    }
    e.forgotten = true;
    if (!e.inbound) {
      auto k = key{e.peer, e.app, e.stream};
      if (auto i = st.outgoing.find(k);
          i != st.outgoing.end() && i->second.address() == addr) {
        st.outgoing.erase(i);
      }
    }
    if (auto ch = caf::actor_cast<caf::actor>(addr)) {
      f(ch);
    }
  }
}

/// Closes (and forgets) the channels `pred` selects.
template <class Pred>
void close_channels(router_self self, Pred pred, const error& reason) {
  forget_channels(self, pred, [&](const caf::actor& ch) {
    caf::anon_send(ch, detail::channel_close{reason});
  });
}

caf::actor make_outgoing(router_self self, const std::string& node,
                         const std::string& app, const std::string& stream) {
  auto& st = self->state;
  if (auto i = st.outgoing.find({node, app, stream}); i != st.outgoing.end()) {
    return i->second;
  }
  detail::channel_options co;
  co.self_name = st.opts.name;
  co.peer = node;
  co.application = app;
  co.stream = stream;
  co.handler = st.handler_of(app, stream);
  co.options = st.options_of(app);
  co.counters = st.counters_of(app, stream);
  if (auto c = st.connections.find(node); c != st.connections.end()) {
    co.connection = c->second;
  } else if (auto u = st.unreachable.find(node); u != st.unreachable.end()) {
    co.unreachable = u->second;
  }
  auto ch = detail::spawn_channel(self, std::move(co));
  st.outgoing.emplace(key{node, app, stream}, ch);
  st.channels.emplace(ch.address(),
                      router_state::channel_entry{node, app, stream, false});
  return ch;
}

/// Calls `f(expected<caf::actor>)` with the remote handle of (node, app,
/// stream): at once when the node is connected or a handle exists, else
/// once the peers actor confirmed that the node is an alive member.
template <class F>
void with_handle(router_self self, const std::string& node,
                 const std::string& app, const std::string& stream, F f) {
  auto& st = self->state;
  if (st.stopping) {
    f(expected<caf::actor>{
      unexpected{error{errc::shutting_down, "the node is stopping"}}});
    return;
  }
  if (auto c = wire::check_identifier(app, wire::identifier_size_limit, false);
      c != errc::none) {
    f(expected<caf::actor>{
      unexpected{error{c, "bad application id '" + app + "'"}}});
    return;
  }
  if (auto c = wire::check_identifier(stream, wire::identifier_size_limit,
                                      true);
      c != errc::none) {
    f(expected<caf::actor>{
      unexpected{error{c, "bad stream name '" + stream + "'"}}});
    return;
  }
  if (st.outgoing.count({node, app, stream}) > 0
      || st.connections.count(node) > 0) {
    f(expected<caf::actor>{make_outgoing(self, node, app, stream)});
    return;
  }
  self->request(st.peers, std::chrono::seconds{10}, connections_atom::value)
    .then(
      [=](std::vector<peer_info>& members) mutable {
        bool alive = std::any_of(members.begin(), members.end(),
                                 [&](const peer_info& p) {
                                   return p.name == node;
                                 });
        if (!alive || self->state.stopping) {
          f(expected<caf::actor>{unexpected{error{
            errc::node_down,
            node + " is not an alive Mycorrizal member of the cluster"}}});
          return;
        }
        f(expected<caf::actor>{make_outgoing(self, node, app, stream)});
      },
      [=](caf::error& e) mutable {
        f(expected<caf::actor>{unexpected{from_caf_error(e)}});
      });
}

/// A peer opened a stream: the consumer is a new inbound channel.
caf::result<caf::actor> on_accepted(router_self self, stream_accepted& msg) {
  auto& st = self->state;
  auto* init = std::get_if<wire::owned_stream_init>(&msg.first);
  if (init == nullptr) {
    return err(errc::unexpected_frame, "an application stream must start "
                                       "with STREAM_INIT");
  }
  if (st.stopping) {
    return err(errc::shutting_down, st.opts.name + " is stopping");
  }
  auto app = st.apps.find(init->application);
  if (app == st.apps.end()) {
    return err(errc::unknown_application,
               "no application '" + init->application + "' on " + st.opts.name);
  }
  auto& a = app->second;
  if (!init->stream.empty()) {
    if (a.options.default_stream_only) {
      return err(errc::unknown_application,
                 "application '" + init->application + "' on " + st.opts.name
                   + " takes its default stream only");
    }
    if (a.streams.count(init->stream) == 0) {
      if (a.streams.size() >= a.options.max_streams) {
        return err(errc::queue_full,
                   fmt::format("application '{}' on {} has {} streams, its "
                               "limit",
                               init->application, st.opts.name,
                               a.streams.size()));
      }
      a.streams.emplace(init->stream, router_state::stream_entry{});
    }
  }
  detail::channel_options co;
  co.self_name = st.opts.name;
  co.peer = msg.peer_name;
  co.application = init->application;
  co.stream = init->stream;
  co.handler = st.handler_of(init->application, init->stream);
  co.options = a.options;
  co.counters = st.counters_of(init->application, init->stream);
  co.connection = msg.connection;
  co.accepted = msg.stream;
  auto ch = detail::spawn_channel(self, std::move(co));
  st.channels.emplace(
    ch.address(), router_state::channel_entry{msg.peer_name, init->application,
                                              init->stream, true});
  return ch;
}

void on_peer_down(router_self self, const peer_down& msg) {
  auto& st = self->state;
  st.connections.erase(msg.name);
  auto u = st.unreachable.find(msg.name);
  if (msg.reason == errc::node_down) {
    if (u != st.unreachable.end()) {
      st.unreachable.erase(u);
    }
    // Remote handles quit with node_down: monitors get a down_msg.
    forget_channels(
      self,
      [&](const auto& e) {
        return e.peer == msg.name;
      },
      [&](const caf::actor& ch) {
        self->send_exit(ch, make_caf_error(msg.reason));
      });
    return;
  }
  bool unreachable = u != st.unreachable.end();
  for (auto& [addr, e] : st.channels) {
    if (e.peer == msg.name && !e.forgotten) {
      if (auto ch = caf::actor_cast<caf::actor>(addr)) {
        caf::anon_send(ch, detail::channel_lost{unreachable ? u->second
                                                            : msg.reason,
                                                unreachable});
      }
    }
  }
}

void on_peer_up(router_self self, const peer_info& p) {
  auto& st = self->state;
  st.connections[p.name] = p.connection;
  st.unreachable.erase(p.name);
  for (auto& [k, ch] : st.outgoing) {
    if (std::get<0>(k) == p.name) {
      caf::anon_send(ch, detail::channel_connect{p.connection});
    }
  }
}

/// Each node's outcome of a fan-out (an invalid error: queued).
using outcomes = std::vector<std::pair<std::string, caf::error>>;

/// Queues `payload` on (node, app, stream) for every node of `nodes`, then
/// calls `done` with every node's outcome, in the order of `nodes`.
template <class F>
void fan_out(router_self self, std::vector<std::string> nodes,
             const std::string& app, const std::string& stream,
             std::vector<std::byte> payload, F done) {
  struct state {
    outcomes results;
    size_t left;
    F done;
  };
  auto st = std::make_shared<state>(state{{}, nodes.size(), std::move(done)});
  if (nodes.empty()) {
    st->done(st->results);
    return;
  }
  for (auto& node : nodes) {
    st->results.emplace_back(node, caf::error{});
  }
  auto finish = [st](size_t i, const caf::error& e) {
    st->results[i].second = e;
    if (--st->left == 0) {
      st->done(st->results);
    }
  };
  for (size_t i = 0; i < nodes.size(); ++i) {
    with_handle(
      self, nodes[i], app, stream, [=](expected<caf::actor> ch) mutable {
        if (!ch) {
          finish(i, make_caf_error(ch.error()));
          return;
        }
        self->request(*ch, caf::infinite, detail::channel_send{payload})
          .then(
            [=] {
              finish(i, {});
            },
            [=](caf::error& e) {
              finish(i, e);
            });
      });
  }
}

std::vector<app_stats> stats_of(router_self self) {
  auto& st = self->state;
  std::map<std::pair<std::string, std::string>, std::set<std::string>> active;
  for (auto& [addr, e] : st.channels) {
    if (!e.forgotten && st.connections.count(e.peer) > 0) {
      active[{e.app, e.stream}].insert(e.peer);
    }
  }
  std::vector<app_stats> out;
  for (auto& [k, c] : st.counters) {
    if (out.empty() || out.back().application != k.first) {
      out.push_back(app_stats{k.first, {}});
    }
    auto s = c->snapshot(k.second);
    auto& nodes = active[k];
    s.active_nodes.assign(nodes.begin(), nodes.end());
    out.back().streams.push_back(std::move(s));
  }
  return out;
}

void stop(router_self self, const caf::error& reason) {
  auto& st = self->state;
  st.stopping = true;
  close_channels(
    self,
    [](const auto&) {
      return true;
    },
    error{errc::shutting_down, st.opts.name + " is stopping"});
  self->quit(reason);
}

router_actor::behavior_type router_impl(router_self self, router_options opts) {
  self->state.opts = std::move(opts);
  self->state.peers = self->state.opts.peers;
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    if (auto i = st.channels.find(msg.source); i != st.channels.end()) {
      // A channel ended: on its own (an inbound stream finished, or nobody
      // holds it any more), or after we closed it.
      auto& e = i->second;
      if (!e.inbound) {
        auto k = key{e.peer, e.app, e.stream};
        if (auto j = st.outgoing.find(k);
            j != st.outgoing.end() && j->second.address() == msg.source) {
          st.outgoing.erase(j);
        }
      }
      st.channels.erase(i);
      return;
    }
    stop(self, msg.reason);
  });
  self->set_down_handler([=](caf::down_msg& msg) {
    // A handler ended: its applications go with it.
    auto& st = self->state;
    std::vector<std::string> gone;
    for (auto& [name, a] : st.apps) {
      if (a.handler.address() == msg.source) {
        gone.push_back(name);
      }
    }
    for (auto& name : gone) {
      MYCORRIZAL_LOG_INFO(router_component,
                          "the handler of '{}' ended: unregistering it", name);
      st.apps.erase(name);
      close_channels(
        self,
        [&](const auto& e) {
          return e.app == name && e.inbound;
        },
        error{errc::unknown_application,
              "application '" + name + "' was unregistered"});
    }
    if (!gone.empty()) {
      announce(self);
    }
  });
  auto subscribe = [=](const peers_actor& peers) {
    self
      ->request(peers, std::chrono::seconds{10}, subscribe_atom::value,
                caf::actor_cast<caf::actor>(self))
      .then(
        [=](std::vector<peer_info>& now) {
          for (auto& p : now) {
            on_peer_up(self, p);
          }
        },
        [=](caf::error& e) {
          MYCORRIZAL_LOG_ERROR(router_component, "cannot follow the peers: {}",
                               to_string(from_caf_error(e)));
        });
    announce(self);
  };
  if (self->state.peers) {
    subscribe(self->state.peers);
  }
  return {
    [=](set_peers_atom, peers_actor& peers) {
      self->state.peers = peers;
      subscribe(peers);
    },
    [=](peer_up& msg) {
      on_peer_up(self, msg.peer);
    },
    [=](peer_down& msg) {
      on_peer_down(self, msg);
    },
    [=](peer_unreachable& msg) {
      // The peer_down that follows fails the pending requests; until a
      // connection is up again, new sends to the peer fail at once.
      self->state.unreachable.insert_or_assign(msg.name, msg.reason);
    },
    [=](stream_accepted& msg) -> caf::result<caf::actor> {
      return on_accepted(self, msg);
    },
    [=](register_atom, std::string& app, caf::actor& handler,
        app_options& options) -> caf::result<void> {
      auto& st = self->state;
      if (st.stopping) {
        return err(errc::shutting_down, st.opts.name + " is stopping");
      }
      if (auto c = wire::check_identifier(app, wire::identifier_size_limit,
                                          false);
          c != errc::none) {
        return err(c, "bad application id '" + app + "'");
      }
      if (!handler) {
        return err(errc::invalid_config,
                   "application '" + app + "': the handler is invalid");
      }
      if (auto ok = options.validate(); !ok) {
        return make_caf_error(ok.error());
      }
      if (st.apps.count(app) > 0) {
        return err(errc::invalid_config,
                   "application '" + app + "' is already registered");
      }
      self->monitor(handler);
      st.apps.emplace(app, router_state::app_entry{handler, options, {}});
      st.counters_of(app, "");
      for (auto& [addr, e] : st.channels) {
        if (e.app == app) {
          caf::anon_send(caf::actor_cast<caf::actor>(addr),
                         detail::channel_handler{st.handler_of(app, e.stream)});
        }
      }
      announce(self);
      return caf::unit;
    },
    [=](unregister_atom, const std::string& app) -> caf::result<void> {
      auto& st = self->state;
      auto i = st.apps.find(app);
      if (i == st.apps.end()) {
        return err(errc::unknown_application,
                   "no application '" + app + "' registered");
      }
      self->demonitor(i->second.handler);
      st.apps.erase(i);
      close_channels(
        self,
        [&](const auto& e) {
          return e.app == app && e.inbound;
        },
        error{errc::unknown_application,
              "application '" + app + "' was unregistered"});
      for (auto& [addr, e] : st.channels) {
        if (e.app == app) {
          caf::anon_send(caf::actor_cast<caf::actor>(addr),
                         detail::channel_handler{caf::actor{}});
        }
      }
      announce(self);
      return caf::unit;
    },
    [=](create_stream_atom, const std::string& app, const std::string& name,
        caf::actor& handler) -> caf::result<void> {
      auto& st = self->state;
      auto i = st.apps.find(app);
      if (i == st.apps.end()) {
        return err(errc::unknown_application,
                   "no application '" + app + "' registered");
      }
      auto& a = i->second;
      if (auto c = wire::check_identifier(name, wire::identifier_size_limit,
                                          false);
          c != errc::none) {
        return err(c, "bad stream name '" + name + "'");
      }
      if (a.options.default_stream_only) {
        return err(errc::invalid_config,
                   "application '" + app + "' takes its default stream only");
      }
      auto j = a.streams.find(name);
      if (j == a.streams.end()) {
        if (a.streams.size() >= a.options.max_streams) {
          return err(errc::queue_full,
                     fmt::format("application '{}' has {} streams, its limit",
                                 app, a.streams.size()));
        }
        j = a.streams.emplace(name, router_state::stream_entry{}).first;
      }
      j->second.created = true;
      j->second.handler = handler;
      st.counters_of(app, name);
      for (auto& [addr, e] : st.channels) {
        if (e.app == app && e.stream == name) {
          caf::anon_send(caf::actor_cast<caf::actor>(addr),
                         detail::channel_handler{st.handler_of(app, name)});
        }
      }
      return caf::unit;
    },
    [=](close_stream_atom, const std::string& app,
        const std::string& name) -> caf::result<void> {
      auto& st = self->state;
      auto i = st.apps.find(app);
      if (i == st.apps.end() || i->second.streams.count(name) == 0) {
        return err(errc::unknown_application,
                   "no stream '" + name + "' in application '" + app + "'");
      }
      i->second.streams.erase(name);
      close_channels(
        self,
        [&](const auto& e) {
          return e.app == app && e.stream == name;
        },
        error{errc::shutting_down,
              "stream '" + name + "' of '" + app + "' was closed"});
      st.counters.erase({app, name});
      return caf::unit;
    },
    [=](list_streams_atom,
        const std::string& app) -> caf::result<std::vector<std::string>> {
      auto& st = self->state;
      auto i = st.apps.find(app);
      if (i == st.apps.end()) {
        return err(errc::unknown_application,
                   "no application '" + app + "' registered");
      }
      std::vector<std::string> out;
      for (auto& [name, s] : i->second.streams) {
        if (s.created) {
          out.push_back(name);
        }
      }
      return out;
    },
    [=](remote_atom, std::string& node, std::string& app,
        std::string& stream) -> caf::result<caf::actor> {
      auto& st = self->state;
      if (node == st.opts.name) {
        // Ourselves: the local handler is the handle.
        if (auto h = st.handler_of(app, stream)) {
          return h;
        }
        return err(errc::unknown_application,
                   "no application '" + app + "' on " + node);
      }
      auto rp = self->make_response_promise();
      with_handle(self, node, app, stream,
                  [rp](expected<caf::actor> x) mutable {
                    if (x) {
                      rp.deliver(*x);
                    } else {
                      rp.deliver(make_caf_error(x.error()));
                    }
                  });
      return rp;
    },
    [=](send_atom, std::string& app, std::vector<std::string>& nodes,
        raw_bytes& payload, std::string& stream) -> caf::result<void> {
      auto rp = self->make_response_promise();
      fan_out(self, std::move(nodes), app, stream, std::move(payload.data),
              [rp](outcomes& results) mutable {
                for (auto& [node, err] : results) {
                  if (err) {
                    rp.deliver(err); // the first failure
                    return;
                  }
                }
                rp.deliver(caf::unit);
              });
      return rp;
    },
    [=](broadcast_atom, std::string& app, raw_bytes& payload,
        std::string& stream) -> caf::result<std::vector<std::string>> {
      auto rp = self->make_response_promise();
      auto data
        = std::make_shared<std::vector<std::byte>>(std::move(payload.data));
      self
        ->request(self->state.peers, std::chrono::seconds{10},
                  nodes_atom::value, app)
        .then(
          [=](std::vector<std::string>& nodes) mutable {
            fan_out(self, std::move(nodes), app, stream, std::move(*data),
                    [rp](outcomes& results) mutable {
                      std::vector<std::string> reached;
                      for (auto& [node, err] : results) {
                        if (!err) {
                          reached.push_back(node);
                        }
                      }
                      std::sort(reached.begin(), reached.end());
                      rp.deliver(reached);
                    });
          },
          [=](caf::error& e) mutable {
            rp.deliver(e);
          });
      return rp;
    },
    [=](request_atom, std::string& node, std::string& app, raw_bytes& payload,
        caf::timespan timeout, std::string& stream) -> caf::result<raw_bytes> {
      auto rp = self->make_response_promise();
      auto data
        = std::make_shared<std::vector<std::byte>>(std::move(payload.data));
      with_handle(
        self, node, app, stream, [=](expected<caf::actor> ch) mutable {
          if (!ch) {
            rp.deliver(make_caf_error(ch.error()));
            return;
          }
          self
            ->request(*ch, caf::infinite,
                      detail::channel_request{std::move(*data), timeout})
            .then(
              [=](raw_bytes& reply) mutable {
                rp.deliver(std::move(reply));
              },
              [=](caf::error& e) mutable {
                rp.deliver(e);
              });
        });
      return rp;
    },
    [=](nodes_atom, std::string& app) -> caf::result<std::vector<std::string>> {
      auto rp = self->make_response_promise();
      self
        ->request(self->state.peers, std::chrono::seconds{10},
                  nodes_atom::value, app)
        .then(
          [=](std::vector<std::string>& nodes) mutable {
            rp.deliver(nodes);
          },
          [=](caf::error& e) mutable {
            rp.deliver(e);
          });
      return rp;
    },
    [=](stats_atom) {
      return stats_of(self);
    },
  };
}

} // namespace

router_actor spawn_router(caf::actor_system& sys, router_options opts) {
  return sys.spawn(router_impl, std::move(opts));
}

} // namespace mycorrizal
