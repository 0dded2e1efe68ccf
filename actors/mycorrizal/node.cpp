// SPDX-License-Identifier: Apache-2.0
// The node: starts and stops a node's actors in the host's actor system,
// and the blocking facade over them.
#include "mycorrizal/node.hpp"

#include "mycorrizal/cluster/keyring.hpp"
#include "mycorrizal/cluster/membership.hpp"
#include "mycorrizal/cluster/peers.hpp"
#include "mycorrizal/cluster/stack.hpp"
#include "mycorrizal/config_check.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/quic/certs.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/cert_files.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/serve/node_metrics.hpp"
#include "mycorrizal/transport/transport.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>

namespace mycorrizal {

namespace {

constexpr std::string_view node_component = "node";

/// Shared between the node's root actor and the facade.
struct node_shared {
  std::mutex mtx;
  std::condition_variable cv;
  bool ready = false;
  size_t seeds_joined = 0;
  /// Set when an actor of the node ended on its own.
  std::optional<error> failure;

  void set_ready(size_t joined) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (ready) {
        return; // exactly once
      }
      ready = true;
      seeds_joined = joined;
    }
    cv.notify_all();
  }
};

struct root_state {
  static inline const char* name = "mycorrizal.node";
  membership_actor membership;
  std::vector<std::string> seeds;
  std::shared_ptr<node_shared> shared;
  std::string node_name;
  /// The wait before the next retry of the seeds.
  caf::timespan retry{};
  caf::timespan retry_max{};
  uint64_t attempts = 0;
};

using root_actor = caf::stateful_actor<root_state>;

/// Asks the membership to join the seeds. The first answer (or failure)
/// signals ready; after a failure the seeds are retried with backoff until
/// one answers or another node joined us (a node started before its seeds
/// were up would otherwise stay alone for good).
void join_seeds(root_actor* self) {
  auto& st = self->state;
  ++st.attempts;
  self
    ->request(st.membership, std::chrono::seconds{30}, join_atom::value,
              st.seeds)
    .then(
      [=](uint64_t joined) {
        auto& cur = self->state;
        MYCORRIZAL_LOG_INFO(node_component,
                            "{} joined the cluster ({} of {} seeds answered{})",
                            cur.node_name, joined, cur.seeds.size(),
                            cur.attempts > 1
                              ? fmt::format(", attempt {}", cur.attempts)
                              : std::string{});
        cur.shared->set_ready(joined);
      },
      [=](caf::error& e) {
        auto& cur = self->state;
        if (cur.attempts == 1) {
          MYCORRIZAL_LOG_WARN(node_component,
                              "{}: no seed answered ({}); running alone and "
                              "retrying the seeds",
                              cur.node_name, to_string(from_caf_error(e)));
        } else {
          MYCORRIZAL_LOG_DEBUG(node_component, "{}: seeds retry {} failed: {}",
                               cur.node_name, cur.attempts,
                               to_string(from_caf_error(e)));
        }
        cur.shared->set_ready(0);
        self->delayed_send(self, cur.retry, retry_join_atom::value);
        cur.retry = std::min(cur.retry * 2, cur.retry_max);
      });
}

/// The root: linked to every actor of the node, so that one exit ends them
/// all; it runs the join and signals ready.
caf::behavior root_impl(root_actor* self, std::vector<caf::actor> children,
                        membership_actor membership,
                        std::vector<std::string> seeds,
                        std::shared_ptr<node_shared> shared, std::string name,
                        caf::timespan retry_min, caf::timespan retry_max) {
  auto names = std::make_shared<std::map<caf::actor_addr, std::string>>();
  for (auto& c : children) {
    self->link_to(c);
    auto* a = caf::actor_cast<caf::abstract_actor*>(c);
    if (auto* local = dynamic_cast<caf::local_actor*>(a)) {
      (*names)[c.address()] = local->name();
    }
  }
  // A child that ends, even normally, leaves the node without a part:
  // everything stops, and the facade tells why (`node::failure`). An exit
  // from elsewhere (node::stop) just stops.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& cur = self->state;
    auto reason = msg.reason;
    if (msg.source && msg.source != self->address()) {
      auto why = from_caf_error(msg.reason);
      if (!why) {
        why = error{errc::shutting_down, "an actor of the node ended"};
        reason = make_caf_error(why);
      }
      std::string who = "an actor";
      if (auto i = names->find(msg.source); i != names->end()) {
        who = i->second;
      }
      MYCORRIZAL_LOG_ERROR(node_component, "{}: {} ended ({}); the node stops",
                           cur.node_name, who, to_string(why));
      {
        std::lock_guard<std::mutex> guard{cur.shared->mtx};
        if (!cur.shared->failure) {
          cur.shared->failure = why;
        }
      }
    }
    self->quit(reason);
  });
  auto& st = self->state;
  st.membership = std::move(membership);
  st.seeds = std::move(seeds);
  st.shared = std::move(shared);
  st.node_name = std::move(name);
  st.retry = retry_min;
  st.retry_max = retry_max;
  if (st.seeds.empty()) {
    st.shared->set_ready(0);
  } else {
    join_seeds(self);
  }
  return {
    [=](retry_join_atom) {
      auto& cur = self->state;
      self
        ->request(cur.membership, std::chrono::seconds{10}, members_atom::value)
        .then(
          [=](const std::vector<gossip::member>& ms) {
            auto& now = self->state;
            for (const auto& m : ms) {
              if (m.name != now.node_name
                  && m.state == gossip::node_state::alive) {
                MYCORRIZAL_LOG_INFO(node_component,
                                    "{}: {} joined us; no more seed retries",
                                    now.node_name, m.name);
                return;
              }
            }
            join_seeds(self);
          },
          [=](caf::error&) {
            join_seeds(self);
          });
    },
  };
}

/// A handler actor running host callbacks.
caf::behavior callbacks_impl(caf::event_based_actor*, app_callbacks cb) {
  return {
    [cb](const app_message& m) {
      if (cb.on_message) {
        cb.on_message(m);
      }
    },
    [cb](const app_request& r) -> caf::result<raw_bytes> {
      if (!cb.on_request) {
        return make_caf_error(
          error{errc::no_handler,
                "application '" + r.application + "' takes no requests"});
      }
      auto out = cb.on_request(r);
      if (!out) {
        return make_caf_error(out.error());
      }
      return raw_bytes{std::move(*out)};
    },
  };
}

} // namespace

node_config node_config::local(std::string name) {
  node_config cfg;
  cfg.name = std::move(name);
  cfg.gossip = gossip::membership_config::local_defaults();
  cfg.transport.idle_timeout = std::chrono::seconds{3};
  cfg.transport.keep_alive = std::chrono::seconds{1};
  cfg.transport.unreachable_timeout = std::chrono::seconds{2};
  cfg.dial_timeout = std::chrono::seconds{2};
  cfg.backoff_min = std::chrono::milliseconds{50};
  cfg.backoff_max = std::chrono::seconds{1};
  cfg.leave_timeout = std::chrono::milliseconds{500};
  return cfg;
}

expected<void> node_config::validate() const {
  if (auto ok = quic::validate_node_name(name); !ok) {
    return unexpected{error{ok.error().code(),
                            "node.name: " + std::string{ok.error().context()}}};
  }
  config_check check{"node"};
  check.require("credentials", credentials || !data_dir.empty(),
                "give credentials, or a data_dir for development mode");
  check.require("backoff_min",
                backoff_min > caf::timespan::zero()
                  && backoff_max >= backoff_min,
                "need 0 < backoff_min <= backoff_max");
  check.require("dial_timeout", dial_timeout > caf::timespan::zero(),
                "must be positive");
  check.require("facade_timeout", facade_timeout > caf::timespan::zero(),
                "must be positive");
  if (auto r = std::move(check).result(); !r) {
    return r;
  }
  if (auto ok = transport.validate(); !ok) {
    return ok;
  }
  return streams.validate();
}

struct node::impl {
  caf::actor_system* sys = nullptr;
  node_config cfg;
  std::shared_ptr<net::reactor> reactor;
  std::shared_ptr<node_shared> shared = std::make_shared<node_shared>();
  caf::actor root;
  membership_actor membership;
  transport_actor transport;
  peers_actor peers;
  router_actor router;
  cache_actor cache;
  /// The handler of `keyring_app_id`.
  caf::actor keyring;
  ip_endpoint gossip_local;
  ip_endpoint quic_local;
  std::mutex mtx;
  std::vector<caf::actor> callback_handlers;
  std::atomic<bool> stopped{false};
  metrics::registry registry;

  /// Asks `dest` and waits for a reply of type `R` (void: any reply).
  template <class R, class Handle, class... Ts>
  expected<R> ask(caf::timespan wait, const Handle& dest, Ts&&... xs) {
    if (stopped.load()) {
      return unexpected{error{errc::shutting_down, cfg.name + " is stopped"}};
    }
    caf::scoped_actor self{*sys};
    std::optional<expected<R>> out;
    auto on_error = [&](caf::error& e) {
      out.emplace(unexpected{from_caf_error(e)});
    };
    if constexpr (std::is_void_v<R>) {
      self->request(dest, wait, std::forward<Ts>(xs)...)
        .receive(
          [&] {
            out.emplace();
          },
          on_error);
    } else {
      self->request(dest, wait, std::forward<Ts>(xs)...)
        .receive(
          [&](R& x) {
            out.emplace(std::move(x));
          },
          on_error);
    }
    return std::move(*out);
  }
};

node::node(std::unique_ptr<impl> x) : impl_(std::move(x)) {
  // nop
}

node::~node() {
  stop();
}

expected<std::shared_ptr<node>> node::start(caf::actor_system& sys,
                                            node_config cfg) {
  if (auto ok = cfg.validate(); !ok) {
    return unexpected{ok.error()};
  }
  auto x = std::make_unique<impl>();
  x->sys = &sys;
  if (!cfg.credentials) {
    auto creds = certs::dev_credentials(cfg.data_dir, cfg.name);
    if (!creds) {
      return unexpected{creds.error()};
    }
    cfg.credentials = std::move(*creds);
  }
  if (cfg.credentials->node_name() != cfg.name) {
    return unexpected{
      error{errc::invalid_config, "node.credentials: the certificate names '"
                                    + cfg.credentials->node_name()
                                    + "', the node is '" + cfg.name + "'"}};
  }
  net::reactor_config rc;
  if (cfg.io_thread_runs != node_config::io_thread_actors::none) {
    rc.host = &sys;
  }
  if (cfg.io_thread_runs == node_config::io_thread_actors::all) {
    rc.hosted_prefix.clear();
  }
  x->reactor = std::make_shared<net::reactor>(rc);
  if (auto ok = x->reactor->start(); !ok) {
    return unexpected{ok.error()};
  }
  // The router exists before the peers actor: it consumes the application
  // streams peers open, and follows the peers actor once that runs.
  x->router = spawn_router(sys, router_options{cfg.name, peers_actor{}});
  cluster_stack_options so;
  so.membership.gossip = cfg.gossip;
  so.membership.gossip.name = cfg.name;
  so.membership.bind = cfg.gossip_bind;
  so.membership.advertise = cfg.gossip_advertise;
  so.membership.reactor = x->reactor;
  so.peers.name = cfg.name;
  so.peers.dial_timeout = cfg.dial_timeout;
  so.peers.backoff_min = cfg.backoff_min;
  so.peers.backoff_max = cfg.backoff_max;
  so.transport.credentials = cfg.credentials;
  so.transport.transport = cfg.transport;
  so.transport.streams = cfg.streams;
  so.transport.bind = cfg.quic_bind;
  so.transport.udp.filter = cfg.quic_filter;
  so.streams = x->router;
  if (cfg.cache && cfg.cache->storage) {
    so.roles = gossip::cache_storage;
  }
  auto stack = start_cluster_stack(sys, std::move(so));
  if (!stack) {
    caf::anon_send_exit(x->router, caf::exit_reason::user_shutdown);
    caf::scoped_actor self{sys};
    self->wait_for(x->router);
    x->reactor->stop();
    return unexpected{stack.error()};
  }
  x->membership = stack->membership.actor;
  x->gossip_local = stack->membership.local;
  x->peers = stack->peers;
  x->transport = stack->transport.actor;
  x->quic_local = stack->transport.local;
  caf::anon_send(x->router, set_peers_atom::value, x->peers);
  std::vector<caf::actor> children{caf::actor_cast<caf::actor>(x->membership),
                                   caf::actor_cast<caf::actor>(x->transport),
                                   caf::actor_cast<caf::actor>(x->peers),
                                   caf::actor_cast<caf::actor>(x->router)};
  if (cfg.cache) {
    auto c = spawn_cache(sys, cache_actor_options{cfg.name, *cfg.cache,
                                                  x->membership, x->router});
    if (!c) {
      stop_cluster_stack(sys, *stack);
      caf::anon_send_exit(x->router, caf::exit_reason::user_shutdown);
      caf::scoped_actor self{sys};
      self->wait_for(x->router);
      x->reactor->stop();
      return unexpected{c.error()};
    }
    x->cache = *c;
    children.push_back(caf::actor_cast<caf::actor>(x->cache));
  }
  // Every node serves keyring operations for the others (cluster/keyring.hpp).
  x->keyring = spawn_keyring_handler(sys, x->membership);
  {
    caf::scoped_actor self{sys};
    std::optional<error> failed;
    self
      ->request(x->router, cfg.facade_timeout, register_atom::value,
                std::string{keyring_app_id}, x->keyring, app_options{})
      .receive([] {},
               [&](caf::error& e) {
                 failed = from_caf_error(e);
               });
    if (failed) {
      caf::anon_send_exit(x->keyring, caf::exit_reason::user_shutdown);
      for (auto& c : children) {
        caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
      }
      for (auto& c : children) {
        self->wait_for(c);
      }
      self->wait_for(x->keyring);
      x->reactor->stop();
      return unexpected{*failed};
    }
  }
  children.push_back(x->keyring);
  x->root = sys.spawn(root_impl, std::move(children), x->membership, cfg.seeds,
                      x->shared, cfg.name, cfg.backoff_min, cfg.backoff_max);
  MYCORRIZAL_LOG_INFO(node_component, "{} started: gossip {}, QUIC {}",
                      cfg.name, x->gossip_local.to_string(),
                      x->quic_local.to_string());
  x->cfg = std::move(cfg);
  return std::shared_ptr<node>{new node(std::move(x))};
}

void node::stop() {
  auto& x = *impl_;
  if (x.stopped.exchange(true)) {
    return;
  }
  caf::scoped_actor self{*x.sys};
  // A graceful stop of a storage member: first the others learn from our
  // gossip metadata that we store nothing (so that they take over our
  // partitions and send operations elsewhere), then our copies go to their
  // new owners, then we leave.
  if (x.cache && x.cfg.cache->storage) {
    gossip::node_meta meta;
    meta.quic_port = x.quic_local.port();
    if (auto bytes = gossip::encode_node_meta(meta)) {
      std::string text(reinterpret_cast<const char*>(bytes->data()),
                       bytes->size());
      self
        ->request(x.membership, x.cfg.facade_timeout, update_atom::value,
                  std::move(text))
        .receive([] {},
                 [&](caf::error& e) {
                   MYCORRIZAL_LOG_WARN(node_component,
                                       "{}: cannot drop the role: {}",
                                       x.cfg.name,
                                       to_string(from_caf_error(e)));
                 });
    }
    auto wait = x.cfg.cache->drain_timeout;
    self->request(x.cache, wait, drain_atom::value)
      .receive(
        [&](uint64_t failed) {
          if (failed == 0) {
            MYCORRIZAL_LOG_INFO(node_component, "{}: cache drained",
                                x.cfg.name);
          } else {
            MYCORRIZAL_LOG_WARN(
              node_component,
              "{}: cache drained but for {} partitions; their "
              "other owners restore them",
              x.cfg.name, failed);
          }
        },
        [&](caf::error& e) {
          MYCORRIZAL_LOG_WARN(node_component, "{}: cache drain: {}", x.cfg.name,
                              to_string(from_caf_error(e)));
        });
  }
  // Leave first, so that the others see `left` at once instead of
  // detecting a failure.
  self
    ->request(x.membership, x.cfg.leave_timeout + std::chrono::seconds{1},
              leave_atom::value, x.cfg.leave_timeout)
    .receive([] {},
             [&](caf::error& e) {
               MYCORRIZAL_LOG_DEBUG(node_component, "{}: leave: {}", x.cfg.name,
                                    to_string(from_caf_error(e)));
             });
  std::vector<caf::actor> handlers;
  {
    std::lock_guard<std::mutex> guard{x.mtx};
    handlers.swap(x.callback_handlers);
  }
  for (auto& h : handlers) {
    caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  }
  caf::anon_send_exit(x.root, caf::exit_reason::user_shutdown);
  for (auto& a : {x.root, x.keyring, caf::actor_cast<caf::actor>(x.cache),
                  caf::actor_cast<caf::actor>(x.router),
                  caf::actor_cast<caf::actor>(x.peers),
                  caf::actor_cast<caf::actor>(x.transport),
                  caf::actor_cast<caf::actor>(x.membership)}) {
    if (a) {
      self->wait_for(a);
    }
  }
  for (auto& h : handlers) {
    self->wait_for(h);
  }
  x.reactor->stop();
  // A node that stopped before its join finished is not going to be ready.
  x.shared->set_ready(0);
  MYCORRIZAL_LOG_INFO(node_component, "{} stopped", x.cfg.name);
}

bool node::stopped() const noexcept {
  return impl_->stopped.load();
}

std::optional<error> node::failure() const {
  auto& s = *impl_->shared;
  std::lock_guard<std::mutex> guard{s.mtx};
  return s.failure;
}

bool node::wait_ready(caf::timespan wait) const {
  auto& s = *impl_->shared;
  std::unique_lock<std::mutex> guard{s.mtx};
  return s.cv.wait_for(guard, wait, [&] {
    return s.ready;
  });
}

bool node::ready() const noexcept {
  auto& s = *impl_->shared;
  std::lock_guard<std::mutex> guard{s.mtx};
  return s.ready;
}

size_t node::seeds_joined() const noexcept {
  auto& s = *impl_->shared;
  std::lock_guard<std::mutex> guard{s.mtx};
  return s.seeds_joined;
}

const std::string& node::name() const noexcept {
  return impl_->cfg.name;
}

ip_endpoint node::gossip_endpoint() const noexcept {
  return impl_->gossip_local;
}

ip_endpoint node::quic_endpoint() const noexcept {
  return impl_->quic_local;
}

caf::actor node::root() const {
  return impl_->root;
}

membership_actor node::membership() const {
  return impl_->membership;
}

transport_actor node::transport() const {
  return impl_->transport;
}

peers_actor node::peers() const {
  return impl_->peers;
}

router_actor node::router() const {
  return impl_->router;
}

cache_actor node::cache() const {
  return impl_->cache;
}

std::shared_ptr<net::reactor> node::reactor() const {
  if (impl_->stopped.load()) {
    return nullptr;
  }
  return impl_->reactor;
}

expected<void> node::register_app(const std::string& app, caf::actor handler,
                                  app_options opts) {
  return impl_->ask<void>(impl_->cfg.facade_timeout, impl_->router,
                          register_atom::value, app, std::move(handler), opts);
}

expected<void> node::register_app(const std::string& app,
                                  app_callbacks callbacks, app_options opts) {
  auto& x = *impl_;
  if (x.stopped.load()) {
    return unexpected{error{errc::shutting_down, x.cfg.name + " is stopped"}};
  }
  auto h = x.sys->spawn(callbacks_impl, std::move(callbacks));
  auto ok = register_app(app, h, opts);
  if (!ok) {
    caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
    return ok;
  }
  std::lock_guard<std::mutex> guard{x.mtx};
  x.callback_handlers.push_back(std::move(h));
  return ok;
}

expected<void> node::unregister_app(const std::string& app) {
  return impl_->ask<void>(impl_->cfg.facade_timeout, impl_->router,
                          unregister_atom::value, app);
}

expected<void> node::create_stream(const std::string& app,
                                   const std::string& stream,
                                   caf::actor handler) {
  return impl_->ask<void>(impl_->cfg.facade_timeout, impl_->router,
                          create_stream_atom::value, app, stream,
                          std::move(handler));
}

expected<void> node::close_stream(const std::string& app,
                                  const std::string& stream) {
  return impl_->ask<void>(impl_->cfg.facade_timeout, impl_->router,
                          close_stream_atom::value, app, stream);
}

expected<std::vector<std::string>> node::list_streams(const std::string& app) {
  return impl_->ask<std::vector<std::string>>(
    impl_->cfg.facade_timeout, impl_->router, list_streams_atom::value, app);
}

expected<void>
node::send(const std::string& app, const std::vector<std::string>& nodes,
           std::vector<std::byte> payload, const std::string& stream) {
  return impl_->ask<void>(impl_->cfg.facade_timeout, impl_->router,
                          send_atom::value, app, nodes,
                          raw_bytes{std::move(payload)}, stream);
}

expected<std::vector<std::string>>
node::broadcast(const std::string& app, std::vector<std::byte> payload,
                const std::string& stream) {
  return impl_->ask<std::vector<std::string>>(
    impl_->cfg.facade_timeout, impl_->router, broadcast_atom::value, app,
    raw_bytes{std::move(payload)}, stream);
}

expected<std::vector<std::byte>>
node::request(const std::string& to, const std::string& app,
              std::vector<std::byte> payload, caf::timespan wait,
              const std::string& stream) {
  // The channel ends the request at `wait` with a clear error; the extra
  // second only guards against a node that stopped answering at all.
  auto reply = impl_->ask<raw_bytes>(wait + std::chrono::seconds{1},
                                     impl_->router, request_atom::value, to,
                                     app, raw_bytes{std::move(payload)}, wait,
                                     stream);
  if (!reply) {
    return unexpected{reply.error()};
  }
  return std::move(reply->data);
}

std::future<expected<std::vector<std::byte>>>
node::request_async(const std::string& to, const std::string& app,
                    std::vector<std::byte> payload, caf::timespan wait,
                    const std::string& stream) {
  using result = expected<std::vector<std::byte>>;
  auto promise = std::make_shared<std::promise<result>>();
  auto fut = promise->get_future();
  if (impl_->stopped.load()) {
    promise->set_value(
      unexpected{error{errc::shutting_down, impl_->cfg.name + " is stopped"}});
    return fut;
  }
  auto router = impl_->router;
  impl_->sys->spawn([=](caf::event_based_actor* self) mutable {
    self
      ->request(router, wait + std::chrono::seconds{1}, request_atom::value, to,
                app, raw_bytes{std::move(payload)}, wait, stream)
      .then(
        [=](raw_bytes& reply) {
          promise->set_value(std::move(reply.data));
          self->quit();
        },
        [=](caf::error& e) {
          promise->set_value(unexpected{from_caf_error(e)});
          self->quit();
        });
  });
  return fut;
}

expected<caf::actor> node::remote(const std::string& to, const std::string& app,
                                  const std::string& stream) {
  return impl_->ask<caf::actor>(impl_->cfg.facade_timeout, impl_->router,
                                remote_atom::value, to, app, stream);
}

expected<std::vector<std::string>> node::nodes(const std::string& app) {
  return impl_->ask<std::vector<std::string>>(
    impl_->cfg.facade_timeout, impl_->router, nodes_atom::value, app);
}

expected<std::vector<gossip::member>> node::members() {
  return impl_->ask<std::vector<gossip::member>>(
    impl_->cfg.facade_timeout, impl_->membership, members_atom::value);
}

expected<std::vector<peer_info>> node::connections() {
  return impl_->ask<std::vector<peer_info>>(
    impl_->cfg.facade_timeout, impl_->peers, connections_atom::value);
}

expected<std::vector<app_stats>> node::stats() {
  return impl_->ask<std::vector<app_stats>>(impl_->cfg.facade_timeout,
                                            impl_->router, stats_atom::value);
}

// -- keyring ------------------------------------------------------------------

namespace {

/// Sends the keyring request `payload` to every alive Mycorrizal member
/// (this node through its own handler) and collects the answers.
expected<keyring_report>
keyring_fanout(node& n, caf::actor_system& sys, const caf::actor& local_handler,
               std::optional<key_op> op, const std::vector<std::byte>& key,
               caf::timespan wait) {
  if (op) {
    if (auto ok = gossip::keyring::validate_key(key); !ok) {
      return unexpected{ok.error()};
    }
  }
  auto ms = n.members();
  if (!ms) {
    return unexpected{ms.error()};
  }
  auto payload = detail::encode_keyring_request(op, key);
  using answer = expected<std::vector<std::byte>>;
  std::vector<std::pair<std::string, std::future<answer>>> pending;
  std::vector<std::string> targets;
  for (const auto& m : *ms) {
    if (m.state != gossip::node_state::alive) {
      continue;
    }
    if (m.name != n.name()) {
      auto meta = gossip::decode_node_meta(m.meta);
      if (!meta || !*meta || (*meta)->quic_port == 0) {
        continue; // a plain memberlist member: not ours to ask
      }
      pending.emplace_back(m.name,
                           n.request_async(m.name, std::string{keyring_app_id},
                                           payload, wait));
    }
  }
  keyring_report out;
  // This node through its own handler: the same code path as the others.
  {
    keyring_member_reply mine;
    mine.node = n.name();
    caf::scoped_actor self{sys};
    app_request req{n.name(), std::string{keyring_app_id}, "", payload, wait};
    self->request(local_handler, wait, std::move(req))
      .receive(
        [&](raw_bytes& r) {
          if (!op) {
            if (auto keys = detail::decode_keyring_list(r.data)) {
              mine.keys = std::move(*keys);
            } else {
              mine.failure = keys.error();
            }
          }
        },
        [&](caf::error& e) {
          mine.failure = from_caf_error(e);
        });
    out.replies.push_back(std::move(mine));
  }
  for (auto& [name, fut] : pending) {
    keyring_member_reply r;
    r.node = name;
    auto got = fut.get();
    if (!got) {
      r.failure = got.error();
    } else if (!op) {
      if (auto keys = detail::decode_keyring_list(*got)) {
        r.keys = std::move(*keys);
      } else {
        r.failure = keys.error();
      }
    }
    out.replies.push_back(std::move(r));
  }
  std::sort(out.replies.begin(), out.replies.end(),
            [](const auto& a, const auto& b) {
              return a.node < b.node;
            });
  return out;
}

} // namespace

expected<keyring_report> node::keyring_list(caf::timespan wait) {
  if (impl_->stopped.load()) {
    return unexpected{
      error{errc::shutting_down, impl_->cfg.name + " is stopped"}};
  }
  return keyring_fanout(*this, *impl_->sys, impl_->keyring, std::nullopt, {},
                        wait);
}

expected<keyring_report>
node::keyring_install(const std::vector<std::byte>& key, caf::timespan wait) {
  if (impl_->stopped.load()) {
    return unexpected{
      error{errc::shutting_down, impl_->cfg.name + " is stopped"}};
  }
  return keyring_fanout(*this, *impl_->sys, impl_->keyring, key_op::install,
                        key, wait);
}

expected<keyring_report> node::keyring_use(const std::vector<std::byte>& key,
                                           caf::timespan wait) {
  if (impl_->stopped.load()) {
    return unexpected{
      error{errc::shutting_down, impl_->cfg.name + " is stopped"}};
  }
  return keyring_fanout(*this, *impl_->sys, impl_->keyring, key_op::use, key,
                        wait);
}

expected<keyring_report> node::keyring_remove(const std::vector<std::byte>& key,
                                              caf::timespan wait) {
  if (impl_->stopped.load()) {
    return unexpected{
      error{errc::shutting_down, impl_->cfg.name + " is stopped"}};
  }
  return keyring_fanout(*this, *impl_->sys, impl_->keyring, key_op::remove, key,
                        wait);
}

// -- metrics ------------------------------------------------------------------

metrics::registry& node::metrics_registry() noexcept {
  return impl_->registry;
}

node_snapshot node::snapshot(caf::timespan wait) {
  // One deadline for the whole snapshot: a part that does not answer costs
  // the rest of the wait once, not once per part, and the parts after it
  // are left out (a scrape is bounded by `wait`).
  // The actor system's clock, as everywhere in the actor tier.
  node_snapshot snap;
  auto& x = *impl_;
  auto& clock = x.sys->clock();
  auto deadline = clock.now() + wait;
  auto keep = [&](auto& slot, auto ask_part) {
    auto left
      = std::chrono::duration_cast<caf::timespan>(deadline - clock.now());
    if (left <= caf::timespan::zero()) {
      return;
    }
    if (auto answer = ask_part(left)) {
      slot.emplace(std::move(*answer));
    }
  };
  keep(snap.members, [&](caf::timespan t) {
    return x.ask<std::vector<gossip::member>>(t, x.membership,
                                              members_atom::value);
  });
  keep(snap.health_score, [&](caf::timespan t) {
    return x.ask<int>(t, x.membership, health_atom::value);
  });
  keep(snap.membership, [&](caf::timespan t) {
    return x.ask<membership_counters>(t, x.membership, stats_atom::value);
  });
  keep(snap.transport, [&](caf::timespan t) {
    return x.ask<transport_stats>(t, x.transport, stats_atom::value);
  });
  keep(snap.connections, [&](caf::timespan t) {
    return x.ask<std::vector<connection_info>>(t, x.transport,
                                               connections_atom::value);
  });
  if (snap.connections) {
    // The transport lists the connections; each connection actor knows its
    // own figures (RTT, window, bytes, losses).
    for (auto& c : *snap.connections) {
      std::optional<connection_info> full;
      keep(full, [&](caf::timespan t) {
        return x.ask<connection_info>(t, c.connection, stats_atom::value);
      });
      if (full) {
        c.stats = full->stats;
      }
    }
  }
  keep(snap.peers, [&](caf::timespan t) {
    return x.ask<peers_stats>(t, x.peers, stats_atom::value);
  });
  keep(snap.apps, [&](caf::timespan t) {
    return x.ask<std::vector<app_stats>>(t, x.router, stats_atom::value);
  });
  keep(snap.peer_list, [&](caf::timespan t) {
    return x.ask<std::vector<peer_info>>(t, x.peers, connections_atom::value);
  });
  if (x.cache) {
    snap.has_cache = true;
    keep(snap.buckets, [&](caf::timespan t) {
      return x.ask<std::vector<bucket_stats>>(t, x.cache, stats_atom::value);
    });
    keep(snap.bucket_infos, [&](caf::timespan t) {
      return x.ask<std::vector<bucket_info>>(t, x.cache,
                                             list_buckets_atom::value);
    });
    keep(snap.cache_members, [&](caf::timespan t) {
      return x.ask<std::vector<std::string>>(t, x.cache, members_atom::value);
    });
  }
  return snap;
}

std::string node::metrics_text(caf::timespan wait) {
  auto snap = snapshot(wait);
  return impl_->registry.text([&snap](metrics::collector_sink& out) {
    report_node(snap, out);
  });
}

// -- cache facade -------------------------------------------------------------

namespace {

error no_cache(const std::string& name) {
  return error{errc::unknown_application,
               name + " runs no cache (node_config::cache is empty)"};
}

/// The value an answer found, if it found one.
std::optional<cache_entry> entry_of(const cache::proto::op_reply& r) {
  if (!r.found) {
    return std::nullopt;
  }
  cache_entry e;
  e.value.resize(r.value.size());
  if (!r.value.empty()) {
    std::memcpy(e.value.data(), r.value.data(), r.value.size());
  }
  e.ver = r.ver;
  e.expires_ms = r.expires_ms;
  return e;
}

cache::proto::bytes to_cache_bytes(const std::vector<std::byte>& x) {
  cache::proto::bytes out(x.size());
  if (!x.empty()) {
    std::memcpy(out.data(), x.data(), x.size());
  }
  return out;
}

int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// A put's request from the facade's options.
expected<cache::proto::op_request> put_request(const std::string& key,
                                               const std::vector<std::byte>& v,
                                               const put_options& opts) {
  cache::proto::op_request op;
  op.op = cache::proto::op_code::put;
  op.key = key;
  op.value = to_cache_bytes(v);
  if (opts.keep_ttl && opts.ttl != caf::timespan::zero()) {
    return unexpected{
      error{errc::invalid_config, "put_options: keep_ttl with a ttl"}};
  }
  if (opts.only_if_absent && opts.only_if_present) {
    return unexpected{
      error{errc::invalid_config,
            "put_options: only_if_absent with only_if_present"}};
  }
  if (opts.ttl < caf::timespan::zero()) {
    return unexpected{error{errc::invalid_config, "put_options: negative ttl"}};
  }
  if (opts.ttl > caf::timespan::zero()) {
    op.expires_ms
      = unix_ms_now()
        + std::max<int64_t>(
          1, std::chrono::duration_cast<std::chrono::milliseconds>(opts.ttl)
               .count());
  }
  op.flags = static_cast<uint8_t>(
    (opts.only_if_absent ? cache::proto::only_if_absent : 0)
    | (opts.only_if_present ? cache::proto::only_if_present : 0)
    | (opts.keep_ttl ? cache::proto::keep_ttl : 0));
  return op;
}

} // namespace

caf::actor_system& node::system() const noexcept {
  return *impl_->sys;
}

expected<bool> node::create_bucket(const std::string& bucket,
                                   bucket_options opts) {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  return impl_->ask<bool>(impl_->cfg.facade_timeout, impl_->cache,
                          create_bucket_atom::value, bucket, opts);
}

expected<bool> node::drop_bucket(const std::string& bucket) {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  return impl_->ask<bool>(impl_->cfg.facade_timeout, impl_->cache,
                          drop_bucket_atom::value, bucket);
}

expected<std::vector<bucket_info>> node::buckets() {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  return impl_->ask<std::vector<bucket_info>>(
    impl_->cfg.facade_timeout, impl_->cache, list_buckets_atom::value);
}

expected<std::vector<bucket_stats>> node::cache_stats() {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  return impl_->ask<std::vector<bucket_stats>>(impl_->cfg.facade_timeout,
                                               impl_->cache, stats_atom::value);
}

expected<std::vector<std::string>> node::cache_members() {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  return impl_->ask<std::vector<std::string>>(
    impl_->cfg.facade_timeout, impl_->cache, members_atom::value);
}

expected<bucket_handle> node::bucket(const std::string& bucket) {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  return impl_->ask<bucket_handle>(impl_->cfg.facade_timeout, impl_->cache,
                                   bucket_atom::value, bucket);
}

expected<std::vector<std::string>> node::owners(const std::string& bucket,
                                                const std::string& key) {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  return impl_->ask<std::vector<std::string>>(
    impl_->cfg.facade_timeout, impl_->cache, owners_atom::value, bucket, key);
}

expected<cache::proto::op_reply> node::execute(const std::string& bucket,
                                               cache::proto::op_request op) {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  op.bucket = bucket;
  return impl_->ask<cache::proto::op_reply>(
    impl_->cfg.facade_timeout, impl_->cache, cache_op{bucket, std::move(op)});
}

std::future<expected<cache::proto::op_reply>>
node::execute_async(const std::string& bucket, cache::proto::op_request op) {
  using result = expected<cache::proto::op_reply>;
  auto promise = std::make_shared<std::promise<result>>();
  auto fut = promise->get_future();
  if (!impl_->cache) {
    promise->set_value(unexpected{no_cache(impl_->cfg.name)});
    return fut;
  }
  if (impl_->stopped.load()) {
    promise->set_value(
      unexpected{error{errc::shutting_down, impl_->cfg.name + " is stopped"}});
    return fut;
  }
  op.bucket = bucket;
  auto dest = impl_->cache;
  auto wait = impl_->cfg.facade_timeout;
  impl_->sys->spawn([=, x = cache_op{bucket, std::move(op)}](
                      caf::event_based_actor* self) mutable {
    self->request(dest, wait, std::move(x))
      .then(
        [=](cache::proto::op_reply& r) {
          promise->set_value(std::move(r));
          self->quit();
        },
        [=](caf::error& e) {
          promise->set_value(unexpected{from_caf_error(e)});
          self->quit();
        });
  });
  return fut;
}

expected<std::optional<cache_entry>> node::get(const std::string& bucket,
                                               const std::string& key) {
  cache::proto::op_request op;
  op.op = cache::proto::op_code::get;
  op.key = key;
  auto r = execute(bucket, std::move(op));
  if (!r) {
    return unexpected{r.error()};
  }
  return entry_of(*r);
}

expected<bool> node::put(const std::string& bucket, const std::string& key,
                         const std::vector<std::byte>& value,
                         const put_options& opts) {
  auto op = put_request(key, value, opts);
  if (!op) {
    return unexpected{op.error()};
  }
  auto r = execute(bucket, std::move(*op));
  if (!r) {
    return unexpected{r.error()};
  }
  return r->number != 0;
}

expected<std::optional<cache_entry>>
node::get_and_put(const std::string& bucket, const std::string& key,
                  const std::vector<std::byte>& value,
                  const put_options& opts) {
  auto op = put_request(key, value, opts);
  if (!op) {
    return unexpected{op.error()};
  }
  op->flags |= cache::proto::return_previous;
  auto r = execute(bucket, std::move(*op));
  if (!r) {
    return unexpected{r.error()};
  }
  return entry_of(*r);
}

expected<bool> node::del(const std::string& bucket, const std::string& key) {
  cache::proto::op_request op;
  op.op = cache::proto::op_code::del;
  op.key = key;
  auto r = execute(bucket, std::move(op));
  if (!r) {
    return unexpected{r.error()};
  }
  return r->number != 0;
}

expected<bool> node::expire(const std::string& bucket, const std::string& key,
                            caf::timespan ttl) {
  cache::proto::op_request op;
  op.op = cache::proto::op_code::expire;
  op.key = key;
  // At or before now deletes the key; 0 would mean "persist".
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(ttl).count();
  op.expires_ms = ms <= 0 ? 1 : unix_ms_now() + ms;
  auto r = execute(bucket, std::move(op));
  if (!r) {
    return unexpected{r.error()};
  }
  return r->number != 0;
}

expected<bool> node::persist(const std::string& bucket,
                             const std::string& key) {
  cache::proto::op_request op;
  op.op = cache::proto::op_code::expire;
  op.key = key;
  op.expires_ms = 0;
  auto r = execute(bucket, std::move(op));
  if (!r) {
    return unexpected{r.error()};
  }
  return r->number != 0;
}

expected<std::optional<int64_t>> node::expires_at(const std::string& bucket,
                                                  const std::string& key) {
  cache::proto::op_request op;
  op.op = cache::proto::op_code::ttl;
  op.key = key;
  auto r = execute(bucket, std::move(op));
  if (!r) {
    return unexpected{r.error()};
  }
  if (!r->found) {
    return std::optional<int64_t>{};
  }
  return std::optional<int64_t>{r->expires_ms};
}

expected<int64_t> node::incr(const std::string& bucket, const std::string& key,
                             int64_t delta) {
  cache::proto::op_request op;
  op.op = cache::proto::op_code::incr;
  op.key = key;
  op.delta = delta;
  auto r = execute(bucket, std::move(op));
  if (!r) {
    return unexpected{r.error()};
  }
  return r->number;
}

expected<cache::version>
node::compare_and_set(const std::string& bucket, const std::string& key,
                      cache::version expected_version,
                      const std::vector<std::byte>& value,
                      const put_options& opts) {
  auto op = put_request(key, value, opts);
  if (!op) {
    return unexpected{op.error()};
  }
  op->op = cache::proto::op_code::cas;
  op->expected = expected_version;
  auto r = execute(bucket, std::move(*op));
  if (!r) {
    return unexpected{r.error()};
  }
  return r->ver;
}

expected<std::vector<std::optional<cache_entry>>>
node::get_many(const std::string& bucket,
               const std::vector<std::string>& keys) {
  std::vector<std::future<expected<cache::proto::op_reply>>> pending;
  pending.reserve(keys.size());
  for (const auto& k : keys) {
    cache::proto::op_request op;
    op.op = cache::proto::op_code::get;
    op.key = k;
    pending.push_back(execute_async(bucket, std::move(op)));
  }
  std::vector<std::optional<cache_entry>> out;
  std::optional<error> first;
  for (auto& f : pending) {
    auto r = f.get();
    if (!r) {
      if (!first) {
        first = r.error();
      }
      out.emplace_back();
    } else {
      out.emplace_back(entry_of(*r));
    }
  }
  if (first) {
    return unexpected{std::move(*first)};
  }
  return out;
}

expected<void> node::put_many(
  const std::string& bucket,
  std::vector<std::pair<std::string, std::vector<std::byte>>> pairs,
  const put_options& opts) {
  std::vector<std::future<expected<cache::proto::op_reply>>> pending;
  pending.reserve(pairs.size());
  for (const auto& [k, v] : pairs) {
    auto op = put_request(k, v, opts);
    if (!op) {
      return unexpected{op.error()};
    }
    pending.push_back(execute_async(bucket, std::move(*op)));
  }
  std::optional<error> first;
  for (size_t i = 0; i < pending.size(); ++i) {
    auto r = pending[i].get();
    if (!r && !first) {
      first = error{r.error().code(),
                    pairs[i].first + ": " + to_string(r.error())};
    }
  }
  if (first) {
    return unexpected{std::move(*first)};
  }
  return {};
}

expected<cache::proto::scan_reply> node::scan(const std::string& bucket,
                                              uint32_t cursor, uint32_t count) {
  if (!impl_->cache) {
    return unexpected{no_cache(impl_->cfg.name)};
  }
  return impl_->ask<cache::proto::scan_reply>(impl_->cfg.facade_timeout,
                                              impl_->cache, scan_atom::value,
                                              bucket, cursor, count);
}

expected<std::vector<std::string>> node::keys(const std::string& bucket) {
  auto list = buckets();
  if (!list) {
    return unexpected{list.error()};
  }
  uint32_t parts = 0;
  for (auto& b : *list) {
    if (b.name == bucket) {
      parts = b.options.partitions;
    }
  }
  if (parts == 0) {
    return unexpected{error{errc::unknown_bucket, "no bucket named " + bucket}};
  }
  std::vector<std::string> out;
  for (uint32_t cursor = 0; cursor < parts;) {
    auto r = scan(bucket, cursor, 16);
    if (!r) {
      return unexpected{r.error()};
    }
    out.insert(out.end(), std::make_move_iterator(r->keys.begin()),
               std::make_move_iterator(r->keys.end()));
    if (r->next <= cursor) {
      return unexpected{error{errc::malformed_frame,
                              "a scan of " + bucket + " did not move on"}};
    }
    cursor = r->next;
  }
  return out;
}

} // namespace mycorrizal
