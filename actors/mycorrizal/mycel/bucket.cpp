// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/mycel/internal/bucket.hpp"

#include "mycorrizal/cache/bucket.hpp"
#include "mycorrizal/runtime/actor_time.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

namespace mycorrizal {

std::span<const double> bucket_stats::latency_bounds() {
  static const std::vector<double> bounds = metrics::latency_buckets();
  return bounds;
}

} // namespace mycorrizal

namespace mycorrizal::detail {

namespace {

constexpr std::string_view bucket_component = "mycel";
constexpr auto app_id = "mycel";

using namespace cache;

/// What the bucket tells itself.
using bucket_impl_actor = bucket_actor::extend<
  caf::reacts_to<tick_atom, int64_t>, caf::reacts_to<repair_atom>,
  caf::reacts_to<handoff_atom, uint64_t>, caf::reacts_to<retry_atom, uint64_t>,
  caf::reacts_to<sweep_atom>, caf::reacts_to<flush_atom>,
  caf::reacts_to<pump_atom>>;

/// One partition's copy to one new owner, batch by batch.
struct transfer_job {
  uint32_t partition = 0;
  std::string to;
  std::vector<proto::entries> batches;
  size_t next = 0;
  int attempts = 0;
};

/// Per operation code, the latency of local callers' operations.
using op_latencies
  = std::array<std::shared_ptr<metrics::histogram>, proto::max_op_code + 1>;

/// The answers to one `cache_op_batch`, collected in order.
struct batch_answers {
  caf::typed_response_promise<cache_op_batch_reply> rp;
  cache_op_batch_reply out;
  size_t left = 0;
  /// Each operation's latency is the batch's, from its start to the one
  /// answer the caller gets: two clock reads per batch, not per operation.
  const caf::actor_clock* clock = nullptr;
  time_point started;
  op_latencies latency;
  std::array<uint32_t, proto::max_op_code + 1> timed{};

  void put(size_t i, proto::op_reply r) {
    out.replies[i] = std::move(r);
    if (--left == 0) {
      observe();
      rp.deliver(std::move(out));
    }
  }

private:
  void observe() {
    if (clock == nullptr) {
      return;
    }
    auto now = std::chrono::time_point_cast<duration>(clock->now());
    auto secs = std::chrono::duration<double>(now - started).count();
    for (size_t code = 0; code < timed.size(); ++code) {
      if (latency[code]) {
        for (uint32_t n = 0; n < timed[code]; ++n) {
          latency[code]->observe(secs);
        }
      }
    }
  }
};

/// A local caller's operation: where its answer goes, and what times it.
struct open_op {
  /// The caller's promise, or (an operation of a batch) the batch's
  /// answers and this operation's place in them.
  caf::typed_response_promise<proto::op_reply> rp;
  std::shared_ptr<batch_answers> sink;
  size_t index = 0;
  bool answered = false;
  /// The bucket's clock, its latency series for this operation (may be
  /// null), and when the operation started.
  const caf::actor_clock* clock = nullptr;
  std::shared_ptr<metrics::histogram> latency;
  time_point started;

  bool pending() const {
    return sink ? !answered : rp.pending();
  }

  void deliver(proto::op_reply r) {
    if (!pending()) {
      return;
    }
    observe();
    if (sink) {
      answered = true;
      sink->put(index, std::move(r));
    } else {
      rp.deliver(std::move(r));
    }
  }

  void deliver(caf::error e) {
    if (!pending()) {
      return;
    }
    observe();
    if (sink) {
      answered = true;
      auto why = from_caf_error(e);
      proto::op_reply r;
      r.status = why.code() == errc::none ? errc::remote_error : why.code();
      r.message = why.context();
      sink->put(index, std::move(r));
    } else {
      rp.deliver(std::move(e));
    }
  }

private:
  void observe() {
    if (latency && clock != nullptr) {
      auto now = std::chrono::time_point_cast<duration>(clock->now());
      latency->observe(std::chrono::duration<double>(now - started).count());
    }
  }
};

/// A local caller's promise, shared by every path its operation takes
/// (forwards, retries, replica waits), so that whichever ends first answers
/// once, and a bucket that ends (dropped, or its node stopping) answers
/// every caller still waiting instead of leaving it to its own timeout.
class op_promise {
public:
  op_promise() = default;
  explicit op_promise(open_op op)
      : op_(std::make_shared<open_op>(std::move(op))) {}

  bool pending() const {
    return op_ && op_->pending();
  }

  void deliver(proto::op_reply r) {
    if (op_) {
      op_->deliver(std::move(r));
    }
  }

  void deliver(caf::error e) {
    if (op_) {
      op_->deliver(std::move(e));
    }
  }

  std::weak_ptr<open_op> watch() const {
    return op_;
  }

private:
  std::shared_ptr<open_op> op_;
};

struct replica_wait;

/// A replication record made during a round (`round_scope`), for one other
/// owner; `pw` is the write waiting for it (ack all), null when nothing
/// waits (ack primary, the drops of evicted keys).
struct outgoing_write {
  uint32_t partition = 0;
  proto::record rec;
  std::shared_ptr<replica_wait> pw;
};

/// An operation forwarded during a round: `targets[i]` runs it (the rest
/// are the owners a read falls back to).
struct outgoing_op {
  proto::op_request op;
  std::vector<std::string> targets;
  size_t i = 0;
  op_promise rp;
  int attempt = 0;
};

/// What a round sends to one peer.
template <class T>
using by_peer = std::vector<std::pair<std::string, std::vector<T>>>;

struct bucket_state {
  static inline const char* name = "mycorrizal.bucket";

  bucket_actor_options opts;
  std::optional<bucket_core> core;
  /// The store's times are wall-clock milliseconds (they travel), the
  /// actor's clock may be virtual in tests.
  wall_clock wall;
  /// While a batch's operations start: the one time they all run at (one
  /// clock read per batch, not per operation).
  std::optional<int64_t> batch_wall;
  /// The expiry tick pending (wall ms), or 0.
  int64_t expiry_armed = 0;
  /// Hand-offs waiting to start, and those started (a batch in flight or
  /// a retry pending), by id: at most `handoff_parallelism` at once, one
  /// per target, so that one slow receiver holds up only its own.
  std::deque<transfer_job> jobs;
  std::map<uint64_t, transfer_job> running;
  uint64_t next_job = 0;
  /// Batches exported ahead for waiting jobs (one pass over the store for
  /// many partitions); cleared on every view change.
  std::map<uint32_t, std::vector<proto::entries>> exported;
  /// When the queue last went from empty to busy, and the jobs ended since.
  std::optional<time_point> busy_since;
  uint64_t jobs_sent = 0;
  uint64_t jobs_abandoned = 0;
  /// Sends still to finish per partition we lose (drop when 0).
  std::map<uint32_t, int> sends_left;
  /// Partitions to drop once their sends are done.
  std::set<uint32_t> to_drop;
  /// Partitions with a failed send among those still running.
  std::set<uint32_t> failed_sends;
  bucket_stats stats;
  /// Operations waiting to be sent again: the owner we sent them to did
  /// not own the key in its view (a membership change still spreading).
  struct retry {
    proto::op_request op;
    op_promise rp;
    int attempts = 0;
  };
  /// Every local caller's promise given out (answered ones expire).
  std::vector<std::weak_ptr<open_op>> open;
  /// Peers' operations waiting for our replicas (answered ones expire).
  std::vector<std::weak_ptr<caf::typed_response_promise<raw_bytes>>> peer_open;
  /// Latency of local callers' operations, by op code (made on first use).
  op_latencies latency;
  std::map<uint64_t, retry> retries;
  /// Writes to ask a replica for again, after a pause (`ask_replica`);
  /// their ids come from `next_retry` too, so that one `retry_atom`
  /// serves both maps.
  struct replica_retry {
    std::shared_ptr<replica_wait> pw;
    std::string to;
    raw_bytes payload;
    int tries = 0;
  };
  std::map<uint64_t, replica_retry> replica_retries;
  uint64_t next_retry = 0;
  /// Drain requests waiting for the hand-off queue to empty.
  std::vector<caf::typed_response_promise<uint64_t>> drains;
  /// Partitions to drop in one pass (`flush_drops`), and whether that
  /// pass is due.
  std::vector<uint32_t> drops_due;
  bool drop_armed = false;
  /// A sweep is pending (`arm_sweep`).
  bool sweep_armed = false;
  /// Dropped (`end_bucket`): operations under way still end with their
  /// own answers, nothing new starts.
  bool dropped = false;
  /// Writes of ours waiting for their replicas (answered ones expire).
  std::vector<std::weak_ptr<replica_wait>> replica_waits;
  /// While a handler runs a round of operations (`round_scope`: a local
  /// batch, a peer's `op_batch`), what they replicate and forward waits
  /// here, by peer, and leaves as one message per peer when the round
  /// ends (`send_round`) instead of one request per record or operation.
  int round_depth = 0;
  by_peer<outgoing_write> round_writes;
  by_peer<outgoing_op> round_ops;
  /// A `pump_atom` to ourselves is on its way: the rounds of every batch
  /// already in our mailbox join this one before it leaves.
  bool round_due = false;

  std::string who() const {
    return opts.self + "/" + opts.name;
  }
};

using bucket_self = bucket_impl_actor::stateful_pointer<bucket_state>;

/// How often an operation is sent again to the owners of our view after
/// one said it owns nothing of the key, and the pause before the k-th time
/// (k times this): about 2.75 s in all, within one `op_timeout`.
constexpr int max_view_retries = 10;
constexpr auto view_retry_delay = std::chrono::milliseconds{50};

/// How soon after a view change, or a replicated write for a partition we
/// do not own, the sweep hands stray copies to their primary: long enough
/// for the change to reach the other views, short against anti-entropy's
/// interval (which sweeps too). Without it, the copies a lagging primary
/// replicated to us stayed until the next anti-entropy round: 25 extra
/// copies for 27 s after growing to five nodes under load.
constexpr auto stray_sweep_delay = std::chrono::seconds{2};

/// Hand-offs running at once (one per target).
constexpr size_t handoff_parallelism = 4;

int64_t wall_now(bucket_self self) {
  auto& st = self->state;
  return st.batch_wall ? *st.batch_wall : st.wall.now_ms(self);
}

raw_bytes encoded(const proto::message& m) {
  return raw_bytes{proto::encode(m)};
}

/// The REPLICATE message of one record of `partition`, for its other
/// owners.
raw_bytes replication_payload(const bucket_state& st, uint32_t partition,
                              proto::record rec) {
  proto::entries e;
  e.bucket = st.opts.name;
  e.partition = partition;
  e.why = proto::transfer::replicate;
  e.records.push_back(std::move(rec));
  return encoded(e);
}

caf::error failure(errc code, std::string what) {
  return make_caf_error(error{code, std::move(what)});
}

/// Delivers an op_reply, its own error (an operation that failed at the
/// primary) as the caller's error.
template <class Promise>
void deliver_reply(Promise& rp, proto::op_reply r) {
  if (r.status != errc::none) {
    rp.deliver(failure(r.status, std::move(r.message)));
  } else {
    rp.deliver(std::move(r));
  }
}

/// Where the answer of an operation goes: a local caller or a peer.
using reply_fn = std::function<void(proto::op_reply)>;

bool is_read(proto::op_code op) {
  return op == proto::op_code::get || op == proto::op_code::ttl;
}

void arm_expiry(bucket_self self);
void arm_sweep(bucket_self self);

/// Sends `payload` to the bucket's actor on `to` through the router and
/// its channel, which end the request at its budget (op_timeout) with
/// `timeout` when no answer comes, and with node_down or connection_lost
/// when the peer goes. No CAF timeout of our own on top: each put the
/// request into CAF's clock thread and woke it (a node forwarding
/// redis-benchmark's SETs: 24k wake-ups and 15 % of a core per second).
auto ask(bucket_self self, const std::string& to, raw_bytes payload,
         std::string stream) {
  auto& st = self->state;
  return self->request(st.opts.router, caf::infinite, request_atom::value, to,
                       std::string{app_id}, std::move(payload),
                       caf::timespan{st.opts.cache.op_timeout},
                       std::move(stream));
}

/// Adds `x` to what the round sends to `to`.
template <class T>
void add_to_round(by_peer<T>& round, const std::string& to, T x) {
  for (auto& [peer, xs] : round) {
    if (peer == to) {
      xs.push_back(std::move(x));
      return;
    }
  }
  round.emplace_back(to, std::vector<T>{}).second.push_back(std::move(x));
}

/// Sends a replication payload to `to` without waiting for the answer.
void tell_replica(bucket_self self, const std::string& to, raw_bytes payload) {
  auto& st = self->state;
  ++st.stats.records_replicated;
  ++st.stats.replication_requests;
  ask(self, to, std::move(payload), replication_stream(st.opts.tag))
    .then([](raw_bytes&) {},
          [self, to](caf::error& err) {
            MYCORRIZAL_LOG_DEBUG_RL(bucket_component, 5,
                                    "{}: replication to {} failed: {}",
                                    self->state.who(), to,
                                    to_string(from_caf_error(err)));
          });
}

/// Sends records to their other owners; the answers are not waited for.
void send_out(bucket_self self, const replication& r) {
  auto& st = self->state;
  if (r.to.empty()) {
    return; // no other owner (one storage member, or RF 1)
  }
  if (st.round_depth > 0) {
    for (const auto& to : r.to) {
      add_to_round(st.round_writes, to, outgoing_write{r.partition, r.rec, {}});
    }
    return;
  }
  auto payload = replication_payload(st, r.partition, r.rec);
  for (const auto& to : r.to) {
    tell_replica(self, to, payload);
  }
}

void send_out(bucket_self self, const std::vector<replication>& out) {
  for (const auto& r : out) {
    send_out(self, r);
  }
}

/// Runs `op` here (we are its primary, or an owner); `p` is the key's
/// partition. What is left to do is `finish_here`'s.
op_result run_here(bucket_self self, const proto::op_request& op, uint32_t p) {
  auto& st = self->state;
  auto res = st.core->execute(op, wall_now(self), p);
  arm_expiry(self);
  return res;
}

/// Whether `finish_here` answers `res` before it returns (no owner to wait
/// for): the same tests in the same order as there.
bool answers_at_once(const bucket_state& st, const op_result& res) {
  return res.reply.status != errc::none || res.out.empty()
         || res.out.front().to.empty()
         || st.opts.options.ack == proto::ack_mode::primary;
}

/// Adds `x` to the promises `answer_all` (or `end_bucket`) answers, first
/// dropping the answered ones (expired) once there are many.
template <class T>
void keep_watching(std::vector<std::weak_ptr<T>>& xs, std::weak_ptr<T> x) {
  if (xs.size() >= 1024) {
    std::erase_if(xs, [](const auto& w) {
      return w.expired();
    });
  }
  xs.push_back(std::move(x));
}

/// Replicates what `run_here` wrote and answers once the owners the ack
/// mode names took it. `done` is called with the reply (a template: the
/// common paths answer without a `std::function` per operation).
/// A write of ours waiting for its other owners (ack all).
struct replica_wait {
  size_t left = 0;
  bool finished = false;
  proto::op_reply reply;
  reply_fn done;
};

/// How often a replica that answered unknown_bucket is asked again
/// before the write fails: its node has not heard of the bucket yet (a
/// create or a FLUSHDB spreads from node to node), or its channel still
/// had the dropped one. The write is applied here already: failing it
/// would make the caller try again, and a conditional write (SETNX, INCR)
/// would then see its own first try.
constexpr int max_replica_tries = 5;

/// The pause before the n-th new try is n times this: 50, 100, 150 and
/// 200 ms, half a second in all, for the registry to reach the replica
/// (tries at once all failed within a millisecond when it had not).
constexpr auto replica_retry_delay = std::chrono::milliseconds{50};

/// One owner took the write of `pw` (or left: it does not count, the new
/// view restores the RF); the last one answers it.
void replica_took(const std::shared_ptr<replica_wait>& pw) {
  if (--pw->left == 0 && !pw->finished) {
    pw->finished = true;
    pw->done(std::move(pw->reply));
  }
}

void ask_replica(bucket_self self, std::shared_ptr<replica_wait> pw,
                 std::string to, raw_bytes payload, int tries);

/// `to` answered its `tries`-th request for the write of `pw` with `why`:
/// a node gone counts as done, a replica that does not know the bucket
/// yet is asked again after a pause (with `payload()`, the write alone),
/// anything else fails the write.
template <class Payload>
void replica_failed(bucket_self self, std::shared_ptr<replica_wait> pw,
                    std::string to, const error& why, int tries,
                    Payload&& payload) {
  if (pw->finished) {
    return;
  }
  if (why == errc::node_down) {
    replica_took(pw);
    return;
  }
  if (why == errc::unknown_bucket && tries < max_replica_tries) {
    auto& st = self->state;
    auto id = ++st.next_retry;
    st.replica_retries.emplace(
      id, bucket_state::replica_retry{std::move(pw), std::move(to), payload(),
                                      tries + 1});
    self->delayed_send(self, replica_retry_delay * tries, retry_atom::value,
                       id);
    return;
  }
  pw->finished = true;
  proto::op_reply failed;
  failed.status = why.code();
  failed.message = "replica " + to
                   + " did not take the write: " + to_string(why);
  pw->done(std::move(failed));
}

/// Asks `to` to take the write of `pw`.
void ask_replica(bucket_self self, std::shared_ptr<replica_wait> pw,
                 std::string to, raw_bytes payload, int tries) {
  auto& st = self->state;
  ++st.stats.records_replicated;
  ++st.stats.replication_requests;
  ask(self, to, payload, replication_stream(st.opts.tag))
    .then(
      [pw](raw_bytes&) {
        replica_took(pw);
      },
      [self, pw, to, payload, tries](caf::error& err) mutable {
        replica_failed(self, std::move(pw), std::move(to), from_caf_error(err),
                       tries, [&] {
                         return std::move(payload);
                       });
      });
}

template <class Done>
void finish_here(bucket_self self, op_result res, Done done) {
  auto& st = self->state;
  if (res.reply.status != errc::none || res.out.empty()) {
    done(std::move(res.reply));
    return;
  }
  // The first record is the write itself; the rest are drops of what it
  // evicted (fire and forget).
  auto write = std::move(res.out.front());
  res.out.erase(res.out.begin());
  send_out(self, res.out);
  if (write.to.empty() || st.opts.options.ack == proto::ack_mode::primary) {
    send_out(self, write);
    done(std::move(res.reply));
    return;
  }
  // ack all: every alive owner takes it. An owner that died meanwhile does
  // not count (the new view restores the RF); one that does not answer in
  // time fails the write (it may still be applied: AP).
  auto pw = std::make_shared<replica_wait>();
  pw->left = write.to.size();
  pw->reply = std::move(res.reply);
  pw->done = reply_fn{std::move(done)};
  keep_watching(st.replica_waits, std::weak_ptr<replica_wait>{pw});
  if (st.round_depth > 0) {
    for (size_t k = 0; k < write.to.size(); ++k) {
      auto rec = k + 1 < write.to.size() ? write.rec : std::move(write.rec);
      add_to_round(st.round_writes, write.to[k],
                   outgoing_write{write.partition, std::move(rec), pw});
    }
    return;
  }
  auto payload = replication_payload(st, write.partition, std::move(write.rec));
  for (const auto& to : write.to) {
    ask_replica(self, pw, to, payload, 1);
  }
}

/// `run_here` and `finish_here`.
template <class Done>
void execute_here(bucket_self self, const proto::op_request& op, uint32_t p,
                  Done done) {
  finish_here(self, run_here(self, op, p), std::move(done));
}

void retry_later(bucket_self self, proto::op_request op, op_promise rp,
                 int attempt, proto::op_reply last);

void forward(bucket_self self, proto::op_request op,
             std::vector<std::string> targets, size_t i, op_promise rp,
             int attempt);

/// `to`, an owner, answered a forwarded operation with `r`. One whose view
/// says it owns nothing of the key makes us try again after a pause.
void forward_answered(bucket_self self, proto::op_request op, op_promise rp,
                      int attempt, proto::op_reply r) {
  if (r.status == errc::no_owner) {
    // Its view differs from ours: try again once views settled.
    retry_later(self, std::move(op), std::move(rp), attempt + 1, std::move(r));
    return;
  }
  deliver_reply(rp, std::move(r));
}

/// `targets[i]` did not answer a forwarded operation (`why`): a read asks
/// the next owner, a write fails.
void forward_failed(bucket_self self, proto::op_request op,
                    std::vector<std::string> targets, size_t i, op_promise rp,
                    int attempt, const error& why) {
  bool retry = is_read(op.op) && i + 1 < targets.size()
               && (why == errc::timeout || why == errc::node_down
                   || why == errc::connection_lost
                   || why == errc::unknown_application);
  if (retry) {
    forward(self, std::move(op), std::move(targets), i + 1, std::move(rp),
            attempt);
    return;
  }
  rp.deliver(make_caf_error(why));
}

/// Asks `targets[i]` (then the next ones, for reads) to run `op`; an
/// owner whose view says it owns nothing of the key makes us try again
/// after a pause (`attempt` counts those tries). In a round, the request
/// waits for the round's end (`send_round`).
void forward(bucket_self self, proto::op_request op,
             std::vector<std::string> targets, size_t i, op_promise rp,
             int attempt) {
  auto& st = self->state;
  auto to = targets[i];
  if (to == st.opts.self) {
    // A read falling back to us (we own the partition too).
    execute_here(self, op, st.core->partition_of(op.key),
                 [rp](proto::op_reply r) mutable {
                   deliver_reply(rp, std::move(r));
                 });
    return;
  }
  if (st.round_depth > 0) {
    add_to_round(st.round_ops, to,
                 outgoing_op{std::move(op), std::move(targets), i,
                             std::move(rp), attempt});
    return;
  }
  ++st.stats.ops_forwarded;
  ++st.stats.forward_requests;
  auto payload = encoded(op);
  ask(self, to, std::move(payload), ops_stream(st.opts.tag))
    .then(
      [=](raw_bytes& bytes) mutable {
        auto msg = proto::decode(bytes.data);
        if (!msg || !std::holds_alternative<proto::op_reply>(*msg)) {
          ++self->state.stats.malformed;
          rp.deliver(failure(errc::malformed_frame,
                             to + " answered an operation with "
                               + (msg ? std::string{"another message"}
                                      : to_string(msg.error()))));
          return;
        }
        forward_answered(self, std::move(op), std::move(rp), attempt,
                         std::move(std::get<proto::op_reply>(*msg)));
      },
      [=](caf::error& err) mutable {
        forward_failed(self, std::move(op), std::move(targets), i,
                       std::move(rp), attempt, from_caf_error(err));
      });
}

// -- rounds -------------------------------------------------------------------

/// Most bytes of keys and values in one message of a round; a record or
/// operation larger than this travels alone. Far below the smallest frame
/// limit a transport may set (64 KiB), large enough that a round of small
/// writes is one message.
constexpr size_t round_message_budget = size_t{32} * 1024;

size_t size_of(const outgoing_write& x) {
  return x.rec.key.size() + x.rec.value.size() + 32;
}

size_t size_of(const outgoing_op& x) {
  return x.op.key.size() + x.op.value.size() + 32;
}

/// Calls `send` with runs of `xs`, in order, each within the budget (or
/// one item above it).
template <class T, class Send>
void in_chunks(std::vector<T> xs, Send send) {
  size_t total = 0;
  for (const auto& x : xs) {
    total += size_of(x);
  }
  if (total <= round_message_budget) {
    send(std::move(xs));
    return;
  }
  std::vector<T> chunk;
  size_t bytes = 0;
  for (auto& x : xs) {
    auto n = size_of(x);
    if (!chunk.empty() && bytes + n > round_message_budget) {
      send(std::exchange(chunk, {}));
      bytes = 0;
    }
    bytes += n;
    chunk.push_back(std::move(x));
  }
  if (!chunk.empty()) {
    send(std::move(chunk));
  }
}

/// Replication records of one round for `to`, sent as one `replicas`
/// message; what waits for them learns the outcome as if each had gone
/// alone. One record goes as `entries`, as outside a round.
void send_writes(bucket_self self, const std::string& to,
                 std::vector<outgoing_write> xs) {
  auto& st = self->state;
  if (xs.size() == 1) {
    auto& x = xs.front();
    auto payload = replication_payload(st, x.partition, std::move(x.rec));
    if (x.pw) {
      ask_replica(self, std::move(x.pw), to, std::move(payload), 1);
    } else {
      tell_replica(self, to, std::move(payload));
    }
    return;
  }
  proto::replicas msg;
  msg.bucket = st.opts.name;
  msg.writes.reserve(xs.size());
  for (auto& x : xs) {
    msg.writes.push_back(proto::replica_write{x.partition, std::move(x.rec)});
  }
  auto payload = encoded(msg);
  // What a retry after unknown_bucket needs: each record, and its waiter.
  struct sent {
    std::vector<proto::replica_write> writes;
    std::vector<std::shared_ptr<replica_wait>> waits;
  };
  auto s = std::make_shared<sent>();
  s->writes = std::move(msg.writes);
  s->waits.reserve(xs.size());
  for (auto& x : xs) {
    s->waits.push_back(std::move(x.pw));
  }
  st.stats.records_replicated += xs.size();
  ++st.stats.replication_requests;
  ask(self, to, std::move(payload), replication_stream(st.opts.tag))
    .then(
      [s](raw_bytes&) {
        for (auto& pw : s->waits) {
          if (pw) {
            replica_took(pw);
          }
        }
      },
      [self, to, s](caf::error& err) {
        auto why = from_caf_error(err);
        MYCORRIZAL_LOG_DEBUG_RL(bucket_component, 5,
                                "{}: replication of {} records to {} "
                                "failed: {}",
                                self->state.who(), s->writes.size(), to,
                                to_string(why));
        for (size_t k = 0; k < s->waits.size(); ++k) {
          if (s->waits[k]) {
            replica_failed(self, std::move(s->waits[k]), to, why, 1, [&] {
              auto& w = s->writes[k];
              return replication_payload(self->state, w.partition,
                                         std::move(w.rec));
            });
          }
        }
      });
}

/// Operations of one round for `to`, sent as one `op_batch`; each gets
/// its own answer, as if it had gone alone. One operation goes alone.
void send_ops(bucket_self self, const std::string& to,
              std::vector<outgoing_op> xs) {
  auto& st = self->state;
  if (xs.size() == 1) {
    auto& x = xs.front();
    forward(self, std::move(x.op), std::move(x.targets), x.i, std::move(x.rp),
            x.attempt);
    return;
  }
  proto::op_batch msg;
  msg.ops.reserve(xs.size());
  for (auto& x : xs) {
    msg.ops.push_back(std::move(x.op));
  }
  auto payload = encoded(msg);
  for (size_t k = 0; k < xs.size(); ++k) {
    xs[k].op = std::move(msg.ops[k]);
  }
  st.stats.ops_forwarded += xs.size();
  ++st.stats.forward_requests;
  auto s = std::make_shared<std::vector<outgoing_op>>(std::move(xs));
  ask(self, to, std::move(payload), ops_stream(st.opts.tag))
    .then(
      [self, to, s](raw_bytes& bytes) {
        auto answer = proto::decode(bytes.data);
        auto* r = answer ? std::get_if<proto::op_replies>(&*answer) : nullptr;
        if (r == nullptr || r->replies.size() != s->size()) {
          ++self->state.stats.malformed;
          auto what = to + " answered " + std::to_string(s->size())
                      + " operations with "
                      + (!answer ? to_string(answer.error())
                         : r ? std::to_string(r->replies.size()) + " replies"
                             : std::string{"another message"});
          for (auto& x : *s) {
            x.rp.deliver(failure(errc::malformed_frame, what));
          }
          return;
        }
        for (size_t k = 0; k < s->size(); ++k) {
          auto& x = (*s)[k];
          forward_answered(self, std::move(x.op), std::move(x.rp), x.attempt,
                           std::move(r->replies[k]));
        }
      },
      [self, s](caf::error& err) {
        auto why = from_caf_error(err);
        for (auto& x : *s) {
          forward_failed(self, std::move(x.op), std::move(x.targets), x.i,
                         std::move(x.rp), x.attempt, why);
        }
      });
}

/// Sends what the round collected: per peer, its operations first (they
/// may wait for replicas there), then the replication records.
void send_round(bucket_self self) {
  auto& st = self->state;
  auto ops = std::move(st.round_ops);
  st.round_ops.clear();
  auto writes = std::move(st.round_writes);
  st.round_writes.clear();
  for (auto& [to, xs] : ops) {
    const auto& peer = to;
    in_chunks(std::move(xs), [&](std::vector<outgoing_op> chunk) {
      send_ops(self, peer, std::move(chunk));
    });
  }
  for (auto& [to, xs] : writes) {
    const auto& peer = to;
    in_chunks(std::move(xs), [&](std::vector<outgoing_write> chunk) {
      send_writes(self, peer, std::move(chunk));
    });
  }
}

/// A round of operations (a local batch, a peer's `op_batch`): what they
/// replicate and forward leaves once the batches already in the mailbox
/// ran too (a `pump_atom` to ourselves, behind them), so that the
/// operations of many clients without pipelines, each a batch of one,
/// still travel in one message per peer.
class round_scope {
public:
  explicit round_scope(bucket_self self) : self_(self) {
    ++self_->state.round_depth;
  }

  round_scope(const round_scope&) = delete;
  round_scope& operator=(const round_scope&) = delete;

  ~round_scope() {
    auto& st = self_->state;
    if (--st.round_depth == 0 && !st.round_due
        && (!st.round_ops.empty() || !st.round_writes.empty())) {
      st.round_due = true;
      self_->send(self_, pump_atom::value);
    }
  }

private:
  bucket_self self_;
};

/// Runs `op`, of partition `p`, here if we are its primary, else at its
/// owners.
void dispatch(bucket_self self, const proto::op_request& op, uint32_t p,
              op_promise rp, int attempt) {
  auto& st = self->state;
  auto& core = *st.core;
  const auto& owners = core.owners_of(p);
  if (owners.empty()) {
    rp.deliver(failure(errc::no_owner, "no storage member is alive for bucket "
                                         + st.opts.name));
    return;
  }
  if (core.is_primary(p)) {
    execute_here(self, op, p, [rp](proto::op_reply r) mutable {
      deliver_reply(rp, std::move(r));
    });
    return;
  }
  std::vector<std::string> targets;
  if (is_read(op.op)) {
    targets = owners;
  } else {
    targets.push_back(owners.front());
  }
  // The owners need the bucket's name, which a local caller may omit.
  auto copy = op;
  copy.bucket = st.opts.name;
  forward(self, std::move(copy), std::move(targets), 0, std::move(rp), attempt);
}

void dispatch(bucket_self self, const proto::op_request& op, op_promise rp,
              int attempt) {
  dispatch(self, op, self->state.core->partition_of(op.key), std::move(rp),
           attempt);
}

void retry_later(bucket_self self, proto::op_request op, op_promise rp,
                 int attempt, proto::op_reply last) {
  auto& st = self->state;
  if (st.dropped) {
    rp.deliver(
      failure(errc::unknown_bucket, "bucket " + st.opts.name + " was dropped"));
    return;
  }
  if (attempt > max_view_retries) {
    deliver_reply(rp, std::move(last));
    return;
  }
  auto id = ++st.next_retry;
  st.retries.emplace(id, bucket_state::retry{std::move(op), rp, attempt});
  self->delayed_send(self, view_retry_delay * attempt, retry_atom::value, id);
}

/// Starts an operation from local actor code (here, or at the owners)
/// whose answer goes to `op.rp` or `op.sink`.
/// The latency series of operation `code` (created on first use), or null
/// for a code out of range.
std::shared_ptr<metrics::histogram> latency_of(bucket_state& st,
                                               proto::op_code code) {
  auto i = static_cast<size_t>(code);
  if (i >= st.latency.size()) {
    return nullptr;
  }
  auto& h = st.latency[i];
  if (!h) {
    h = std::make_shared<metrics::histogram>(bucket_stats::latency_bounds());
  }
  return h;
}

/// Keeps `rp` for `answer_all` while it waits for a peer (if the bucket
/// ends first, which cannot happen before this turn is over).
void watch(bucket_state& st, const op_promise& rp) {
  if (rp.pending()) {
    keep_watching(st.open, rp.watch());
  }
}

void start_op(bucket_self self, const proto::op_request& req, open_op op) {
  auto& st = self->state;
  if (!op.sink) {
    // A batch's operations are timed by the batch (batch_answers).
    op.latency = latency_of(st, req.op);
    op.clock = &self->clock();
    op.started = actor_now(self);
  }
  auto p = st.core->partition_of(req.key);
  if (st.core->is_primary(p)) {
    auto res = run_here(self, req, p);
    if (answers_at_once(st, res)) {
      // A read, or a write with no owner to wait for: answered here and
      // now, so the answer needs no shared promise (an allocation and its
      // counts per operation).
      finish_here(self, std::move(res), [&op](proto::op_reply r) {
        deliver_reply(op, std::move(r));
      });
      return;
    }
    op_promise rp{std::move(op)};
    finish_here(self, std::move(res), [rp](proto::op_reply r) mutable {
      deliver_reply(rp, std::move(r));
    });
    watch(st, rp);
    return;
  }
  op_promise rp{std::move(op)};
  dispatch(self, req, p, rp, 0);
  watch(st, rp);
}

/// An operation from local actor code.
caf::result<proto::op_reply> on_op(bucket_self self,
                                   const proto::op_request& req) {
  auto promise = self->make_response_promise<proto::op_reply>();
  open_op op;
  op.rp = promise;
  start_op(self, req, std::move(op));
  return promise;
}

/// Operations from local actor code in one message: each starts as
/// `on_op` would, in order; one answer once all answered.
caf::result<cache_op_batch_reply> on_batch(bucket_self self,
                                           cache_op_batch& batch) {
  auto c = std::make_shared<batch_answers>();
  c->rp = self->make_response_promise<cache_op_batch_reply>();
  auto n = batch.ops ? batch.ops->size() : 0;
  c->out.replies = std::move(batch.room);
  c->out.replies.clear();
  c->out.replies.resize(n);
  c->left = n;
  if (c->left == 0) {
    c->rp.deliver(std::move(c->out));
    return c->rp;
  }
  auto rp = c->rp;
  // Read where they are: the sender shares them (and keeps them).
  const auto& ops = *batch.ops;
  c->clock = &self->clock();
  c->started = actor_now(self);
  for (const auto& req : ops) {
    auto code = static_cast<size_t>(req.op);
    if (code < c->timed.size()) {
      if (!c->latency[code]) {
        c->latency[code] = latency_of(self->state, req.op);
      }
      ++c->timed[code];
    }
  }
  self->state.batch_wall = self->state.wall.now_ms(self);
  {
    round_scope round{self};
    for (size_t i = 0; i < n; ++i) {
      open_op op;
      op.sink = c;
      op.index = i;
      start_op(self, ops[i], std::move(op));
    }
  }
  self->state.batch_wall.reset();
  return rp;
}

/// The bucket ends: every local caller still waiting gets `why`.
void answer_all(bucket_self self, const caf::error& why) {
  auto& st = self->state;
  for (auto& w : st.open) {
    if (auto op = w.lock()) {
      op->deliver(why);
    }
  }
  st.open.clear();
  for (auto& w : st.peer_open) {
    if (auto rp = w.lock(); rp && rp->pending()) {
      rp->deliver(why);
    }
  }
  st.peer_open.clear();
  for (auto& rp : st.drains) {
    rp.deliver(why);
  }
  st.drains.clear();
}

// -- hand-off -----------------------------------------------------------------

/// Drops the partitions due in one pass over the store (a pass per
/// partition costs the whole store each time).
void flush_drops(bucket_self self) {
  auto& st = self->state;
  st.drop_armed = false;
  std::vector<uint32_t> parts;
  for (auto p : st.drops_due) {
    if (!st.core->owns(p) && st.sends_left.count(p) == 0) {
      parts.push_back(p);
    }
  }
  st.drops_due.clear();
  if (!parts.empty()) {
    st.core->drop_partitions(parts);
  }
}

/// Drops `partition` once the messages queued now are handled (others
/// ending meanwhile go in the same pass).
void drop_soon(bucket_self self, uint32_t partition) {
  auto& st = self->state;
  st.drops_due.push_back(partition);
  if (!st.drop_armed) {
    st.drop_armed = true;
    self->send(self, flush_atom::value);
  }
}

/// One send of `partition` ended. Our copy of a partition we lost goes
/// only when every send of it succeeded; after a failed one it stays, and
/// the next sweep hands it to the current primary.
void finish_send(bucket_self self, uint32_t partition, bool ok) {
  auto& st = self->state;
  if (!ok) {
    st.failed_sends.insert(partition);
  }
  auto i = st.sends_left.find(partition);
  if (i != st.sends_left.end() && --i->second <= 0) {
    st.sends_left.erase(i);
    bool failed = st.failed_sends.erase(partition) > 0;
    if (st.to_drop.erase(partition) > 0 && !failed
        && !st.core->owns(partition)) {
      drop_soon(self, partition);
    } else if (!st.core->owns(partition)) {
      arm_sweep(self); // a copy we keep but do not own goes to the primary
    }
  }
}

/// Partitions we hold copies of but do not own (after a drain: those whose
/// hand-off failed).
uint64_t stray_partitions(bucket_self self) {
  auto& core = *self->state.core;
  uint64_t n = 0;
  for (uint32_t p = 0; p < core.view().partitions(); ++p) {
    n += !core.owns(p) && core.data().digest(p).count > 0 ? 1 : 0;
  }
  return n;
}

void send_batch(bucket_self self, uint64_t id);

/// A running job ended (sent, or given up): frees its slot.
void end_job(bucket_self self, uint64_t id, bool ok) {
  auto& st = self->state;
  auto i = st.running.find(id);
  if (i == st.running.end()) {
    return;
  }
  auto partition = i->second.partition;
  st.running.erase(i);
  if (ok) {
    ++st.stats.handoffs_sent;
    ++st.jobs_sent;
  } else {
    ++st.stats.handoffs_abandoned;
    ++st.jobs_abandoned;
  }
  finish_send(self, partition, ok);
}

/// Starts waiting jobs while there is room; answers drains once nothing is
/// left.
void run_jobs(bucket_self self) {
  auto& st = self->state;
  if (!st.busy_since && !st.jobs.empty()) {
    st.busy_since = actor_now(self);
  }
  auto busy = [&](const std::string& to) {
    return std::any_of(st.running.begin(), st.running.end(),
                       [&](const auto& kv) {
                         return kv.second.to == to;
                       });
  };
  for (auto i = st.jobs.begin();
       i != st.jobs.end() && st.running.size() < handoff_parallelism;) {
    if (busy(i->to)) {
      ++i;
      continue;
    }
    auto id = ++st.next_job;
    st.running.emplace(id, std::move(*i));
    i = st.jobs.erase(i);
    send_batch(self, id);
  }
  if (st.running.empty() && st.jobs.empty() && st.busy_since) {
    MYCORRIZAL_LOG_INFO(bucket_component,
                        "{}: hand-offs done: {} sent, {} abandoned in {} ms",
                        st.who(), st.jobs_sent, st.jobs_abandoned,
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                          actor_now(self) - *st.busy_since)
                          .count());
    st.busy_since.reset();
    st.jobs_sent = 0;
    st.jobs_abandoned = 0;
  }
  if (st.running.empty() && st.jobs.empty() && !st.drains.empty()) {
    flush_drops(self); // before counting what is left
    auto left = stray_partitions(self);
    for (auto& rp : st.drains) {
      rp.deliver(left);
    }
    st.drains.clear();
  }
}

/// One failed attempt of job `id`: again after a pause that grows with
/// the attempts, or given up.
void job_failed(bucket_self self, uint64_t id, const std::string& why) {
  auto& st = self->state;
  auto& j = st.running.at(id);
  if (++j.attempts >= st.opts.cache.handoff_attempts) {
    MYCORRIZAL_LOG_WARN(bucket_component,
                        "{}: hand-off of partition {} to {} abandoned after {} "
                        "attempts: {}",
                        st.who(), j.partition, j.to, j.attempts, why);
    end_job(self, id, false);
    run_jobs(self);
    return;
  }
  self->delayed_send(self, std::chrono::milliseconds{200} * j.attempts,
                     handoff_atom::value, id);
}

/// Partitions exported in one pass over the store at most.
constexpr size_t export_pass_partitions = 64;

/// Gives `job` its partition's batches: from an earlier pass, or from a
/// new pass that exports the waiting jobs' partitions too.
void take_export(bucket_self self, transfer_job& job) {
  auto& st = self->state;
  if (st.exported.count(job.partition) == 0) {
    std::vector<uint32_t> parts{job.partition};
    for (const auto& w : st.jobs) {
      if (parts.size() >= export_pass_partitions) {
        break;
      }
      if (st.exported.count(w.partition) == 0
          && std::find(parts.begin(), parts.end(), w.partition)
               == parts.end()) {
        parts.push_back(w.partition);
      }
    }
    auto more = st.core->export_partitions(parts, proto::transfer::handoff,
                                           st.opts.cache.handoff_batch_bytes);
    for (auto& [p, batches] : more) {
      st.exported[p] = std::move(batches);
    }
  }
  auto i = st.exported.find(job.partition);
  bool wanted_again = std::any_of(st.jobs.begin(), st.jobs.end(),
                                  [&](const transfer_job& w) {
                                    return w.partition == job.partition;
                                  });
  if (wanted_again) {
    job.batches = i->second;
  } else {
    job.batches = std::move(i->second);
    st.exported.erase(i);
  }
}

/// Sends the next batch of running job `id`.
void send_batch(bucket_self self, uint64_t id) {
  auto& st = self->state;
  auto it = st.running.find(id);
  if (it == st.running.end()) {
    return; // ended meanwhile (its target left)
  }
  auto& job = it->second;
  if (job.batches.empty()) {
    take_export(self, job);
  }
  auto payload = encoded(job.batches[job.next]);
  auto size = payload.data.size();
  ask(self, job.to, std::move(payload), handoff_stream(st.opts.tag))
    .then(
      [=](raw_bytes& bytes) {
        auto& cur = self->state;
        auto i = cur.running.find(id);
        if (i == cur.running.end()) {
          return; // ended meanwhile
        }
        auto& j = i->second;
        auto msg = proto::decode(bytes.data);
        auto* reply = msg ? std::get_if<proto::op_reply>(&*msg) : nullptr;
        if (reply == nullptr || reply->status != errc::none) {
          // The receiver refused: its view may lag behind ours (it does
          // not know yet that it owns the partition). Try again later.
          job_failed(self, id,
                     j.to + " refused: "
                       + (reply ? reply->message
                                : std::string{"a malformed answer"}));
          return;
        }
        cur.stats.handoff_bytes_sent += size;
        if (++j.next == j.batches.size()) {
          end_job(self, id, true);
          run_jobs(self);
        } else {
          send_batch(self, id);
        }
      },
      [=](caf::error& err) {
        if (self->state.running.count(id) == 0) {
          return;
        }
        // node_down too is retried: the router may not know a member yet
        // that the membership already shows us.
        job_failed(self, id, to_string(from_caf_error(err)));
      });
}

void on_view(bucket_self self, std::vector<std::string> members,
             const std::string& leaving) {
  auto& st = self->state;
  auto plan = st.core->set_members(std::move(members), leaving);
  st.exported.clear();
  // Copies queued for a member that is gone now will not arrive: end them
  // (our copy stays; the sweep hands it to the current primary).
  const auto& now_members = st.core->view().members();
  auto gone = [&](const transfer_job& j) {
    return std::find(now_members.begin(), now_members.end(), j.to)
           == now_members.end();
  };
  for (size_t i = 0; i < st.jobs.size();) {
    if (gone(st.jobs[i])) {
      auto p = st.jobs[i].partition;
      ++st.stats.handoffs_abandoned;
      st.jobs.erase(st.jobs.begin() + static_cast<ptrdiff_t>(i));
      finish_send(self, p, false);
    } else {
      ++i;
    }
  }
  std::vector<uint64_t> gone_running;
  for (auto& [id, j] : st.running) {
    if (gone(j)) {
      gone_running.push_back(id);
    }
  }
  for (auto id : gone_running) {
    end_job(self, id, false);
  }
  st.stats.partitions_orphaned += plan.orphaned.size();
  for (auto& t : plan.send) {
    ++st.sends_left[t.partition];
    st.jobs.push_back(transfer_job{t.partition, t.to, {}, 0, 0});
  }
  for (auto p : plan.drop) {
    if (st.sends_left.count(p) == 0) {
      drop_soon(self, p);
    } else {
      st.to_drop.insert(p);
    }
  }
  if (!plan.empty()) {
    MYCORRIZAL_LOG_INFO(bucket_component,
                        "{}: new view of {} members: {} copies to send, {} "
                        "to receive, {} to drop, {} orphaned",
                        st.who(), st.core->view().members().size(),
                        plan.send.size(), plan.receive.size(), plan.drop.size(),
                        plan.orphaned.size());
  }
  run_jobs(self);
  arm_sweep(self);
}

// -- anti-entropy -------------------------------------------------------------

/// Compares one partition with `peer` key by key and repairs both sides.
void repair_partition(bucket_self self, const std::string& peer,
                      uint32_t partition) {
  auto& st = self->state;
  auto payload = encoded(st.core->versions_of(partition));
  ask(self, peer, std::move(payload), handoff_stream(st.opts.tag))
    .then(
      [=](raw_bytes& bytes) {
        auto& cur = self->state;
        auto msg = proto::decode(bytes.data);
        auto* answer = msg ? std::get_if<proto::versions_reply>(&*msg)
                           : nullptr;
        if (answer == nullptr) {
          ++cur.stats.malformed;
          return;
        }
        auto applied = cur.core->apply(answer->records, wall_now(self));
        cur.stats.repairs += applied.changed;
        send_out(self, applied.out);
        if (!answer->wanted.empty()) {
          proto::entries e;
          e.bucket = cur.opts.name;
          e.partition = partition;
          e.why = proto::transfer::repair;
          e.last = true;
          e.records = cur.core->records_of(answer->wanted);
          cur.stats.repairs += e.records.size();
          ask(self, peer, encoded(e), handoff_stream(cur.opts.tag))
            .then([](raw_bytes&) {}, [](caf::error&) {});
        }
      },
      [](caf::error&) {
        // The next round tries again.
      });
}

/// Records of partitions we do not own and send nowhere (a hand-off that
/// failed, writes replicated to us while our view lagged): handed to the
/// partition's primary, then dropped. Never dropped unacknowledged.
void sweep(bucket_self self) {
  auto& st = self->state;
  auto& core = *st.core;
  for (uint32_t p = 0; p < core.view().partitions(); ++p) {
    if (core.owns(p) || st.sends_left.count(p) > 0
        || core.data().digest(p).count == 0 || core.owners_of(p).empty()) {
      continue;
    }
    ++st.sends_left[p];
    st.to_drop.insert(p);
    st.jobs.push_back(transfer_job{p, core.owners_of(p).front(), {}, 0, 0});
  }
  run_jobs(self);
}

void arm_sweep(bucket_self self) {
  auto& st = self->state;
  if (!st.sweep_armed) {
    st.sweep_armed = true;
    self->delayed_send(self, stray_sweep_delay, sweep_atom::value);
  }
}

/// One round: for each other owner, the digests of the partitions we are
/// the primary of and it owns; the differing ones are repaired.
void anti_entropy(bucket_self self) {
  auto& st = self->state;
  auto& core = *st.core;
  std::map<std::string, std::vector<uint32_t>> shared;
  for (uint32_t p = 0; p < core.view().partitions(); ++p) {
    if (!core.is_primary(p)) {
      continue;
    }
    const auto& owners = core.owners_of(p);
    for (size_t i = 1; i < owners.size(); ++i) {
      shared[owners[i]].push_back(p);
    }
  }
  for (const auto& entry : shared) {
    const std::string& peer = entry.first;
    auto mine = core.digests(entry.second);
    auto payload = encoded(mine);
    ask(self, peer, std::move(payload), handoff_stream(st.opts.tag))
      .then(
        [self, peer, mine = std::move(mine)](raw_bytes& bytes) {
          auto msg = proto::decode(bytes.data);
          auto* theirs = msg ? std::get_if<proto::digests>(&*msg) : nullptr;
          if (theirs == nullptr || theirs->parts.size() != mine.parts.size()) {
            ++self->state.stats.malformed;
            return;
          }
          for (size_t i = 0; i < mine.parts.size(); ++i) {
            if (mine.parts[i] != theirs->parts[i]) {
              repair_partition(self, peer, mine.parts[i].partition);
            }
          }
        },
        [](caf::error&) {});
  }
}

// -- peers' messages ----------------------------------------------------------

/// What is wrong with a peer's message that names a partition the bucket
/// does not have, if it names one.
template <class Message>
std::optional<std::string>
partition_out_of_range(const Message& msg, uint32_t partitions) {
  auto check = [&](uint32_t p) -> std::optional<std::string> {
    if (p < partitions) {
      return std::nullopt;
    }
    return "partition " + std::to_string(p) + " of a bucket with "
           + std::to_string(partitions);
  };
  if (auto* e = std::get_if<proto::entries>(&msg)) {
    return check(e->partition);
  }
  if (auto* r = std::get_if<proto::replicas>(&msg)) {
    for (const auto& w : r->writes) {
      if (auto bad = check(w.partition)) {
        return bad;
      }
    }
  }
  if (auto* v = std::get_if<proto::versions>(&msg)) {
    return check(v->partition);
  }
  if (auto* s = std::get_if<proto::scan_request>(&msg)) {
    return check(s->partition);
  }
  if (auto* d = std::get_if<proto::digests>(&msg)) {
    for (const auto& x : d->parts) {
      if (auto bad = check(x.partition)) {
        return bad;
      }
    }
  }
  return std::nullopt;
}

/// Records of `partition`, which we do not own, came to stay: a primary
/// whose view lags replicated to us, perhaps after our copy of the
/// partition was exported for its new owner, and this write is in no
/// hand-off. Our copy must not be dropped now; the sweep hands it (the
/// write with it) to the primary, then drops it.
void keep_stray(bucket_self self, uint32_t partition) {
  auto& st = self->state;
  st.to_drop.erase(partition);
  std::erase(st.drops_due, partition);
  arm_sweep(self);
}

/// A peer's `op_batch`: each operation runs as a lone `op_request` would,
/// in one round (what they replicate leaves as one message per owner);
/// one answer once all are answered.
caf::result<raw_bytes> on_op_batch(bucket_self self, proto::op_batch& batch) {
  auto& st = self->state;
  auto& core = *st.core;
  using promise = caf::typed_response_promise<raw_bytes>;
  struct answers {
    std::shared_ptr<promise> rp;
    proto::op_replies out;
    size_t left = 0;

    void put(size_t i, proto::op_reply r) {
      out.replies[i] = std::move(r);
      if (--left == 0 && rp->pending()) {
        rp->deliver(encoded(out));
      }
    }
  };
  auto c = std::make_shared<answers>();
  c->rp = std::make_shared<promise>(self->make_response_promise<raw_bytes>());
  auto rp = c->rp;
  auto n = batch.ops.size();
  c->out.replies.resize(n);
  c->left = n;
  if (n == 0) {
    rp->deliver(encoded(c->out));
    return *rp;
  }
  st.batch_wall = st.wall.now_ms(self);
  {
    round_scope round{self};
    for (size_t i = 0; i < n; ++i) {
      const auto& op = batch.ops[i];
      auto p = core.partition_of(op.key);
      if (!core.owns(p)) {
        proto::op_reply r;
        r.status = errc::no_owner;
        r.message = st.opts.self + " owns no partition " + std::to_string(p)
                    + " of " + st.opts.name + " in its view";
        c->put(i, std::move(r));
        continue;
      }
      execute_here(self, op, p, [c, i](proto::op_reply r) {
        c->put(i, std::move(r));
      });
    }
  }
  st.batch_wall.reset();
  if (rp->pending()) {
    // Waits for replicas: answered by answer_all if the bucket ends first.
    keep_watching(st.peer_open, std::weak_ptr<promise>{rp});
  }
  return *rp;
}

caf::result<raw_bytes> on_peer(bucket_self self, app_request& req) {
  auto& st = self->state;
  auto& core = *st.core;
  auto msg = proto::decode(req.payload);
  if (!msg) {
    ++st.stats.malformed;
    MYCORRIZAL_LOG_WARN_RL(bucket_component, 1,
                           "{}: malformed message from {}: {}", st.who(),
                           req.node, to_string(msg.error()));
    return make_caf_error(msg.error());
  }
  if (auto bad = partition_out_of_range(*msg, core.view().partitions())) {
    // The codec takes any partition number; our placement knows ours only.
    ++st.stats.malformed;
    MYCORRIZAL_LOG_WARN_RL(bucket_component, 1,
                           "{}: malformed message from {}: {}", st.who(),
                           req.node, *bad);
    return failure(errc::malformed_frame, *bad);
  }
  auto now = wall_now(self);
  if (auto* op = std::get_if<proto::op_request>(&*msg)) {
    auto p = core.partition_of(op->key);
    // Any owner may version a write (last writer wins keeps owners in
    // step); incr and cas are atomic at the primary the sender saw.
    if (!core.owns(p)) {
      proto::op_reply r;
      r.status = errc::no_owner;
      r.message = st.opts.self + " owns no partition " + std::to_string(p)
                  + " of " + st.opts.name + " in its view";
      return encoded(r);
    }
    auto rp = std::make_shared<caf::typed_response_promise<raw_bytes>>(
      self->make_response_promise<raw_bytes>());
    execute_here(self, *op, p, [rp](proto::op_reply r) {
      if (rp->pending()) {
        rp->deliver(encoded(r));
      }
    });
    if (rp->pending()) {
      // Waits for replicas: answered by answer_all if the bucket ends
      // first, not left to close with the stream.
      keep_watching(st.peer_open,
                    std::weak_ptr<caf::typed_response_promise<raw_bytes>>{rp});
    }
    return *rp;
  }
  if (auto* e = std::get_if<proto::entries>(&*msg)) {
    proto::op_reply r;
    if (e->why != proto::transfer::replicate && !core.owns(e->partition)) {
      r.status = errc::no_owner;
      r.message = st.opts.self + " does not own partition "
                  + std::to_string(e->partition) + " of " + st.opts.name;
      return encoded(r);
    }
    auto applied = core.apply(e->records, now);
    arm_expiry(self);
    if (!core.owns(e->partition)) {
      MYCORRIZAL_LOG_DEBUG_RL(bucket_component, 10,
                              "{}: {} records of partition {} from {} ({}), "
                              "which we do not own",
                              st.who(), e->records.size(), e->partition,
                              req.node, static_cast<int>(e->why));
      keep_stray(self, e->partition);
    }
    send_out(self, applied.out);
    if (e->why == proto::transfer::handoff) {
      st.stats.handoff_bytes_received += req.payload.size();
    }
    if (e->why == proto::transfer::handoff && e->last) {
      ++st.stats.handoffs_received;
    } else if (e->why == proto::transfer::repair) {
      st.stats.repairs += applied.changed;
    }
    r.number = static_cast<int64_t>(applied.changed);
    return encoded(r);
  }
  if (auto* b = std::get_if<proto::op_batch>(&*msg)) {
    return on_op_batch(self, *b);
  }
  if (auto* rs = std::get_if<proto::replicas>(&*msg)) {
    // A primary's writes of one round: as `entries` of why replicate, of
    // many partitions.
    std::vector<proto::record> records;
    records.reserve(rs->writes.size());
    for (auto& w : rs->writes) {
      records.push_back(std::move(w.rec));
    }
    auto applied = core.apply(records, now);
    arm_expiry(self);
    uint32_t stray = 0;
    for (const auto& w : rs->writes) {
      if (!core.owns(w.partition)) {
        keep_stray(self, w.partition);
        ++stray;
      }
    }
    if (stray > 0) {
      MYCORRIZAL_LOG_DEBUG_RL(bucket_component, 10,
                              "{}: {} of {} replicated records from {} of "
                              "partitions we do not own",
                              st.who(), stray, rs->writes.size(), req.node);
    }
    send_out(self, applied.out);
    proto::op_reply r;
    r.number = static_cast<int64_t>(applied.changed);
    return encoded(r);
  }
  if (auto* d = std::get_if<proto::digests>(&*msg)) {
    std::vector<uint32_t> parts;
    for (auto& x : d->parts) {
      parts.push_back(x.partition);
    }
    return encoded(core.digests(parts));
  }
  if (auto* v = std::get_if<proto::versions>(&*msg)) {
    return encoded(core.answer(*v));
  }
  if (auto* s = std::get_if<proto::scan_request>(&*msg)) {
    return encoded(core.scan(s->partition, s->count, now));
  }
  ++st.stats.malformed;
  return failure(errc::unexpected_frame,
                 "a cache message a bucket does not take");
}

// -- time ---------------------------------------------------------------------

void arm_expiry(bucket_self self) {
  auto& st = self->state;
  auto next = st.core->next_deadline_ms();
  if (next == no_expiry || (st.expiry_armed != 0 && st.expiry_armed <= next)) {
    return;
  }
  st.expiry_armed = next;
  auto delay = std::max<int64_t>(next - wall_now(self), 0);
  self->delayed_send(self, std::chrono::milliseconds{delay}, tick_atom::value,
                     next);
}

bucket_stats stats_of(bucket_self self) {
  auto& st = self->state;
  auto s = st.stats;
  const auto& data = st.core->data();
  s.name = st.opts.name;
  s.entries = data.size();
  s.bytes = data.bytes_used();
  s.tombstones = data.tombstones();
  s.hits = data.stats().hits;
  s.misses = data.stats().misses;
  s.evictions = data.stats().evictions;
  s.expirations = data.stats().expirations;
  for (size_t code = 0; code < st.latency.size(); ++code) {
    if (st.latency[code]) {
      s.op_latency.emplace_back(static_cast<proto::op_code>(code),
                                st.latency[code]->read());
    }
  }
  for (uint32_t p = 0; p < st.core->view().partitions(); ++p) {
    s.partitions_owned += st.core->owns(p) ? 1 : 0;
    s.partitions_primary += st.core->is_primary(p) ? 1 : 0;
  }
  return s;
}

/// What a dropped bucket answers until its end: `unknown_bucket` to
/// every operation and peer request (the front door and the forwarding
/// nodes retry those at the bucket that replaced it, if any), nothing of
/// its own (no expiry, repair or hand-off).
bucket_impl_actor::behavior_type ended(bucket_self self) {
  auto gone = [self] {
    return failure(errc::unknown_bucket, "bucket " + self->state.opts.name
                                           + " was dropped on "
                                           + self->state.opts.self);
  };
  return {
    [=](cache_op&) -> caf::result<proto::op_reply> {
      return gone();
    },
    [=](cache_op_batch&) -> caf::result<cache_op_batch_reply> {
      return gone();
    },
    [=](scan_atom, uint32_t, uint32_t) -> caf::result<proto::scan_reply> {
      return gone();
    },
    [=](app_request&) -> caf::result<raw_bytes> {
      return gone();
    },
    [=](view_atom, std::vector<std::string>&, std::string&) {},
    [=](stats_atom) {
      return stats_of(self);
    },
    [=](tick_atom, int64_t) {},
    [=](repair_atom) {},
    [=](handoff_atom, uint64_t) {},
    [=](flush_atom) {},
    [=](sweep_atom) {},
    [=](retry_atom, uint64_t) {},
    [=](owners_atom, std::string&) -> caf::result<std::vector<std::string>> {
      return gone();
    },
    [=](drain_atom) -> caf::result<uint64_t> {
      return uint64_t{0};
    },
    [=](drop_bucket_atom) {},
    [=](retag_atom, std::string&) {},
    [=](pump_atom) {},
  };
}

/// The bucket was dropped: ends what is under way as it would have ended,
/// stops its own work and answers everything after with `unknown_bucket`
/// (`ended`).
void end_bucket(bucket_self self) {
  auto& st = self->state;
  // What the round holds leaves first, as if it had left before the drop.
  send_round(self);
  st.dropped = true;
  // Operations under way end with their own answers, as they would have:
  // one forwarded to its primary with the primary's (it ran in the
  // primary's bucket of this incarnation, or not at all: the streams carry
  // the incarnation), a write applied here at once as done: it took effect
  // before the drop, and its replicas' copies go with their drop too.
  // Answering them unknown_bucket would have callers send again what took
  // effect (then seen out of order next to a later read of it). What waits
  // for a retry never ran. The cache actor ends us `op_timeout` after the
  // drop; what is still open then gets unknown_bucket (the exit handler).
  for (auto& w : st.replica_waits) {
    if (auto pw = w.lock(); pw && !pw->finished) {
      pw->finished = true;
      pw->done(std::move(pw->reply));
    }
  }
  st.replica_waits.clear();
  auto gone = failure(errc::unknown_bucket,
                      "bucket " + st.opts.name + " was dropped");
  for (auto& [id, r] : st.retries) {
    r.rp.deliver(gone);
  }
  for (auto& rp : st.drains) {
    rp.deliver(gone);
  }
  st.drains.clear();
  // Their promises are answered; what their callbacks look up is gone.
  st.retries.clear();
  st.jobs.clear();
  st.running.clear();
  st.exported.clear();
  self->become(ended(self));
}

bucket_impl_actor::behavior_type bucket_impl(bucket_self self,
                                             bucket_actor_options opts) {
  auto& st = self->state;
  st.core.emplace(opts.self, opts.name, opts.options,
                  std::chrono::duration_cast<std::chrono::milliseconds>(
                    opts.cache.tombstone_lifetime)
                    .count());
  st.opts = std::move(opts);
  st.wall = wall_clock{self};
  self->delayed_send(self, st.opts.cache.anti_entropy_interval,
                     repair_atom::value);
  // Dropped (the cache actor's exit) or the node stopping (a linked
  // exit): nobody waits in vain.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    answer_all(self, failure(errc::unknown_bucket,
                             "bucket " + self->state.opts.name
                               + " ended (dropped, or its node stops): "
                               + to_string(msg.reason)));
    self->quit(msg.reason);
  });
  return {
    [=](cache_op& x) -> caf::result<proto::op_reply> {
      return on_op(self, x.op);
    },
    [=](cache_op_batch& x) -> caf::result<cache_op_batch_reply> {
      return on_batch(self, x);
    },
    [=](scan_atom, uint32_t cursor,
        uint32_t count) -> caf::result<proto::scan_reply> {
      auto& cur = self->state;
      auto& core = *cur.core;
      if (cursor >= core.view().partitions()) {
        proto::scan_reply done;
        done.next = core.view().partitions();
        return done;
      }
      const auto& owners = core.owners_of(cursor);
      if (owners.empty()) {
        return failure(errc::no_owner, "no storage member is alive");
      }
      if (core.is_primary(cursor)) {
        return core.scan(cursor, count, wall_now(self));
      }
      auto rp = self->make_response_promise<proto::scan_reply>();
      ask(self, owners.front(),
          encoded(proto::scan_request{cur.opts.name, cursor, count}),
          ops_stream(cur.opts.tag))
        .then(
          [=](raw_bytes& bytes) mutable {
            auto msg = proto::decode(bytes.data);
            auto* r = msg ? std::get_if<proto::scan_reply>(&*msg) : nullptr;
            if (r == nullptr) {
              rp.deliver(failure(errc::malformed_frame,
                                 "a scan answered with another message"));
              return;
            }
            rp.deliver(std::move(*r));
          },
          [=](caf::error& e) mutable {
            rp.deliver(e);
          });
      return rp;
    },
    [=](app_request& req) -> caf::result<raw_bytes> {
      return on_peer(self, req);
    },
    [=](view_atom, std::vector<std::string>& members, std::string& leaving) {
      on_view(self, std::move(members), leaving);
    },
    [=](stats_atom) {
      return stats_of(self);
    },
    [=](tick_atom, int64_t armed) {
      auto& cur = self->state;
      if (armed != cur.expiry_armed) {
        return; // superseded by an earlier deadline
      }
      cur.expiry_armed = 0;
      send_out(self,
               cur.core->on_time(wall_now(self), cur.opts.cache.expiry_budget));
      arm_expiry(self);
    },
    [=](repair_atom) {
      sweep(self);
      anti_entropy(self);
      self->delayed_send(self, self->state.opts.cache.anti_entropy_interval,
                         repair_atom::value);
    },
    [=](handoff_atom, uint64_t id) {
      send_batch(self, id);
    },
    [=](flush_atom) {
      flush_drops(self);
    },
    [=](sweep_atom) {
      self->state.sweep_armed = false;
      sweep(self);
    },
    [=](retry_atom, uint64_t id) {
      auto& cur = self->state;
      if (auto j = cur.replica_retries.find(id);
          j != cur.replica_retries.end()) {
        auto r = std::move(j->second);
        cur.replica_retries.erase(j);
        if (!r.pw->finished) {
          ask_replica(self, std::move(r.pw), std::move(r.to),
                      std::move(r.payload), r.tries);
        }
        return;
      }
      auto i = cur.retries.find(id);
      if (i == cur.retries.end()) {
        return;
      }
      auto r = std::move(i->second);
      cur.retries.erase(i);
      dispatch(self, r.op, std::move(r.rp), r.attempts);
    },
    [=](owners_atom, std::string& key) {
      auto& core = *self->state.core;
      return core.owners_of(core.partition_of(key));
    },
    [=](drain_atom) -> caf::result<uint64_t> {
      auto& cur = self->state;
      auto rp = self->make_response_promise<uint64_t>();
      cur.drains.push_back(rp);
      run_jobs(self);
      return rp;
    },
    [=](drop_bucket_atom) {
      end_bucket(self);
    },
    [=](retag_atom, std::string& tag) {
      // The round's messages go on the streams they were made for.
      send_round(self);
      self->state.opts.tag = std::move(tag);
    },
    [=](pump_atom) {
      self->state.round_due = false;
      send_round(self);
    },
  };
}

} // namespace

std::string stream_tag(const std::string& bucket, const cache::version& ver) {
  // splitmix64's finalizer over the version's fields: the same on every
  // node, and versions that differ in any field differ here.
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  };
  auto h = mix(static_cast<uint64_t>(ver.wall_ms));
  h = mix(h ^ ver.counter);
  h = mix(h ^ ver.node);
  constexpr size_t longest_in_full = 200;
  auto name = bucket.size() <= longest_in_full
                ? bucket
                : fmt::format("~{:016x}", cache::node_id(bucket));
  return fmt::format("{}#{:016x}", name, h);
}

bucket_actor spawn_bucket(caf::actor_system& sys, bucket_actor_options opts) {
  return caf::actor_cast<bucket_actor>(sys.spawn(bucket_impl, std::move(opts)));
}

} // namespace mycorrizal::detail
