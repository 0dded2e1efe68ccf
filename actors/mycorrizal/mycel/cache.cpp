// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/mycel/cache.hpp"

#include "mycorrizal/config_check.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/mycel/internal/bucket.hpp"
#include "mycorrizal/runtime/actor_time.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace mycorrizal {

expected<void> cache_options::validate() const {
  config_check check{"cache"};
  check.require("op_timeout", op_timeout > caf::timespan::zero(),
                "must be positive");
  check.require("anti_entropy_interval",
                anti_entropy_interval > caf::timespan::zero(),
                "must be positive");
  check.require("handoff_batch_bytes",
                handoff_batch_bytes >= 1024
                  && handoff_batch_bytes <= (size_t{8} << 20),
                "must be in [1 KiB, 8 MiB]");
  check.require("handoff_attempts", handoff_attempts >= 1, "must be >= 1");
  check.require("tombstone_lifetime",
                tombstone_lifetime > caf::timespan::zero(), "must be positive");
  check.require("expiry_budget", expiry_budget >= 1, "must be >= 1");
  check.require("drain_timeout", drain_timeout >= caf::timespan::zero(),
                "must not be negative");
  return std::move(check).result();
}

namespace {

constexpr std::string_view cache_component = "mycel";
constexpr auto app_id = "mycel";

using namespace cache;
using detail::bucket_actor;

/// What the cache tells itself: resend the registry to a node; end a
/// dropped bucket's actor (and its streams, unless a new bucket of the
/// name took them).
using cache_impl_actor
  = cache_actor::extend<caf::reacts_to<tick_atom, std::string, int>,
                        caf::reacts_to<repair_atom>,
                        caf::reacts_to<stop_atom, std::string, caf::actor>>;

struct cache_state {
  static inline const char* name = "mycorrizal.cache";

  cache_actor_options opts;
  hybrid_clock clock{0};
  /// Every bucket ever heard of (dropped ones as tombstones).
  std::map<std::string, proto::bucket_def> registry;
  /// Per name, the newest drop heard of, kept when a create follows it: a
  /// create older than it (a registry push that was on its way) must not
  /// bring the dropped bucket back over the one made after the drop.
  std::map<std::string, version> drops;
  std::map<std::string, bucket_actor> buckets;
  /// Per name, the stream tag of the running bucket (`stream_tag` of its
  /// definition).
  std::map<std::string, std::string> tags;
  /// Members alive or suspect, and which of them store partitions.
  std::set<std::string> members;
  std::set<std::string> storage;
  /// We stopped storing (a graceful stop).
  bool draining = false;
};

using cache_self = cache_impl_actor::stateful_pointer<cache_state>;

/// The running bucket `name`, or the `unknown_bucket` error every request
/// by name answers when there is none here.
expected<bucket_actor> running_bucket(const cache_state& st,
                                      const std::string& name) {
  auto i = st.buckets.find(name);
  if (i == st.buckets.end()) {
    return unexpected{error{errc::unknown_bucket, "no bucket named " + name}};
  }
  return i->second;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::vector<std::string> storage_view(cache_self self) {
  auto& st = self->state;
  return {st.storage.begin(), st.storage.end()};
}

/// Of two definitions of one name: a drop newer than the create wins; of
/// two creates, the first one (the older version) wins.
bool replaces(const proto::bucket_def& incoming,
              const proto::bucket_def& held) {
  if (incoming.dropped != held.dropped) {
    return held.ver < incoming.ver;
  }
  return !incoming.dropped && incoming.ver < held.ver;
}

/// Gives the streams of `tag` to `handler`.
void open_streams(cache_self self, const std::string& tag,
                  const caf::actor& handler) {
  auto& st = self->state;
  for (auto& stream : {detail::ops_stream(tag), detail::replication_stream(tag),
                       detail::handoff_stream(tag)}) {
    self->send(st.opts.router, create_stream_atom::value, std::string{app_id},
               stream, handler);
  }
}

void start_bucket(cache_self self, const proto::bucket_def& def) {
  auto& st = self->state;
  detail::bucket_actor_options bo;
  bo.self = st.opts.name;
  bo.name = def.name;
  bo.tag = detail::stream_tag(def.name, def.ver);
  bo.options = def.options;
  bo.cache = st.opts.options;
  bo.router = st.opts.router;
  bo.storage = st.opts.options.storage && !st.draining;
  auto tag = bo.tag;
  auto b = detail::spawn_bucket(self->system(), std::move(bo));
  self->link_to(b);
  open_streams(self, tag, caf::actor_cast<caf::actor>(b));
  self->send(b, view_atom::value, storage_view(self), std::string{});
  st.buckets[def.name] = b;
  st.tags[def.name] = std::move(tag);
  MYCORRIZAL_LOG_INFO(
    cache_component, "{}: bucket {} (rf {}, {} partitions, ack {})",
    st.opts.name, def.name, def.options.rf, def.options.partitions,
    def.options.ack == proto::ack_mode::all ? "all" : "primary");
}

/// Ends the bucket `name` here. Its streams stay open, and the bucket
/// answers every request on them with `unknown_bucket`, for `op_timeout`:
/// a peer's request sent before it heard of the drop gets that answer
/// (which callers retry at a bucket of the name that replaced it) instead
/// of the stream closing under it (`connection_lost`: the caller cannot
/// tell whether it ran). A bucket that replaces it has streams of its own
/// (another tag).
void stop_bucket(cache_self self, const std::string& name) {
  auto& st = self->state;
  auto i = st.buckets.find(name);
  if (i == st.buckets.end()) {
    return;
  }
  auto old = caf::actor_cast<caf::actor>(i->second);
  self->send(i->second, drop_bucket_atom::value);
  st.buckets.erase(i);
  auto tag = std::move(st.tags[name]);
  st.tags.erase(name);
  self->delayed_send(self, st.opts.options.op_timeout, stop_atom::value,
                     std::move(tag), old);
}

/// The end of a dropped bucket's grace (or of a tag a bucket no longer
/// uses; `old` is then null): the streams of `tag` close, the actor goes.
void end_dropped(cache_self self, const std::string& tag,
                 const caf::actor& old) {
  auto& st = self->state;
  for (auto& stream : {detail::ops_stream(tag), detail::replication_stream(tag),
                       detail::handoff_stream(tag)}) {
    self->send(st.opts.router, close_stream_atom::value, std::string{app_id},
               stream);
  }
  if (old) {
    self->unlink_from(old);
    self->send_exit(old, caf::exit_reason::user_shutdown);
  }
}

/// Takes a definition in; returns whether it changed the registry.
bool merge(cache_self self, const proto::bucket_def& def) {
  auto& st = self->state;
  st.clock.observe(def.ver, wall_ms());
  if (def.dropped) {
    auto& d = st.drops[def.name];
    d = std::max(d, def.ver);
  } else if (auto d = st.drops.find(def.name);
             d != st.drops.end() && def.ver < d->second) {
    return false; // created before the drop we know of
  }
  auto i = st.registry.find(def.name);
  if (i != st.registry.end() && !replaces(def, i->second)) {
    return false;
  }
  // A create that won over ours (two made the name at once) with the same
  // options is the same bucket: the one running keeps what was written to
  // it. With other options it is replaced.
  bool same = i != st.registry.end() && !i->second.dropped && !def.dropped
              && i->second.options == def.options
              && st.buckets.count(def.name) != 0;
  st.registry[def.name] = def;
  if (def.dropped) {
    stop_bucket(self, def.name);
  } else if (!same) {
    stop_bucket(self, def.name);
    start_bucket(self, def);
  } else if (auto tag = detail::stream_tag(def.name, def.ver);
             tag != st.tags[def.name]) {
    // The same bucket under the winner's version: it talks on the
    // winner's streams from now on, as its peers do; its old streams
    // serve what is on its way for the grace a drop has.
    auto& b = st.buckets[def.name];
    open_streams(self, tag, caf::actor_cast<caf::actor>(b));
    self->send(b, retag_atom::value, tag);
    self->delayed_send(self, st.opts.options.op_timeout, stop_atom::value,
                       std::exchange(st.tags[def.name], tag), caf::actor{});
  }
  return true;
}

/// Our whole registry, as a peer's cache takes it.
raw_bytes registry_payload(const cache_state& st) {
  std::vector<proto::bucket_def> defs;
  for (const auto& [name, def] : st.registry) {
    defs.push_back(def);
  }
  return raw_bytes{proto::encode(proto::buckets{std::move(defs)})};
}

/// Sends our whole registry to `node`; retried a few times while its
/// cache is not up yet (a member that just joined).
void push_registry(cache_self self, const std::string& node, int attempt) {
  auto& st = self->state;
  if (st.registry.empty() || attempt > 5 || st.members.count(node) == 0) {
    return;
  }
  auto payload = registry_payload(st);
  self
    ->request(st.opts.router, st.opts.options.op_timeout, request_atom::value,
              node, std::string{app_id}, std::move(payload),
              caf::timespan{st.opts.options.op_timeout}, std::string{})
    .then([](raw_bytes&) {},
          [=](caf::error& e) {
            if (from_caf_error(e) != errc::node_down) {
              self->delayed_send(self, std::chrono::seconds{1} * attempt,
                                 tick_atom::value, node, attempt + 1);
            }
          });
}

/// Tells every member about a change of the registry, and answers `true`
/// once each has taken it in, or cannot (it left, or did not answer within
/// half the operation timeout: it gets the registry again later, as after
/// any failed push). A create or drop is then in force on every node that
/// answers: after FLUSHDB's OK no node serves the dropped bucket's data.
caf::result<bool> announce(cache_self self) {
  auto& st = self->state;
  if (st.members.empty()) {
    return true;
  }
  auto rp = self->make_response_promise<bool>();
  auto left = std::make_shared<size_t>(st.members.size());
  auto payload = registry_payload(st);
  auto timeout = st.opts.options.op_timeout / 2;
  for (const auto& m : st.members) {
    auto one_done = [rp, left]() mutable {
      if (--*left == 0) {
        rp.deliver(true);
      }
    };
    self
      ->request(st.opts.router, timeout, request_atom::value, m,
                std::string{app_id}, payload, caf::timespan{timeout},
                std::string{})
      .then(
        [one_done](raw_bytes&) mutable {
          one_done();
        },
        [self, m, one_done](caf::error& e) mutable {
          if (from_caf_error(e) != errc::node_down) {
            self->delayed_send(self, std::chrono::seconds{1}, tick_atom::value,
                               m, 2);
          }
          one_done();
        });
  }
  return rp;
}

void on_member(cache_self self, const gossip::member& m) {
  auto& st = self->state;
  if (m.name == st.opts.name) {
    return;
  }
  bool alive = m.state == gossip::node_state::alive
               || m.state == gossip::node_state::suspect;
  bool stores = false;
  if (alive) {
    if (auto meta = gossip::decode_node_meta(m.meta); meta && *meta) {
      stores = ((*meta)->roles & gossip::cache_storage) != 0;
    }
  }
  bool was_member = st.members.count(m.name) > 0;
  if (alive) {
    st.members.insert(m.name);
  } else {
    st.members.erase(m.name);
  }
  bool changed = stores ? st.storage.insert(m.name).second
                        : st.storage.erase(m.name) > 0;
  if (alive && !was_member) {
    push_registry(self, m.name, 1);
  }
  MYCORRIZAL_LOG_DEBUG(cache_component,
                       "{}: member {} (state {}, {} bytes of meta): {}",
                       st.opts.name, m.name, static_cast<int>(m.state),
                       m.meta.size(), stores ? "stores" : "stores nothing");
  if (changed) {
    auto view = storage_view(self);
    MYCORRIZAL_LOG_INFO(cache_component, "{}: {} storage members: {}",
                        st.opts.name, view.size(),
                        fmt::format("{}", fmt::join(view, ", ")));
    for (auto& [name, b] : st.buckets) {
      self->send(b, view_atom::value, view, std::string{});
    }
  }
}

cache_impl_actor::behavior_type cache_impl(cache_self self,
                                           cache_actor_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.clock = hybrid_clock{node_id(st.opts.name)};
  if (st.opts.options.storage) {
    st.storage.insert(st.opts.name);
  }
  app_options ao;
  // Three streams per bucket.
  ao.max_streams = 99999;
  ao.request_timeout = st.opts.options.op_timeout * 4;
  self->send(st.opts.router, register_atom::value, std::string{app_id},
             caf::actor_cast<caf::actor>(self), ao);
  self
    ->request(st.opts.membership, caf::infinite, subscribe_atom::value,
              caf::actor_cast<caf::actor>(self))
    .then(
      [=](std::vector<gossip::member>& ms) {
        for (auto& m : ms) {
          on_member(self, m);
        }
      },
      [=](caf::error& e) {
        MYCORRIZAL_LOG_ERROR(cache_component,
                             "{}: no membership subscription: {}",
                             self->state.opts.name,
                             to_string(from_caf_error(e)));
      });
  self->delayed_send(self, st.opts.options.anti_entropy_interval,
                     repair_atom::value);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& cur = self->state;
    for (auto& [name, b] : cur.buckets) {
      self->send_exit(b, msg.reason);
    }
    cur.buckets.clear();
    self->quit(msg.reason);
  });
  return {
    [=](create_bucket_atom, std::string& name,
        bucket_options& options) -> caf::result<bool> {
      auto& cur = self->state;
      if (auto ok = proto::check_bucket_name(name); !ok) {
        return make_caf_error(ok.error());
      }
      if (auto ok = proto::validate(options); !ok) {
        return make_caf_error(ok.error());
      }
      auto i = cur.registry.find(name);
      if (i != cur.registry.end() && !i->second.dropped) {
        const auto& o = i->second.options;
        if (o == options) {
          return false;
        }
        return make_caf_error(error{
          errc::bucket_exists,
          fmt::format("bucket {} exists with rf {}, {} partitions, ack {}, "
                      "default ttl {} ms, max entries {}, max bytes {}",
                      name, o.rf, o.partitions,
                      o.ack == proto::ack_mode::all ? "all" : "primary",
                      o.default_ttl_ms, o.max_entries, o.max_bytes)});
      }
      proto::bucket_def def{name, options, cur.clock.next(wall_ms()), false};
      merge(self, def);
      return announce(self);
    },
    [=](drop_bucket_atom, std::string& name) -> caf::result<bool> {
      auto& cur = self->state;
      auto i = cur.registry.find(name);
      if (i == cur.registry.end() || i->second.dropped) {
        return false;
      }
      auto def = i->second;
      def.dropped = true;
      def.ver = cur.clock.next(wall_ms());
      merge(self, def);
      return announce(self);
    },
    [=](list_buckets_atom) {
      std::vector<bucket_info> out;
      for (auto& [name, def] : self->state.registry) {
        if (!def.dropped) {
          out.push_back(bucket_info{name, def.options});
        }
      }
      return out;
    },
    [=](cache_op& x) -> caf::result<proto::op_reply> {
      auto b = running_bucket(self->state, x.bucket);
      if (!b) {
        return make_caf_error(b.error());
      }
      return self->delegate(*b, std::move(x));
    },
    [=](cache_op_batch& x) -> caf::result<cache_op_batch_reply> {
      auto b = running_bucket(self->state, x.bucket);
      if (!b) {
        return make_caf_error(b.error());
      }
      return self->delegate(*b, std::move(x));
    },
    [=](bucket_atom, std::string& bucket) -> caf::result<bucket_handle> {
      auto b = running_bucket(self->state, bucket);
      if (!b) {
        return make_caf_error(b.error());
      }
      return bucket_handle{*b};
    },
    [=](scan_atom, std::string& bucket, uint32_t cursor,
        uint32_t count) -> caf::result<proto::scan_reply> {
      auto b = running_bucket(self->state, bucket);
      if (!b) {
        return make_caf_error(b.error());
      }
      return self->delegate(*b, scan_atom::value, cursor, count);
    },
    [=](stats_atom) -> caf::result<std::vector<bucket_stats>> {
      auto& cur = self->state;
      auto rp = self->make_response_promise<std::vector<bucket_stats>>();
      auto out = std::make_shared<std::vector<bucket_stats>>();
      auto left = std::make_shared<size_t>(cur.buckets.size());
      if (*left == 0) {
        rp.deliver(std::vector<bucket_stats>{});
        return rp;
      }
      for (auto& [name, b] : cur.buckets) {
        self->request(b, cur.opts.options.op_timeout, stats_atom::value)
          .then(
            [=](bucket_stats& s) mutable {
              out->push_back(std::move(s));
              if (--*left == 0) {
                rp.deliver(std::move(*out));
              }
            },
            [=](caf::error&) mutable {
              if (--*left == 0) {
                rp.deliver(std::move(*out));
              }
            });
      }
      return rp;
    },
    [=](members_atom) {
      return storage_view(self);
    },
    [=](owners_atom, std::string& bucket,
        std::string& key) -> caf::result<std::vector<std::string>> {
      auto b = running_bucket(self->state, bucket);
      if (!b) {
        return make_caf_error(b.error());
      }
      return self->delegate(*b, owners_atom::value, std::move(key));
    },
    [=](drain_atom) -> caf::result<uint64_t> {
      auto& cur = self->state;
      cur.draining = true;
      cur.storage.erase(cur.opts.name);
      auto view = storage_view(self);
      MYCORRIZAL_LOG_INFO(cache_component,
                          "{}: draining {} buckets to {} storage members",
                          cur.opts.name, cur.buckets.size(), view.size());
      auto rp = self->make_response_promise<uint64_t>();
      auto left = std::make_shared<size_t>(cur.buckets.size());
      auto failed = std::make_shared<uint64_t>(0);
      if (*left == 0) {
        rp.deliver(uint64_t{0});
        return rp;
      }
      for (auto& [name, b] : cur.buckets) {
        self->send(b, view_atom::value, view, cur.opts.name);
        self->request(b, caf::infinite, drain_atom::value)
          .then(
            [=](uint64_t n) mutable {
              *failed += n;
              if (--*left == 0) {
                rp.deliver(*failed);
              }
            },
            [=](caf::error&) mutable {
              if (--*left == 0) {
                rp.deliver(*failed);
              }
            });
      }
      return rp;
    },
    [=](gossip::member_event& ev) {
      on_member(self, ev.who);
    },
    [=](tick_atom, std::string& node, int attempt) {
      push_registry(self, node, attempt);
    },
    [=](repair_atom) {
      // Every round, the whole registry to everyone: what a lost message
      // left out arrives with the next round.
      for (const auto& m : self->state.members) {
        push_registry(self, m, 1);
      }
      self->delayed_send(self, self->state.opts.options.anti_entropy_interval,
                         repair_atom::value);
    },
    [=](app_request& req) -> caf::result<raw_bytes> {
      auto& cur = self->state;
      auto msg = proto::decode(req.payload);
      if (!msg) {
        MYCORRIZAL_LOG_WARN_RL(cache_component, 1,
                               "{}: malformed cache message from {}: {}",
                               cur.opts.name, req.node, to_string(msg.error()));
        return make_caf_error(msg.error());
      }
      if (auto* defs = std::get_if<proto::buckets>(&*msg)) {
        for (auto& d : defs->defs) {
          merge(self, d);
        }
        return raw_bytes{proto::encode(proto::op_reply{})};
      }
      // A bucket's message that came before we made the bucket's streams
      // (a peer opened the stream first): the bucket takes it.
      auto name = std::visit(
        [](const auto& x) -> std::string {
          if constexpr (requires { x.bucket; }) {
            return x.bucket;
          } else {
            return {};
          }
        },
        *msg);
      auto i = cur.buckets.find(name);
      if (i == cur.buckets.end()) {
        return make_caf_error(
          error{errc::unknown_bucket,
                cur.opts.name + " has no bucket named '" + name + "' (yet)"});
      }
      // Only for this incarnation of the bucket: a message of the one
      // before it (or after it, not here yet) must not touch its data.
      auto colon = req.stream.find(':');
      if (colon == std::string::npos
          || std::string_view{req.stream}.substr(colon + 1) != cur.tags[name]) {
        return make_caf_error(
          error{errc::unknown_bucket,
                cur.opts.name + " has another bucket named '" + name
                  + "' than the sender (dropped and created again)"});
      }
      return self->delegate(i->second, std::move(req));
    },
    [=](stop_atom, std::string& tag, caf::actor& old) {
      end_dropped(self, tag, old);
    },
    [=](app_message& m) {
      auto msg = proto::decode(m.payload);
      if (auto* defs = msg ? std::get_if<proto::buckets>(&*msg) : nullptr) {
        for (auto& d : defs->defs) {
          merge(self, d);
        }
      }
    },
  };
}

} // namespace

expected<cache_actor> spawn_cache(caf::actor_system& sys,
                                  cache_actor_options opts) {
  if (auto ok = opts.options.validate(); !ok) {
    return unexpected{ok.error()};
  }
  return caf::actor_cast<cache_actor>(sys.spawn(cache_impl, std::move(opts)));
}

} // namespace mycorrizal
