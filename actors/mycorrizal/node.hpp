// SPDX-License-Identifier: Apache-2.0
// A Mycorrizal node inside a host's actor system: membership, QUIC,
// applications, and a facade for code that is not actor code.
#pragma once

#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/apps/router.hpp"
#include "mycorrizal/cluster/keyring.hpp"
#include "mycorrizal/cluster/peers.hpp"
#include "mycorrizal/endpoint.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/config.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/interfaces.hpp"
#include "mycorrizal/metrics/registry.hpp"
#include "mycorrizal/mycel/cache.hpp"
#include "mycorrizal/quic/credentials.hpp"
#include "mycorrizal/quic/transport_config.hpp"
#include "mycorrizal/serve/node_snapshot.hpp"
#include "mycorrizal/transport/stream_options.hpp"

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/timespan.hpp>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

/// `node::start` spawns a node's actors into the host's `caf::actor_system`
/// (DESIGN.md §3): the reactor thread that serves its sockets, `membership`
/// (gossip), `transport` (QUIC), `peers` (one connection per member pair),
/// `router` (applications), all linked to the node's root actor.
///
/// - **ready** is signalled exactly once, after the first join attempt:
///   also when no seed answers (the node then forms a cluster of its own
///   and others may join it). `wait_ready` and `ready()` observe it.
/// - **stop** leaves the cluster (bounded by `leave_timeout`), stops every
///   actor of the node and waits until they are gone, stops the reactor
///   thread and closes the sockets. `start` and `stop` are idempotent; the
///   destructor stops. After `stop` the host's system shuts down without
///   waiting for anything of the node.
///
/// The host's actor system needs `mycorrizal::add_error_category(cfg)` (for
/// readable errors) and `add_message_type` for every type its applications
/// send as CAF messages.
namespace mycorrizal::net {
class udp_filter;
} // namespace mycorrizal::net

namespace mycorrizal {

/// How to start a node.
struct node_config {
  /// The node's name: its membership name and its certificate's CN.
  /// Required; 1..64 characters of `A-Z a-z 0-9 . - _`.
  std::string name;

  /// Gossip (UDP + TCP on one port). Port 0 picks a free port.
  ip_endpoint gossip_bind = ip_endpoint::v4(127, 0, 0, 1, 0);
  /// What other nodes dial for gossip; defaults to `gossip_bind`.
  std::optional<ip_endpoint> gossip_advertise;

  /// QUIC (UDP). Port 0 picks a free port; it is announced in the
  /// membership metadata.
  ip_endpoint quic_bind = ip_endpoint::v4(127, 0, 0, 1, 0);

  /// Nodes to join ("host:port" gossip addresses). Empty: start alone.
  std::vector<std::string> seeds;

  /// Certificate, key and cluster CA. Without them, `data_dir` is used in
  /// development mode (`certs::dev_credentials`).
  std::optional<quic::credentials> credentials;
  /// Where development mode keeps its CA and certificates.
  std::string data_dir;

  /// Gossip settings (name and advertise are filled in; `keys` encrypts).
  gossip::membership_config gossip = gossip::membership_config::lan_defaults();
  /// QUIC settings.
  quic::transport_config transport = quic::transport_config::lan_defaults();
  /// Per-stream limits.
  stream_options streams;
  /// Fault injection (tests): drops QUIC datagrams from the senders it
  /// blocks (`net::udp_filter`). Null = off.
  std::shared_ptr<net::udp_filter> quic_filter;

  /// Which actors the node's I/O thread runs between its rounds of I/O
  /// (at most 5 ms a round; the rest goes to the scheduler), instead of
  /// waking a scheduler worker for every read (`net::reactor_config::host`,
  /// docs/operations.md):
  /// - `all`: the actors it feeds (QUIC connections and their streams,
  ///   Redis connections) and every actor their messages reach, the
  ///   host's handlers too, as Netty's or Vert.x's event loop runs its
  ///   handlers: a handler that blocks or computes for long then holds
  ///   the node's sockets; make such handlers `caf::detached`;
  /// - `own`: only the node's own actors (named "mycorrizal.*"); a
  ///   host's handlers run on the scheduler, as CAF's multiplexer runs
  ///   only brokers (a round trip to a handler then gains nothing);
  /// - `none`: every actor on the scheduler.
  enum class io_thread_actors : uint8_t { none, own, all };
  io_thread_actors io_thread_runs = io_thread_actors::all;

  /// Mycel, the replicated cache (mycel/cache.hpp, docs/cache.md). Empty:
  /// the node runs no cache. With `storage` the node announces the
  /// `cache_storage` role in its gossip metadata and owns partitions.
  std::optional<cache_options> cache;

  /// A QUIC dial must be authenticated within this time.
  caf::timespan dial_timeout = std::chrono::seconds{5};
  /// Redial backoff (exponential with jitter). When no seed answers the
  /// first join, the node retries its seeds with the same backoff until one
  /// answers or another node joined it.
  caf::timespan backoff_min = std::chrono::milliseconds{100};
  caf::timespan backoff_max = std::chrono::seconds{10};
  /// `stop` waits this long for the leave to be gossiped.
  caf::timespan leave_timeout = std::chrono::seconds{1};
  /// How long each call of the blocking facade waits for the node's actors
  /// (a `request` waits for its own timeout instead).
  caf::timespan facade_timeout = std::chrono::seconds{10};

  /// A profile for nodes on one machine (tests, the demo): fast gossip and
  /// failure detection, short QUIC idle timeout and backoff.
  static node_config local(std::string name);

  /// @returns `errc::invalid_config` or `errc::invalid_identifier` naming
  ///          the bad field.
  expected<void> validate() const;
};

/// What a raw-bytes request handler answers.
using app_reply = expected<std::vector<std::byte>>;

/// Callbacks for host code that is not actor code (`node::register_app`).
/// They run on one of the actor system's threads, one call at a time per
/// application; they must not block for long.
struct app_callbacks {
  /// One-way raw-bytes messages.
  std::function<void(const app_message&)> on_message;
  /// Raw-bytes requests; without it requests get `errc::no_handler`.
  std::function<app_reply(const app_request&)> on_request;
};

/// A value read from the cache.
struct cache_entry {
  std::vector<std::byte> value;
  /// The version of the write that stored it.
  cache::version ver;
  /// When it expires (Unix milliseconds; 0: never).
  int64_t expires_ms = 0;
};

/// How `node::put` writes.
struct put_options {
  /// Time to live; zero: the bucket's default TTL (or none).
  caf::timespan ttl{};
  /// Write only if the key is absent (Redis's SET NX).
  bool only_if_absent = false;
  /// Write only if the key is present (SET XX).
  bool only_if_present = false;
  /// Keep the key's expiry (SET KEEPTTL; `ttl` must be zero).
  bool keep_ttl = false;
};

/// A started node. Thread-safe: the facade only sends messages and waits
/// for their answers.
class node {
public:
  /// Starts a node in `sys`.
  /// @returns `errc::invalid_config` for a bad configuration or missing
  ///          credentials, `errc::connection_lost` when a socket cannot be
  ///          bound.
  static expected<std::shared_ptr<node>> start(caf::actor_system& sys,
                                               node_config cfg);

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Stops the node (see the namespace comment).
  ~node();

  /// Leaves the cluster and stops every actor, thread and socket of the
  /// node. Idempotent; later calls return at once.
  void stop();

  /// Whether `stop` was called.
  bool stopped() const noexcept;

  /// Why the node ended without `stop`: one of its actors (membership,
  /// transport, peers, router, cache) ended, and took the others with it,
  /// as CAF's links do. Empty while the node runs. A program should exit
  /// (and be restarted) when it is set: the node no longer serves.
  std::optional<error> failure() const;

  /// Waits until the first join attempt finished.
  /// @returns false on timeout.
  bool wait_ready(caf::timespan wait) const;

  /// Whether the first join attempt finished.
  bool ready() const noexcept;

  /// Seeds that answered the first join (0: none, or no seeds given).
  size_t seeds_joined() const noexcept;

  const std::string& name() const noexcept;
  /// The bound gossip and QUIC addresses (real ports).
  ip_endpoint gossip_endpoint() const noexcept;
  ip_endpoint quic_endpoint() const noexcept;

  /// The node's actors (for actor code; see their headers).
  caf::actor root() const;
  membership_actor membership() const;
  transport_actor transport() const;
  peers_actor peers() const;
  router_actor router() const;
  /// The cache actor (invalid when `node_config::cache` is empty).
  cache_actor cache() const;
  /// The node's socket reactor, for servers that run beside the node (the
  /// Redis front door); null once the node stopped.
  std::shared_ptr<net::reactor> reactor() const;

  // -- facade (blocking; each waits at most `timeout`)
  // -------------------------

  /// Registers an application with a handler actor.
  expected<void> register_app(const std::string& app, caf::actor handler,
                              app_options opts = {});
  /// Registers an application served by callbacks (a handler actor is
  /// spawned for them and ends with the registration).
  expected<void> register_app(const std::string& app, app_callbacks callbacks,
                              app_options opts = {});
  expected<void> unregister_app(const std::string& app);

  /// Creates a named stream of a registered application; `handler` (if
  /// valid) receives its messages instead of the application's handler.
  expected<void> create_stream(const std::string& app,
                               const std::string& stream,
                               caf::actor handler = {});
  expected<void> close_stream(const std::string& app,
                              const std::string& stream);
  expected<std::vector<std::string>> list_streams(const std::string& app);

  /// Sends `payload` to every node of `nodes`.
  expected<void>
  send(const std::string& app, const std::vector<std::string>& nodes,
       std::vector<std::byte> payload, const std::string& stream = {});
  /// Sends `payload` to every peer running `app` (not to ourselves).
  /// @returns the nodes it was queued for.
  expected<std::vector<std::string>> broadcast(const std::string& app,
                                               std::vector<std::byte> payload,
                                               const std::string& stream = {});
  /// Asks the handler of `app` on `to`; waits at most `timeout`.
  expected<std::vector<std::byte>>
  request(const std::string& to, const std::string& app,
          std::vector<std::byte> payload, caf::timespan timeout,
          const std::string& stream = {});
  /// Like `request`, without blocking the caller.
  std::future<expected<std::vector<std::byte>>>
  request_async(const std::string& to, const std::string& app,
                std::vector<std::byte> payload, caf::timespan timeout,
                const std::string& stream = {});
  /// The remote handle of (`to`, `app`, `stream`) for actor code.
  expected<caf::actor> remote(const std::string& to, const std::string& app,
                              const std::string& stream = {});
  /// `remote` as a typed handle, for a remote handler whose interface both
  /// sides share as a `caf::typed_actor` alias (as with CAF's
  /// `remote_actor<T>`): messages to it, and the replies the caller
  /// expects, are checked against `Handle` when the caller compiles. The
  /// remote side is not asked to confirm the interface: a handler that has
  /// no case for a message answers it with `errc::no_handler`.
  template <class Handle>
  expected<Handle> remote_as(const std::string& to, const std::string& app,
                             const std::string& stream = {}) {
    auto handle = remote(to, app, stream);
    if (!handle) {
      return unexpected{handle.error()};
    }
    return caf::actor_cast<Handle>(std::move(*handle));
  }
  /// Peers running `app`.
  expected<std::vector<std::string>> nodes(const std::string& app);
  /// The membership view, ourselves included.
  expected<std::vector<gossip::member>> members();
  /// Peers and their connections.
  expected<std::vector<peer_info>> connections();
  expected<std::vector<app_stats>> stats();

  // -- cache facade (docs/cache.md) -----------------------------------------
  //
  // Each call needs `node_config::cache` (else `errc::unknown_application`)
  // and waits at most `facade_timeout`. Errors: `unknown_bucket`,
  // `no_owner`, `timeout`, `node_down`, `connection_lost`, `too_large`,
  // `wrong_type`, `version_mismatch`, `shutting_down`.

  /// Creates a bucket cluster-wide: true if created, false if it existed
  /// with the same options; `errc::bucket_exists` (naming the existing
  /// options) if with others.
  expected<bool> create_bucket(const std::string& bucket,
                               bucket_options opts = {});
  /// Drops a bucket cluster-wide: whether it existed.
  expected<bool> drop_bucket(const std::string& bucket);
  expected<std::vector<bucket_info>> buckets();
  /// The handle of `bucket` that actor code sends its operations to
  /// (`bucket_handle`, mycel/cache.hpp).
  expected<bucket_handle> bucket(const std::string& bucket);
  /// The counters of every bucket on this node.
  expected<std::vector<bucket_stats>> cache_stats();
  /// The storage members this node places partitions on.
  expected<std::vector<std::string>> cache_members();
  /// The owners of `key` in this node's view, primary first.
  expected<std::vector<std::string>> owners(const std::string& bucket,
                                            const std::string& key);

  /// Runs one operation (`cache::proto::op_request`; its `bucket` field is
  /// set from `bucket`).
  expected<cache::proto::op_reply> execute(const std::string& bucket,
                                           cache::proto::op_request op);
  /// Like `execute`, without blocking the caller.
  std::future<expected<cache::proto::op_reply>>
  execute_async(const std::string& bucket, cache::proto::op_request op);

  /// The value of `key`, or nothing.
  expected<std::optional<cache_entry>> get(const std::string& bucket,
                                           const std::string& key);
  /// Stores `value` under `key`: true if written, false if a condition
  /// (`only_if_absent`, `only_if_present`) did not hold.
  expected<bool> put(const std::string& bucket, const std::string& key,
                     const std::vector<std::byte>& value,
                     const put_options& opts = {});
  /// `put` that answers the value it replaced (empty: the key was absent),
  /// like Redis's SET ... GET and Hazelcast's `IMap.put`. With a condition
  /// that did not hold nothing is written, and the answer is the value the
  /// key holds.
  expected<std::optional<cache_entry>>
  get_and_put(const std::string& bucket, const std::string& key,
              const std::vector<std::byte>& value,
              const put_options& opts = {});
  /// Whether the key existed.
  expected<bool> del(const std::string& bucket, const std::string& key);
  /// Sets the key to expire after `ttl` (a `ttl` <= 0 deletes it, as
  /// Redis's EXPIRE does). Whether the key existed.
  expected<bool> expire(const std::string& bucket, const std::string& key,
                        caf::timespan ttl);
  /// Removes the key's expiry: whether the key existed and had one.
  expected<bool> persist(const std::string& bucket, const std::string& key);
  /// When the key expires (Unix milliseconds; 0: never), or nothing when
  /// it is absent.
  expected<std::optional<int64_t>> expires_at(const std::string& bucket,
                                              const std::string& key);
  /// Adds `delta` to a decimal integer value (an absent key counts as 0),
  /// atomically at the key's primary: the new value.
  expected<int64_t> incr(const std::string& bucket, const std::string& key,
                         int64_t delta = 1);
  /// Stores `value` if the key holds version `expected` (the empty
  /// version: if it is absent), atomically at the key's primary: the
  /// version it stored (for the next compare-and-set); else
  /// `errc::version_mismatch`, naming the version the key holds.
  expected<cache::version> compare_and_set(const std::string& bucket,
                                           const std::string& key,
                                           cache::version expected_version,
                                           const std::vector<std::byte>& value,
                                           const put_options& opts = {});
  /// The values of `keys` (in parallel), in their order.
  expected<std::vector<std::optional<cache_entry>>>
  get_many(const std::string& bucket, const std::vector<std::string>& keys);
  /// Stores every pair (in parallel); the first error names its key.
  expected<void>
  put_many(const std::string& bucket,
           std::vector<std::pair<std::string, std::vector<std::byte>>> pairs,
           const put_options& opts = {});
  /// One step of a scan: the keys of partitions [cursor, reply.next);
  /// start at 0, done when `next` is the bucket's partition count.
  expected<cache::proto::scan_reply> scan(const std::string& bucket,
                                          uint32_t cursor, uint32_t count = 1);
  /// Every key of `bucket` (a whole scan).
  expected<std::vector<std::string>> keys(const std::string& bucket);

  /// Stores a value of any type CAF can serialize (an `inspect` overload),
  /// in CAF's binary format.
  template <class T>
  expected<bool> put_as(const std::string& bucket, const std::string& key,
                        const T& value, const put_options& opts = {}) {
    std::vector<char> buf;
    caf::binary_serializer sink{system(), buf};
    if (auto err = sink(const_cast<T&>(value))) {
      return unexpected{
        error{errc::not_serializable, "cannot serialize the value of " + key}};
    }
    std::vector<std::byte> bytes(buf.size());
    if (!buf.empty()) {
      std::memcpy(bytes.data(), buf.data(), buf.size());
    }
    return put(bucket, key, bytes, opts);
  }
  /// Reads a value `put_as<T>` stored; `errc::wrong_type` when the bytes
  /// are no `T`.
  template <class T>
  expected<std::optional<T>>
  get_as(const std::string& bucket, const std::string& key) {
    auto got = get(bucket, key);
    if (!got) {
      return unexpected{got.error()};
    }
    if (!*got) {
      return std::optional<T>{};
    }
    const auto& v = (*got)->value;
    caf::binary_deserializer source{
      system(), reinterpret_cast<const char*>(v.data()), v.size()};
    T out{};
    if (auto err = source(out); err || source.remaining() != 0) {
      return unexpected{
        error{errc::wrong_type, key + " holds no value of the asked type"}};
    }
    return std::optional<T>{std::move(out)};
  }

  // -- keyring (cluster/keyring.hpp, docs/api.md) --------------------------
  //
  // Each call asks every alive Mycorrizal member (this node included) and
  // waits at most `wait` for their answers, as serf's key manager does; the
  // report names every member asked and what failed where. Errors of the
  // call itself: `invalid_config` for a key that is not 16, 24 or 32 bytes
  // long, `timeout` or `shutting_down` when this node's membership does not
  // answer.

  /// Every member's keys, primary first (serf's `keys -list`).
  expected<keyring_report>
  keyring_list(caf::timespan wait = std::chrono::seconds{5});
  /// Adds `key` to every member's keyring (it encrypts nothing until used).
  expected<keyring_report>
  keyring_install(const std::vector<std::byte>& key,
                  caf::timespan wait = std::chrono::seconds{5});
  /// Makes the installed `key` every member's primary key (the one that
  /// encrypts); members without it refuse.
  expected<keyring_report>
  keyring_use(const std::vector<std::byte>& key,
              caf::timespan wait = std::chrono::seconds{5});
  /// Removes `key` from every member's keyring; a member whose primary key
  /// it is refuses (as memberlist does).
  expected<keyring_report>
  keyring_remove(const std::vector<std::byte>& key,
                 caf::timespan wait = std::chrono::seconds{5});

  // -- metrics (docs/metrics.md) ---------------------------------------------

  /// The node's registry: the host may add its own families (they appear
  /// in `metrics_text`), and the node's servers count into it.
  metrics::registry& metrics_registry() noexcept;

  /// Everything in the Prometheus text format: the registry's families and
  /// what the node's actors report when asked (`snapshot`, within `wait`
  /// in all; a part that did not answer is left out and shows as
  /// `mycorrizal_scrape_part_up{part=...} 0`). For hosts that serve their
  /// own HTTP; blocks the caller, so call it from a non-actor thread.
  std::string metrics_text(caf::timespan wait = std::chrono::seconds{2});

  /// What the node's actors report about themselves now, asked one after
  /// the other within `wait` in all (what did not answer in time stays
  /// empty): the status page's and the metrics' source.
  node_snapshot snapshot(caf::timespan wait = std::chrono::seconds{2});

  /// The actor system the node runs in.
  caf::actor_system& system() const noexcept;

private:
  struct impl;

  explicit node(std::unique_ptr<impl> x);
  std::unique_ptr<impl> impl_;
};

} // namespace mycorrizal
