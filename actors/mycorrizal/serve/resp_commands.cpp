// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/serve/resp_commands.hpp"

#include "mycorrizal/cache/store.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/recycling_allocator.hpp"
#include "mycorrizal/serve/resp_internal.hpp"

#include <caf/all.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace mycorrizal::resp {

// -- server_state -------------------------------------------------------------

server_state::server_state(size_t commands)
    : calls(new std::atomic<uint64_t>[commands + 1]),
      failed(new std::atomic<uint64_t>[commands + 1]),
      rejected(new std::atomic<uint64_t>[commands + 1]),
      usec(new std::atomic<uint64_t>[commands + 1]), commands_(commands) {
  for (size_t i = 0; i <= commands; ++i) {
    calls[i] = 0;
    failed[i] = 0;
    rejected[i] = 0;
    usec[i] = 0;
  }
}

client_info info_of(const session& s) {
  client_info x;
  x.id = s.id;
  x.addr = s.addr;
  x.laddr = s.laddr;
  x.name = s.name;
  x.created_ms = s.created_ms;
  x.last_ms = s.last_ms;
  x.db = s.db;
  x.resp = s.version == protocol_version::resp3 ? 3 : 2;
  x.last_command = s.last_command;
  x.multi = s.in_multi ? static_cast<int64_t>(s.queued.size()) : -1;
  x.flags = s.in_multi ? "x" : "N";
  return x;
}

void server_state::count_lookup(bool found) {
  (found ? keyspace_hits : keyspace_misses)
    .fetch_add(1, std::memory_order_relaxed);
}

void server_state::update(const session& s) {
  auto x = info_of(s);
  std::lock_guard guard{mtx_};
  clients_[s.id] = std::move(x);
}

void server_state::remove(int64_t id) {
  std::lock_guard guard{mtx_};
  clients_.erase(id);
}

std::vector<client_info> server_state::clients() const {
  std::lock_guard guard{mtx_};
  std::vector<client_info> out;
  out.reserve(clients_.size());
  for (const auto& [id, x] : clients_) {
    out.push_back(x);
  }
  return out;
}

size_t server_state::client_count() const {
  std::lock_guard guard{mtx_};
  return clients_.size();
}

void server_state::count_reply(int index, std::string_view bytes,
                               bool was_rejected, uint64_t us) {
  auto i = index < 0 || static_cast<size_t>(index) >= commands_
             ? commands_
             : static_cast<size_t>(index);
  calls[i].fetch_add(1, std::memory_order_relaxed);
  commands_total.fetch_add(1, std::memory_order_relaxed);
  if (us > 0 && !was_rejected) {
    usec[i].fetch_add(us, std::memory_order_relaxed);
  }
  if (bytes.empty() || (bytes[0] != '-' && bytes[0] != '!')) {
    return;
  }
  (was_rejected ? rejected : failed)[i].fetch_add(1, std::memory_order_relaxed);
  error_replies_total.fetch_add(1, std::memory_order_relaxed);
  // The code: the error's first word (a RESP3 blob error's text follows
  // its length line).
  auto text = bytes.substr(1);
  if (bytes[0] == '!') {
    auto eol = text.find("\r\n");
    text = eol == std::string_view::npos ? std::string_view{}
                                         : text.substr(eol + 2);
  }
  auto code = text.substr(0, std::min(text.find_first_of(" \r\n"),
                                      std::min<size_t>(text.size(), 64)));
  if (code.empty()) {
    return;
  }
  std::lock_guard guard{errors_mtx_};
  if (auto j = errors_.find(code); j != errors_.end()) {
    ++j->second;
  } else if (errors_.size() < max_error_codes) {
    errors_.emplace(std::string{code}, 1);
  }
}

std::vector<std::pair<std::string, uint64_t>>
server_state::error_counts() const {
  std::lock_guard guard{errors_mtx_};
  return {errors_.begin(), errors_.end()};
}

server_state::stat_base server_state::base() const {
  std::lock_guard guard{errors_mtx_};
  auto out = base_;
  out.per_command.resize(commands_ + 1);
  return out;
}

void server_state::reset_stats() {
  stat_base now;
  now.connections = connections_total.load();
  now.rejected_connections = rejected_total.load();
  now.commands = commands_total.load();
  now.errors = error_replies_total.load();
  now.hits = keyspace_hits.load();
  now.misses = keyspace_misses.load();
  now.per_command.resize(commands_ + 1);
  for (size_t i = 0; i <= commands_; ++i) {
    now.per_command[i] = {calls[i].load(), failed[i].load(), rejected[i].load(),
                          usec[i].load()};
  }
  std::lock_guard guard{errors_mtx_};
  base_ = std::move(now);
  errors_.clear();
}

namespace detail {

namespace flags = cache::proto;

std::string lower(std::string_view x) {
  std::string out{x};
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

std::string_view c_string(std::string_view x) {
  return x.substr(0, x.find('\0'));
}

bool iequals(std::string_view x, std::string_view y) {
  // In place: no lowered copy of `x` (asked several times per command).
  return std::equal(x.begin(), x.end(), y.begin(), y.end(), [](char a, char b) {
    return (a >= 'A' && a <= 'Z' ? static_cast<char>(a - 'A' + 'a') : a) == b;
  });
}

bool parse_ll(std::string_view s, int64_t& out) {
  if (s.empty() || s.size() > 20) {
    return false;
  }
  if (s == "0") {
    out = 0;
    return true;
  }
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size() || s[i] < '1' || s[i] > '9') {
    return false;
  }
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) {
    return false;
  }
  out = v;
  return true;
}

void clamp_range(int64_t total, int64_t& start, int64_t& end) {
  if (start < 0) {
    start += total;
  }
  if (end < 0) {
    end += total;
  }
  start = std::max<int64_t>(start, 0);
  end = std::max<int64_t>(end, 0);
  if (end >= total) {
    end = total - 1;
  }
}

cache::proto::bytes to_bytes(std::string_view s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string_view as_view(const cache::proto::bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::string error_text(const error& e) {
  if (e == errc::wrong_type) {
    return "ERR " + e.context();
  }
  return fmt::format("ERR mycel: {}", to_string(e));
}

std::string too_large_for_mycel(int64_t size) {
  return error_text(error{
    errc::too_large, fmt::format("a {}-byte value exceeds the {}-byte limit",
                                 size, cache::max_value_size)});
}

void context::reply(const std::function<void(reply_writer&)>& f,
                    bool close) const {
  reply_writer w{s.version, slot->take_buffer()};
  f(w);
  slot->finish(w.take(), close);
}

void context::error(std::string_view text) const {
  reply_writer w{s.version, slot->take_buffer()};
  w.error(text);
  slot->finish(w.take());
}

std::string context::bucket() const {
  if (!s.bucket.empty()) {
    return s.bucket;
  }
  // Every command asks: the usual names once, not formatted each time.
  static const auto names = [] {
    std::array<std::string, 256> out;
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = fmt::format("db{}", i);
    }
    return out;
  }();
  return s.db < names.size() ? names[s.db] : fmt::format("db{}", s.db);
}

async_reply::async_reply(const context& c)
    : version(c.s.version), slot(c.slot), on_done(c.env.on_done) {
  // nop
}

void async_reply::finish(const std::function<void(reply_writer&)>& f) const {
  reply_writer w{version, slot->take_buffer()};
  f(w);
  slot->finish(w.take());
  on_done();
}

} // namespace detail

/// Where the answers of a command's operations go.
struct op_batch {
  virtual ~op_batch() = default;

  /// Operation `i` ended with `r`.
  virtual void complete(size_t i, expected<cache::proto::op_reply> r) = 0;
};

namespace detail {

namespace {

/// Several operations: `done` once all answered, with the answers in
/// order.
struct many_ops final : op_batch {
  op_results results;
  size_t remaining = 0;
  std::function<void(op_results&)> done;

  void complete(size_t i, expected<op_reply> r) override {
    results[i] = std::move(r);
    if (--remaining == 0) {
      done(results);
    }
  }
};

/// A command of one operation (GET, SET and the others a pipeline repeats
/// most): the reply written from its answer. One allocation where the
/// general case takes three (batch, answers, callback).
struct one_op final : op_batch {
  one_op(const context& c,
         std::function<void(reply_writer&, const op_reply&)> reply_with,
         server_state* count_lookup)
      : out(c), f(std::move(reply_with)), lookups(count_lookup) {
    // nop
  }

  async_reply out;
  std::function<void(reply_writer&, const op_reply&)> f;
  /// Where a read command's lookup counts (INFO keyspace_hits), or null.
  server_state* lookups;

  void complete(size_t, expected<op_reply> r) override {
    if (lookups != nullptr && r) {
      lookups->count_lookup(r->found);
    }
    out.finish([&](reply_writer& w) {
      if (!r) {
        w.error(error_text(r.error()));
      } else {
        f(w, *r);
      }
    });
  }
};

using batch = op_batch;

/// How often an operation on a bucket that an owner does not know yet is
/// tried (a bucket just created spreads through the cluster), and how long
/// it waits before the n-th try. After the last try the bucket is created
/// with the defaults (it was dropped while the connection used it: a new
/// connection would create it at once) and the operation tried once more.
constexpr int max_bucket_tries = 25;

caf::timespan backoff(int attempt) {
  return std::chrono::milliseconds{std::min(10 * attempt, 200)};
}

using held_op = op_access::held_op;
using held_ops = op_access::held_ops;
using lane = op_access::lane;

/// What is done with an operation that failed, the stronger the later.
enum class retry {
  no,
  /// The bucket's actor ended (dropped, FLUSHDB): forget it, and go through
  /// the cache actor.
  at_once,
  /// An owner has not heard of the bucket yet: again in a while.
  after_backoff,
  /// The database's bucket does not exist: create it with the defaults (a
  /// second create by another client or node is fine).
  after_create,
};

retry retry_of(const caf::error& err, int attempt, bool direct) {
  auto e = from_caf_error(err);
  if (direct
      && (err == caf::sec::request_receiver_down
          || e == errc::unknown_bucket)) {
    return retry::at_once;
  }
  if (e != errc::unknown_bucket || attempt > max_bucket_tries) {
    return retry::no;
  }
  // Not at once after a bucket actor ended: a create racing FLUSHDB's (its
  // drop here, its create not yet) would replace the new bucket.
  if ((attempt == 0 && !direct) || attempt == max_bucket_tries) {
    return retry::after_create;
  }
  return retry::after_backoff;
}

caf::error reply_error(const op_reply& r) {
  return make_caf_error(error{r.status, r.message});
}

void start_round(caf::event_based_actor* self,
                 const std::shared_ptr<op_access>& access,
                 const std::string& bucket, lane& ln);

/// The round `sent` of `bucket` answered; `errs[i]` is the error of
/// operation `i` (none: it completed; empty: all completed). Failed
/// operations that can succeed later go first in the next round, unless a
/// later operation on the same key took (or may have taken) effect.
void end_round(caf::event_based_actor* self,
               const std::shared_ptr<op_access>& access,
               const std::string& bucket, held_ops& sent,
               std::vector<caf::error>& errs, bool direct) {
  auto& ln = access->lane_of(bucket);
  if (errs.empty()) {
    ln.busy = false;
    start_round(self, access, bucket, ln);
    return;
  }
  auto n = sent.ops.size();
  std::vector<retry> how(n, retry::no);
  {
    std::unordered_set<std::string_view> settled_after;
    for (size_t i = n; i-- > 0;) {
      if (errs[i]) {
        auto r = retry_of(errs[i], sent.waiting[i].attempt, direct);
        if (r != retry::no && settled_after.count(sent.ops[i].key) == 0) {
          how[i] = r;
          continue;
        }
      }
      settled_after.insert(sent.ops[i].key);
    }
  }
  held_ops again;
  auto strongest = retry::no;
  int attempt = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!errs[i]) {
      continue;
    }
    auto& x = sent.waiting[i];
    if (how[i] == retry::no) {
      x.batch->complete(x.index, unexpected{from_caf_error(errs[i])});
      continue;
    }
    strongest = std::max(strongest, how[i]);
    attempt = std::max(attempt, x.attempt + 1);
    again.ops.push_back(std::move(sent.ops[i]));
    again.waiting.push_back(std::move(x));
    again.waiting.back().attempt += 1;
  }
  if (strongest == retry::at_once) {
    ln.handle = bucket_handle{};
  }
  if (again.ops.empty()) {
    ln.busy = false;
    start_round(self, access, bucket, ln);
    return;
  }
  // Ahead of what the connection asked meanwhile.
  auto retried = again.ops.size();
  std::move(ln.queued.ops.begin(), ln.queued.ops.end(),
            std::back_inserter(again.ops));
  std::move(ln.queued.waiting.begin(), ln.queued.waiting.end(),
            std::back_inserter(again.waiting));
  ln.queued = std::move(again);
  auto resume = [self, access, bucket] {
    auto& l = access->lane_of(bucket);
    l.busy = false;
    start_round(self, access, bucket, l);
  };
  switch (strongest) {
    case retry::at_once:
    case retry::no: resume(); break;
    case retry::after_backoff: access->later(backoff(attempt), resume); break;
    case retry::after_create:
      self
        ->request(access->cache, ln.queued.waiting.front().timeout,
                  create_bucket_atom::value, bucket, bucket_options{})
        .then(
          [resume](bool) {
            resume();
          },
          [access, bucket, retried, resume](caf::error& err) {
            // The retried operations (still first) fail with it.
            auto& q = access->lane_of(bucket).queued;
            auto k
              = static_cast<std::ptrdiff_t>(std::min(retried, q.ops.size()));
            auto failed = std::vector<held_op>(
              std::make_move_iterator(q.waiting.begin()),
              std::make_move_iterator(q.waiting.begin() + k));
            q.ops.erase(q.ops.begin(), q.ops.begin() + k);
            q.waiting.erase(q.waiting.begin(), q.waiting.begin() + k);
            for (auto& x : failed) {
              x.batch->complete(x.index, unexpected{from_caf_error(err)});
            }
            resume();
          });
      break;
  }
}

/// Sends the round `sent` to `dest` (the bucket's own actor: `direct`, no
/// timeout of our own; or the cache actor, with the operations' timeout),
/// in one message, and ends the round with the answers.
template <class Dest>
void send_round(caf::event_based_actor* self,
                const std::shared_ptr<op_access>& access,
                const std::string& bucket, const Dest& dest, bool direct,
                const std::shared_ptr<held_ops>& sent) {
  // Through the bucket's own actor no timeout of our own: a bucket actor
  // answers every operation it takes, with an error when it cannot (its
  // own op_timeout for the owners it forwards to, unknown_bucket when it
  // ends), and CAF bounces what reaches it after it ended. A timeout per
  // request would put every operation into CAF's clock (a locked tree and
  // a thread woken: about 6 % of the node's CPU under redis-benchmark).
  auto timeout = direct ? caf::duration{caf::infinite}
                        : caf::duration{sent->waiting.front().timeout};
  auto all_failed = [self, access, bucket, sent, direct](caf::error& err) {
    std::vector<caf::error> errs(sent->ops.size(), err);
    end_round(self, access, bucket, *sent, errs, direct);
  };
  if (sent->ops.size() == 1) {
    self->request(dest, timeout, cache_op{bucket, sent->ops.front()})
      .then(
        [self, access, bucket, sent, direct](op_reply& r) {
          std::vector<caf::error> errs;
          if (r.status != errc::none) {
            errs.push_back(reply_error(r));
          } else {
            auto& x = sent->waiting.front();
            x.batch->complete(x.index, std::move(r));
            x.batch.reset();
          }
          end_round(self, access, bucket, *sent, errs, direct);
        },
        all_failed);
    return;
  }
  // Lent to the bucket under a count of its own, which tells when the
  // bucket let go of them (`lent` expired). Through the cache actor the
  // round is one message too: all of it meets the bucket, or none.
  std::shared_ptr<const std::vector<op_request>> to_bucket{
    &sent->ops, [keep = sent](const auto*) {}};
  std::weak_ptr<const std::vector<op_request>> lent = to_bucket;
  self
    ->request(dest, timeout,
              cache_op_batch{std::move(to_bucket), bucket,
                             std::move(access->spare_replies)})
    .then(
      [self, access, bucket, sent, lent, direct](cache_op_batch_reply& r) {
        ++access->answering;
        std::vector<caf::error> errs;
        auto& w = sent->waiting;
        for (size_t i = 0; i < w.size(); ++i) {
          auto& x = w[i];
          if (i >= r.replies.size() || r.replies[i].status != errc::none) {
            if (errs.empty()) {
              errs.resize(w.size());
            }
            errs[i] = i >= r.replies.size() ? make_caf_error(
                        error{errc::malformed_frame,
                              "a batch answer without this operation"})
                                            : reply_error(r.replies[i]);
            continue;
          }
          x.batch->complete(x.index, std::move(r.replies[i]));
          // The command's copy of the answer goes as soon as it has its
          // reply bytes: a batch of large values is not held twice over.
          x.batch.reset();
        }
        if (r.replies.capacity() > access->spare_replies.capacity()) {
          r.replies.clear();
          access->spare_replies = std::move(r.replies);
        }
        end_round(self, access, bucket, *sent, errs, direct);
        if (--access->answering == 0 && std::exchange(access->answered, false)
            && access->on_answers) {
          access->on_answers();
        }
        // Once the bucket let go of the operations too, their vectors
        // serve a later round.
        if (lent.expired()) {
          access->keep_ops(sent->ops);
          if (access->spare.size() < 4) {
            sent->ops.clear();
            sent->waiting.clear();
            access->spare.push_back(std::move(*sent));
          }
        }
      },
      all_failed);
}

void start_round(caf::event_based_actor* self,
                 const std::shared_ptr<op_access>& access,
                 const std::string& bucket, lane& ln) {
  if (ln.busy || ln.queued.ops.empty() || access->holding > 0) {
    return;
  }
  ln.busy = true;
  auto sent = std::make_shared<held_ops>();
  sent->ops.swap(ln.queued.ops);
  sent->waiting.swap(ln.queued.waiting);
  if (!access->spare.empty()) {
    ln.queued = std::move(access->spare.back());
    access->spare.pop_back();
  } else {
    // A pipeline round usually brings as many as the last one did.
    ln.queued.ops.reserve(sent->ops.size());
    ln.queued.waiting.reserve(sent->ops.size());
  }
  if (ln.handle) {
    send_round(self, access, bucket, ln.handle, true, sent);
    return;
  }
  if (!ln.asking) {
    // Ask for the bucket's own actor once; until it comes, through the
    // cache actor. A round under way keeps its way: the handle serves the
    // next round, so no operation overtakes an earlier one.
    ln.asking = true;
    self
      ->request(access->cache, sent->waiting.front().timeout,
                bucket_atom::value, bucket)
      .then(
        [access, bucket](bucket_handle& bh) {
          auto& l = access->lane_of(bucket);
          l.asking = false;
          l.handle = std::move(bh);
        },
        [access, bucket](caf::error&) {
          access->lane_of(bucket).asking = false;
        });
  }
  send_round(self, access, bucket, access->cache, false, sent);
}

/// Queues operation `i` of `b` on its bucket's lane; it leaves at once if
/// the lane is free and no read is being run.
void send_op(caf::event_based_actor* self,
             const std::shared_ptr<op_access>& access, caf::timespan timeout,
             std::shared_ptr<batch> b, size_t i, const std::string& bucket,
             op_request op) {
  auto& ln = access->lane_of(bucket);
  ln.queued.ops.push_back(std::move(op));
  ln.queued.waiting.push_back(held_op{std::move(b), i, timeout, 0});
  start_round(self, access, bucket, ln);
}

} // namespace

void exec_ops(caf::event_based_actor* self,
              const std::shared_ptr<op_access>& access, caf::timespan timeout,
              const std::string& bucket, std::vector<op_request> ops,
              std::function<void(op_results&)> done) {
  auto b = std::make_shared<many_ops>();
  b->results.resize(ops.size(), unexpected{error{errc::timeout}});
  b->remaining = ops.size();
  b->done = std::move(done);
  if (ops.empty()) {
    b->done(b->results);
    return;
  }
  std::shared_ptr<batch> base = b;
  for (size_t i = 0; i < ops.size(); ++i) {
    ops[i].bucket = bucket;
    send_op(self, access, timeout, base, i, bucket, std::move(ops[i]));
  }
}

/// Whether `op` of the command of `c` is a lookup INFO's keyspace_hits
/// and keyspace_misses count: a read (get, ttl) by a read-only command,
/// as Redis counts its lookupKeyRead.
bool counts_lookups(const context& c, const op_request& op) {
  return (op.op == op_code::get || op.op == op_code::ttl)
         && command_is_readonly(c.slot->command);
}

void run_ops(const context& c, std::vector<op_request> ops,
             std::function<void(reply_writer&, op_results&)> f) {
  async_reply out{c};
  auto* lookups = !ops.empty() && counts_lookups(c, ops.front()) ? &c.env.server
                                                                 : nullptr;
  exec_ops(c.env.self, c.env.access, c.env.timeout, c.bucket(), std::move(ops),
           [out, lookups, f = std::move(f)](op_results& rs) {
             if (lookups != nullptr) {
               for (const auto& r : rs) {
                 if (r) {
                   lookups->count_lookup(r->found);
                 }
               }
             }
             out.finish([&](reply_writer& w) {
               f(w, rs);
             });
           });
}

op_request make(op_code code, std::string_view key) {
  op_request op;
  op.op = code;
  op.key = std::string{key};
  return op;
}

op_request make(const context& c, op_code code, std::string_view key) {
  auto& spare = c.env.access->spare_ops;
  if (spare.empty()) {
    return make(code, key);
  }
  // An answered round's operation: its strings keep their room, the rest
  // is as new.
  auto old = std::move(spare.back());
  spare.pop_back();
  op_request op;
  op.op = code;
  op.bucket = std::move(old.bucket);
  op.key = std::move(old.key);
  op.key.assign(key);
  op.value = std::move(old.value);
  op.value.clear();
  return op;
}

void assign_bytes(cache::proto::bytes& out, std::string_view s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  out.assign(p, p + s.size());
}

const error* first_error(const op_results& rs) {
  for (const auto& r : rs) {
    if (!r) {
      return &r.error();
    }
  }
  return nullptr;
}

void run_one(const context& c, op_request op,
             std::function<void(reply_writer&, const op_reply&)> f) {
  // Not through exec_ops: no vector of operations, no vector of answers,
  // no closure (the commands a pipeline repeats most come here).
  std::shared_ptr<batch> b = std::allocate_shared<one_op>(
    runtime::recycling_allocator<one_op>{}, c, std::move(f),
    counts_lookups(c, op) ? &c.env.server : nullptr);
  auto bucket = c.bucket();
  op.bucket.assign(bucket);
  send_op(c.env.self, c.env.access, c.env.timeout, std::move(b), 0, bucket,
          std::move(op));
}

namespace {

/// How often a read-modify-write starts over before it gives up.
constexpr int max_rmw_attempts = 64;

struct rmw_state {
  caf::event_based_actor* self;
  std::shared_ptr<op_access> access;
  caf::timespan timeout;
  std::string bucket;
  std::string key;
  op_code read;
  std::function<rmw_plan(const op_reply&)> decide;
  async_reply out;
  int attempts = 0;
};

void rmw_step(const std::shared_ptr<rmw_state>& st) {
  ++st->attempts;
  exec_ops(st->self, st->access, st->timeout, st->bucket,
           {make(st->read, st->key)}, [st](op_results& rs) {
             if (!rs[0]) {
               auto text = error_text(rs[0].error());
               st->out.finish([&](reply_writer& w) {
                 w.error(text);
               });
               return;
             }
             auto current = std::move(*rs[0]);
             auto plan = st->decide(current);
             if (!plan.error.empty()) {
               st->out.finish([&](reply_writer& w) {
                 w.error(plan.error);
               });
               return;
             }
             if (!plan.write) {
               st->out.finish([&](reply_writer& w) {
                 plan.reply(w, current);
               });
               return;
             }
             auto op = std::move(*plan.write);
             op.key = st->key;
             op.expected = current.found ? current.ver : cache::version{};
             if (op.op == op_code::put) {
               op.op = op_code::cas;
             } else {
               op.flags |= flags::only_if_version;
             }
             auto reply = std::move(plan.reply);
             exec_ops(st->self, st->access, st->timeout, st->bucket,
                      {std::move(op)}, [st, reply](op_results& ws) {
                        if (!ws[0] && ws[0].error() == errc::version_mismatch
                            && st->attempts < max_rmw_attempts) {
                          rmw_step(st); // another write came first: again
                          return;
                        }
                        st->out.finish([&](reply_writer& w) {
                          if (!ws[0]) {
                            w.error(error_text(ws[0].error()));
                          } else {
                            reply(w, *ws[0]);
                          }
                        });
                      });
           });
}

} // namespace

void read_modify_write(
  const context& c, std::string key, op_code read,
  std::function<rmw_plan(const op_reply& current)> decide) {
  auto st = std::make_shared<rmw_state>(
    rmw_state{c.env.self, c.env.access, c.env.timeout, c.bucket(),
              std::move(key), read, std::move(decide), async_reply{c}});
  rmw_step(st);
}

std::optional<std::string> expire_at(const context& c, std::string_view text,
                                     int64_t unit_ms, bool absolute,
                                     std::string_view cmd_name, int64_t& out) {
  int64_t v = 0;
  if (!parse_ll(text, v)) {
    return std::string{not_an_integer};
  }
  auto invalid = fmt::format("ERR invalid expire time in '{}' command",
                             cmd_name);
  if (v <= 0 || v > llong_max / unit_ms) {
    return invalid;
  }
  v *= unit_ms;
  if (!absolute) {
    auto now = c.env.wall.now_ms(c.env.self);
    if (v > llong_max - now) {
      return invalid;
    }
    v += now;
  }
  out = v;
  return std::nullopt;
}

namespace {

/// Replies 1 when the operation changed the key, else 0.
void reply_changed(reply_writer& w, const op_reply& r) {
  w.integer(r.number == 1 ? 1 : 0);
}

void reply_value(reply_writer& w, const op_reply& r) {
  if (r.found) {
    w.bulk_string(as_view(r.value));
  } else {
    w.null();
  }
}

// -- connection commands ------------------------------------------------------

void cmd_ping(const context& c) {
  if (c.argc() > 2) {
    c.error("ERR wrong number of arguments for 'ping' command");
    return;
  }
  if (c.argc() == 2) {
    c.reply([&](reply_writer& w) {
      w.bulk_string(c.arg(1));
    });
  } else {
    c.reply([](reply_writer& w) {
      w.simple_string("PONG");
    });
  }
}

void cmd_echo(const context& c) {
  c.reply([&](reply_writer& w) {
    w.bulk_string(c.arg(1));
  });
}

void cmd_quit(const context& c) {
  c.reply(
    [](reply_writer& w) {
      w.simple_string("OK");
    },
    true);
}

void cmd_select(const context& c) {
  int64_t db = 0;
  if (!parse_ll(c.arg(1), db)) {
    c.error(not_an_integer);
    return;
  }
  if (db < INT32_MIN || db > INT32_MAX) {
    // Redis reads the index as a C int first.
    c.error("ERR value is out of range, value must between -2147483648 and "
            "2147483647");
    return;
  }
  if (db < 0 || db >= static_cast<int64_t>(c.env.databases)) {
    c.error("ERR DB index is out of range");
    return;
  }
  c.s.db = static_cast<uint32_t>(db);
  c.s.bucket.clear();
  c.reply([](reply_writer& w) {
    w.simple_string("OK");
  });
}

/// AUTH [user] password (`with_user`: the user was given); false if it
/// failed (and replied). Without requirepass the default user takes any
/// password (Redis's `nopass`), but AUTH without a user is an error.
bool check_auth(const context& c, bool with_user, std::string_view user,
                std::string_view pass) {
  if (c.env.password.empty()) {
    if (!with_user) {
      c.error("ERR AUTH <password> called without any password configured "
              "for the default user. Are you sure your configuration is "
              "correct?");
      return false;
    }
    if (user == "default") {
      c.s.authenticated = true;
      return true;
    }
  }
  if (user != "default" || pass != c.env.password) {
    c.error("WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  c.s.authenticated = true;
  return true;
}

void cmd_auth(const context& c) {
  if (c.argc() > 3) {
    c.error(syntax_error);
    return;
  }
  auto user = c.argc() == 3 ? c.arg(1) : std::string_view{"default"};
  auto pass = c.argc() == 3 ? c.arg(2) : c.arg(1);
  if (check_auth(c, c.argc() == 3, user, pass)) {
    c.reply([](reply_writer& w) {
      w.simple_string("OK");
    });
  }
}

void cmd_hello(const context& c) {
  auto version = c.s.version;
  size_t i = 1;
  if (c.argc() >= 2) {
    int64_t v = 0;
    if (!parse_ll(c.arg(1), v)) {
      c.error("ERR Protocol version is not an integer or out of range");
      return;
    }
    if (v < 2 || v > 3) {
      c.error("NOPROTO unsupported protocol version");
      return;
    }
    version = v == 3 ? protocol_version::resp3 : protocol_version::resp2;
    i = 2;
  }
  // As Redis 7.0, each option takes effect as it is read: an error stops
  // the rest, but what came before it stays done (a name set, a login).
  for (; i < c.argc(); ++i) {
    bool more = i + 1 < c.argc();
    if (iequals(c.arg(i), "auth") && i + 2 < c.argc()) {
      if (!check_auth(c, true, c.arg(i + 1), c.arg(i + 2))) {
        return;
      }
      i += 2;
    } else if (iequals(c.arg(i), "setname") && more) {
      if (!set_client_name(c, c.arg(i + 1))) {
        return;
      }
      ++i;
    } else {
      c.error(fmt::format("ERR Syntax error in HELLO option '{}'",
                          c_string(c.arg(i))));
      return;
    }
  }
  if (!c.s.authenticated) {
    c.error("NOAUTH HELLO must be called with the client already "
            "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> "
            "option can be used to authenticate the client and select the "
            "RESP protocol version at the same time");
    return;
  }
  c.s.version = version;
  c.reply([&](reply_writer& w) {
    w.map(7);
    w.bulk_string("server").bulk_string("redis");
    w.bulk_string("version").bulk_string(redis_version);
    w.bulk_string("proto").integer(version == protocol_version::resp3 ? 3 : 2);
    w.bulk_string("id").integer(c.s.id);
    w.bulk_string("mode").bulk_string("standalone");
    w.bulk_string("role").bulk_string("master");
    w.bulk_string("modules").array(0);
  });
}

// -- strings ------------------------------------------------------------------

void cmd_get(const context& c) {
  run_one(c, make(c, op_code::get, c.arg(1)), reply_value);
}

void put(const context& c, std::string_view key, std::string_view value,
         uint8_t op_flags, int64_t expires_ms,
         std::function<void(reply_writer&, const op_reply&)> f) {
  auto op = make(c, op_code::put, key);
  assign_bytes(op.value, value);
  op.flags = op_flags;
  op.expires_ms = expires_ms;
  run_one(c, std::move(op), std::move(f));
}

/// SET's and GETEX's options, parsed as Redis 7.0's
/// parseExtendedStringArgumentsOrReply does: an expiry option may repeat
/// (the last one counts) but not mix with another kind.
struct string_options {
  enum : unsigned {
    nx = 1,
    xx = 2,
    get = 4,
    keepttl = 8,
    ex = 16,
    px = 32,
    exat = 64,
    pxat = 128,
    persist = 256,
  };
  static constexpr unsigned any_expire = ex | px | exat | pxat;
  unsigned fl = 0;
  std::string_view when;

  /// From argument `first`; `for_set`: SET's options, else GETEX's.
  bool parse(const context& c, size_t first, bool for_set) {
    for (size_t j = first; j < c.argc(); ++j) {
      auto opt = lower(c.arg(j));
      bool has_next = j + 1 < c.argc();
      auto expiry = [&](unsigned kind) {
        return (fl & (keepttl | persist | (any_expire & ~kind))) == 0
               && has_next;
      };
      if (opt == "nx" && (fl & xx) == 0 && for_set) {
        fl |= nx;
      } else if (opt == "xx" && (fl & nx) == 0 && for_set) {
        fl |= xx;
      } else if (opt == "get" && for_set) {
        fl |= get;
      } else if (opt == "keepttl" && (fl & (persist | any_expire)) == 0
                 && for_set) {
        fl |= keepttl;
      } else if (opt == "persist" && !for_set
                 && (fl & (any_expire | keepttl)) == 0) {
        fl |= persist;
      } else if (opt == "ex" && expiry(ex)) {
        fl |= ex;
        when = c.arg(++j);
      } else if (opt == "px" && expiry(px)) {
        fl |= px;
        when = c.arg(++j);
      } else if (opt == "exat" && expiry(exat)) {
        fl |= exat;
        when = c.arg(++j);
      } else if (opt == "pxat" && expiry(pxat)) {
        fl |= pxat;
        when = c.arg(++j);
      } else {
        return false;
      }
    }
    return true;
  }

  bool has_expiry() const {
    return (fl & any_expire) != 0;
  }

  /// The absolute expiry, or the error text.
  std::optional<std::string> expiry_ms(const context& c, std::string_view cmd,
                                       int64_t& out) const {
    int64_t unit = (fl & (ex | exat)) != 0 ? 1000 : 1;
    bool absolute = (fl & (exat | pxat)) != 0;
    return expire_at(c, when, unit, absolute, cmd, out);
  }
};

void cmd_set(const context& c) {
  string_options o;
  if (!o.parse(c, 3, true)) {
    c.error(syntax_error);
    return;
  }
  int64_t expires = cache::no_expiry;
  if (o.has_expiry()) {
    if (auto err = o.expiry_ms(c, "set", expires)) {
      c.error(*err);
      return;
    }
  }
  uint8_t of = 0;
  of |= (o.fl & string_options::nx) != 0 ? flags::only_if_absent : 0;
  of |= (o.fl & string_options::xx) != 0 ? flags::only_if_present : 0;
  of |= (o.fl & string_options::get) != 0 ? flags::return_previous : 0;
  of |= (o.fl & string_options::keepttl) != 0 ? flags::keep_ttl : 0;
  bool with_get = (o.fl & string_options::get) != 0;
  put(c, c.arg(1), c.arg(2), of, expires,
      [with_get](reply_writer& w, const op_reply& r) {
        if (with_get) {
          reply_value(w, r);
        } else if (r.number == 1) {
          w.simple_string("OK");
        } else {
          w.null();
        }
      });
}

void cmd_setnx(const context& c) {
  put(c, c.arg(1), c.arg(2), flags::only_if_absent, cache::no_expiry,
      reply_changed);
}

void setex_like(const context& c, int64_t unit, std::string_view name) {
  int64_t expires = 0;
  if (auto err = expire_at(c, c.arg(2), unit, false, name, expires)) {
    c.error(*err);
    return;
  }
  put(c, c.arg(1), c.arg(3), 0, expires, [](reply_writer& w, const op_reply&) {
    w.simple_string("OK");
  });
}

void cmd_setex(const context& c) {
  setex_like(c, 1000, "setex");
}

void cmd_psetex(const context& c) {
  setex_like(c, 1, "psetex");
}

void cmd_getset(const context& c) {
  put(c, c.arg(1), c.arg(2), flags::return_previous, cache::no_expiry,
      reply_value);
}

void cmd_getdel(const context& c) {
  read_modify_write(c, std::string{c.arg(1)}, op_code::get,
                    [](const op_reply& cur) {
                      rmw_plan plan;
                      if (cur.found) {
                        plan.write = make(op_code::del, "");
                      }
                      auto value = cur;
                      plan.reply = [value](reply_writer& w, const op_reply&) {
                        reply_value(w, value);
                      };
                      return plan;
                    });
}

void cmd_getex(const context& c) {
  string_options o;
  if (!o.parse(c, 2, false)) {
    c.error(syntax_error);
    return;
  }
  // Redis 7.0 looks the key up before it checks the time: a missing key
  // answers nil whatever the time says.
  int64_t expires = cache::no_expiry;
  std::optional<std::string> bad_time;
  if (o.has_expiry()) {
    bad_time = o.expiry_ms(c, "getex", expires);
  }
  bool persist = (o.fl & string_options::persist) != 0;
  bool change = o.has_expiry() || persist;
  read_modify_write(c, std::string{c.arg(1)}, op_code::get,
                    [bad_time, change, persist, expires](const op_reply& cur) {
                      rmw_plan plan;
                      if (cur.found && bad_time) {
                        plan.error = *bad_time;
                        return plan;
                      }
                      if (cur.found && change
                          && !(persist && cur.expires_ms == cache::no_expiry)) {
                        auto op = make(op_code::expire, "");
                        op.expires_ms = persist ? cache::no_expiry : expires;
                        plan.write = std::move(op);
                      }
                      auto value = cur;
                      plan.reply = [value](reply_writer& w, const op_reply&) {
                        reply_value(w, value);
                      };
                      return plan;
                    });
}

void cmd_strlen(const context& c) {
  run_one(c, make(c, op_code::get, c.arg(1)),
          [](reply_writer& w, const op_reply& r) {
            w.integer(r.found ? static_cast<int64_t>(r.value.size()) : 0);
          });
}

void cmd_getrange(const context& c) {
  int64_t start = 0;
  int64_t end = 0;
  if (!parse_ll(c.arg(2), start) || !parse_ll(c.arg(3), end)) {
    c.error(not_an_integer);
    return;
  }
  run_one(c, make(c, op_code::get, c.arg(1)),
          [start, end](reply_writer& w, const op_reply& r) mutable {
            auto len = static_cast<int64_t>(r.value.size());
            if (!r.found || (start < 0 && end < 0 && start > end)) {
              w.bulk_string(std::string_view{});
              return;
            }
            clamp_range(len, start, end);
            if (start > end || len == 0) {
              w.bulk_string(std::string_view{});
              return;
            }
            w.bulk_string(
              as_view(r.value).substr(static_cast<size_t>(start),
                                      static_cast<size_t>(end - start + 1)));
          });
}

constexpr std::string_view too_big
  = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

void cmd_append(const context& c) {
  std::string tail{c.arg(2)};
  read_modify_write(
    c, std::string{c.arg(1)}, op_code::get, [tail](const op_reply& cur) {
      rmw_plan plan;
      auto total = static_cast<int64_t>(cur.value.size() + tail.size());
      if (total > max_string) {
        plan.error = std::string{too_big};
        return plan;
      }
      if (total > static_cast<int64_t>(cache::max_value_size)) {
        plan.error = too_large_for_mycel(total);
        return plan;
      }
      auto op = make(op_code::put, "");
      op.value = cur.value;
      auto more = to_bytes(tail);
      op.value.insert(op.value.end(), more.begin(), more.end());
      op.flags = flags::keep_ttl;
      plan.write = std::move(op);
      plan.reply = [total](reply_writer& w, const op_reply&) {
        w.integer(total);
      };
      return plan;
    });
}

void cmd_setrange(const context& c) {
  int64_t offset = 0;
  if (!parse_ll(c.arg(2), offset)) {
    c.error(not_an_integer);
    return;
  }
  if (offset < 0) {
    c.error("ERR offset is out of range");
    return;
  }
  std::string value{c.arg(3)};
  read_modify_write(
    c, std::string{c.arg(1)}, op_code::get,
    [offset, value](const op_reply& cur) {
      rmw_plan plan;
      auto len = static_cast<int64_t>(cur.value.size());
      if (value.empty()) {
        plan.reply = [len](reply_writer& w, const op_reply&) {
          w.integer(len); // 0 for a missing key: nothing is created
        };
        return plan;
      }
      auto vlen = static_cast<int64_t>(value.size());
      if (offset > max_string - vlen) {
        plan.error = std::string{too_big};
        return plan;
      }
      if (offset + vlen > static_cast<int64_t>(cache::max_value_size)) {
        plan.error = too_large_for_mycel(offset + vlen);
        return plan;
      }
      auto op = make(op_code::put, "");
      op.value = cur.value;
      auto need = static_cast<size_t>(offset + vlen);
      if (op.value.size() < need) {
        op.value.resize(need, std::byte{0});
      }
      std::memcpy(op.value.data() + offset, value.data(), value.size());
      op.flags = flags::keep_ttl;
      auto total = static_cast<int64_t>(op.value.size());
      plan.write = std::move(op);
      plan.reply = [total](reply_writer& w, const op_reply&) {
        w.integer(total);
      };
      return plan;
    });
}

void cmd_mset(const context& c) {
  if (c.argc() % 2 == 0) {
    c.error(fmt::format("ERR wrong number of arguments for '{}' command",
                        lower(c.arg(0))));
    return;
  }
  std::vector<op_request> ops;
  for (size_t i = 1; i + 1 < c.argc(); i += 2) {
    auto op = make(op_code::put, c.arg(i));
    op.value = to_bytes(c.arg(i + 1));
    ops.push_back(std::move(op));
  }
  run_ops(c, std::move(ops), [](reply_writer& w, op_results& rs) {
    if (auto* e = first_error(rs)) {
      w.error(error_text(*e));
      return;
    }
    w.simple_string("OK");
  });
}

void cmd_msetnx(const context& c) {
  if (c.argc() % 2 == 0) {
    c.error("ERR wrong number of arguments for 'msetnx' command");
    return;
  }
  // Across owners this is no transaction: the keys are checked, then each
  // is set only if still absent (a key another client sets in between
  // keeps that client's value).
  std::vector<op_request> checks;
  std::vector<op_request> puts;
  for (size_t i = 1; i + 1 < c.argc(); i += 2) {
    checks.push_back(make(op_code::ttl, c.arg(i)));
    // A key named twice gets its last value, as Redis sets them in order
    // (two puts only-if-absent would keep the first).
    auto same = std::find_if(puts.begin(), puts.end(), [&](const auto& p) {
      return p.key == c.arg(i);
    });
    if (same != puts.end()) {
      same->value = to_bytes(c.arg(i + 1));
      continue;
    }
    auto op = make(op_code::put, c.arg(i));
    op.value = to_bytes(c.arg(i + 1));
    op.flags = flags::only_if_absent;
    puts.push_back(std::move(op));
  }
  async_reply out{c};
  auto* self = c.env.self;
  auto access = c.env.access;
  auto timeout = c.env.timeout;
  auto bucket = c.bucket();
  exec_ops(self, access, timeout, bucket, std::move(checks),
           [out, self, access, timeout, bucket,
            puts = std::move(puts)](op_results& rs) mutable {
             if (auto* e = first_error(rs)) {
               auto text = error_text(*e);
               out.finish([&](reply_writer& w) {
                 w.error(text);
               });
               return;
             }
             for (auto& r : rs) {
               if (r->found) {
                 out.finish([](reply_writer& w) {
                   w.integer(0);
                 });
                 return;
               }
             }
             exec_ops(self, access, timeout, bucket, std::move(puts),
                      [out](op_results& ws) {
                        out.finish([&](reply_writer& w) {
                          if (auto* e = first_error(ws)) {
                            w.error(error_text(*e));
                          } else {
                            w.integer(1);
                          }
                        });
                      });
           });
}

void incr_by(const context& c, int64_t delta) {
  auto op = make(c, op_code::incr, c.arg(1));
  op.delta = delta;
  run_one(c, std::move(op), [](reply_writer& w, const op_reply& r) {
    w.integer(r.number);
  });
}

void cmd_incr(const context& c) {
  incr_by(c, 1);
}

void cmd_decr(const context& c) {
  incr_by(c, -1);
}

void cmd_incrby(const context& c) {
  int64_t d = 0;
  if (!parse_ll(c.arg(2), d)) {
    c.error(not_an_integer);
    return;
  }
  incr_by(c, d);
}

void cmd_decrby(const context& c) {
  int64_t d = 0;
  if (!parse_ll(c.arg(2), d)) {
    c.error(not_an_integer);
    return;
  }
  if (d == llong_min) {
    c.error("ERR decrement would overflow");
    return;
  }
  incr_by(c, -d);
}

/// Redis's MAX_LONG_DOUBLE_CHARS.
constexpr size_t max_long_double_chars = size_t{5} * 1024;

/// Redis's string2ld: strtold over the whole text, no leading space, no
/// NaN, no overflow.
bool parse_ld(std::string_view s, long double& out) {
  if (s.empty() || s.size() >= max_long_double_chars) {
    return false;
  }
  std::string buf{s};
  if (buf.find('\0') != std::string::npos) {
    return false;
  }
  char* end = nullptr;
  errno = 0;
  auto v = std::strtold(buf.c_str(), &end);
  if (std::isspace(static_cast<unsigned char>(buf[0])) != 0 || *end != '\0'
      || (errno == ERANGE
          && (v == HUGE_VALL || v == -HUGE_VALL
              || std::fpclassify(v) == FP_ZERO))
      || errno == EINVAL || std::isnan(v)) {
    return false;
  }
  out = v;
  return true;
}

/// Redis's ld2string in its human mode: 17 decimals, trailing zeros and
/// point dropped, "-0" as "0".
std::string format_ld(long double v) {
  std::array<char, max_long_double_chars> buf{};
  auto n = std::snprintf(buf.data(), buf.size(), "%.17Lf", v);
  if (n <= 0) {
    return "0";
  }
  std::string out{buf.data(), static_cast<size_t>(n)};
  if (out.find('.') != std::string::npos) {
    while (!out.empty() && out.back() == '0') {
      out.pop_back();
    }
    if (!out.empty() && out.back() == '.') {
      out.pop_back();
    }
  }
  if (out == "-0") {
    out = "0";
  }
  return out;
}

void cmd_incrbyfloat(const context& c) {
  long double incr = 0;
  // Redis checks the value held first, then the increment; both fail
  // with the same text, so the increment can be checked before the read.
  if (!parse_ld(c.arg(2), incr)) {
    c.error("ERR value is not a valid float");
    return;
  }
  read_modify_write(
    c, std::string{c.arg(1)}, op_code::get, [incr](const op_reply& cur) {
      rmw_plan plan;
      long double value = 0;
      if (cur.found && !parse_ld(as_view(cur.value), value)) {
        plan.error = "ERR value is not a valid float";
        return plan;
      }
      value += incr;
      if (std::isnan(value) || std::isinf(value)) {
        plan.error = "ERR increment would produce NaN or Infinity";
        return plan;
      }
      auto text = format_ld(value);
      auto op = make(op_code::put, "");
      op.value = to_bytes(text);
      op.flags = flags::keep_ttl;
      plan.write = std::move(op);
      plan.reply = [text](reply_writer& w, const op_reply&) {
        w.bulk_string(text);
      };
      return plan;
    });
}

// -- keys ---------------------------------------------------------------------

/// One operation per key argument from `first`.
std::vector<op_request> per_key(const context& c, op_code code, size_t first) {
  std::vector<op_request> ops;
  for (size_t i = first; i < c.argc(); ++i) {
    ops.push_back(make(code, c.arg(i)));
  }
  return ops;
}

void cmd_del(const context& c) {
  run_ops(c, per_key(c, op_code::del, 1), [](reply_writer& w, op_results& rs) {
    if (auto* e = first_error(rs)) {
      w.error(error_text(*e));
      return;
    }
    int64_t n = 0;
    for (auto& r : rs) {
      n += r->number == 1 ? 1 : 0;
    }
    w.integer(n);
  });
}

void cmd_exists(const context& c) {
  run_ops(c, per_key(c, op_code::ttl, 1), [](reply_writer& w, op_results& rs) {
    if (auto* e = first_error(rs)) {
      w.error(error_text(*e));
      return;
    }
    int64_t n = 0;
    for (auto& r : rs) {
      n += r->found ? 1 : 0;
    }
    w.integer(n);
  });
}

void cmd_type(const context& c) {
  run_one(c, make(c, op_code::ttl, c.arg(1)),
          [](reply_writer& w, const op_reply& r) {
            w.simple_string(r.found ? "string" : "none");
          });
}

void cmd_mget(const context& c) {
  run_ops(c, per_key(c, op_code::get, 1), [](reply_writer& w, op_results& rs) {
    if (auto* e = first_error(rs)) {
      w.error(error_text(*e));
      return;
    }
    w.array(rs.size());
    for (auto& r : rs) {
      reply_value(w, *r);
    }
  });
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME.
void ttl_like(const context& c, bool millis, bool absolute) {
  // The reply comes later, from the connection actor (`self`), whose state
  // holds `wall`.
  auto* self = c.env.self;
  const auto& wall = c.env.wall;
  run_one(c, make(c, op_code::ttl, c.arg(1)),
          [millis, absolute, self, &wall](reply_writer& w, const op_reply& r) {
            if (!r.found) {
              w.integer(-2);
            } else if (r.expires_ms == cache::no_expiry) {
              w.integer(-1);
            } else {
              auto t = absolute
                         ? r.expires_ms
                         : std::max<int64_t>(r.expires_ms - wall.now_ms(self),
                                             0);
              // Rounded to the nearest second without overflowing near
              // INT64_MAX (t + 500 would; Redis answers the true value).
              w.integer(millis ? t : t / 1000 + (t % 1000 + 500) / 1000);
            }
          });
}

void cmd_ttl(const context& c) {
  ttl_like(c, false, false);
}

void cmd_pttl(const context& c) {
  ttl_like(c, true, false);
}

void cmd_expiretime(const context& c) {
  ttl_like(c, false, true);
}

void cmd_pexpiretime(const context& c) {
  ttl_like(c, true, true);
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX, XX, GT, LT (Redis 7.0's
/// expireGenericCommand).
void expire_like(const context& c, int64_t unit, bool absolute,
                 std::string_view name) {
  enum : unsigned { nx = 1, xx = 2, gt = 4, lt = 8 };
  unsigned fl = 0;
  for (size_t j = 3; j < c.argc(); ++j) {
    auto opt = lower(c.arg(j));
    if (opt == "nx") {
      fl |= nx;
    } else if (opt == "xx") {
      fl |= xx;
    } else if (opt == "gt") {
      fl |= gt;
    } else if (opt == "lt") {
      fl |= lt;
    } else {
      c.error(fmt::format("ERR Unsupported option {}", c_string(c.arg(j))));
      return;
    }
  }
  if ((fl & nx) != 0 && (fl & (xx | gt | lt)) != 0) {
    c.error("ERR NX and XX, GT or LT options at the same time are not "
            "compatible");
    return;
  }
  if ((fl & gt) != 0 && (fl & lt) != 0) {
    c.error("ERR GT and LT options at the same time are not compatible");
    return;
  }
  int64_t v = 0;
  if (!parse_ll(c.arg(2), v)) {
    c.error(not_an_integer);
    return;
  }
  auto invalid = fmt::format("ERR invalid expire time in '{}' command", name);
  if (v > llong_max / unit || v < llong_min / unit) {
    c.error(invalid);
    return;
  }
  v *= unit;
  auto now = c.env.wall.now_ms(c.env.self);
  int64_t base = absolute ? 0 : now;
  if (v > llong_max - base) {
    c.error(invalid);
    return;
  }
  auto when = v + base;
  // At or before now the key goes (Redis deletes it): a time long past, so
  // that a primary whose clock is behind ours deletes too.
  auto expires = when <= now ? int64_t{1} : when;
  if (fl == 0) {
    auto op = make(op_code::expire, c.arg(1));
    op.expires_ms = expires;
    run_one(c, std::move(op), reply_changed);
    return;
  }
  read_modify_write(
    c, std::string{c.arg(1)}, op_code::ttl,
    [fl, when, expires](const op_reply& cur) {
      rmw_plan plan;
      auto zero = [](reply_writer& w, const op_reply&) {
        w.integer(0);
      };
      plan.reply = zero;
      if (!cur.found) {
        return plan;
      }
      bool has = cur.expires_ms != cache::no_expiry;
      if (((fl & nx) != 0 && has) || ((fl & xx) != 0 && !has)
          || ((fl & gt) != 0 && (!has || when <= cur.expires_ms))
          || ((fl & lt) != 0 && has && when >= cur.expires_ms)) {
        return plan;
      }
      auto op = make(op_code::expire, "");
      op.expires_ms = expires;
      plan.write = std::move(op);
      plan.reply = reply_changed;
      return plan;
    });
}

void cmd_expire(const context& c) {
  expire_like(c, 1000, false, "expire");
}

void cmd_pexpire(const context& c) {
  expire_like(c, 1, false, "pexpire");
}

void cmd_expireat(const context& c) {
  expire_like(c, 1000, true, "expireat");
}

void cmd_pexpireat(const context& c) {
  expire_like(c, 1, true, "pexpireat");
}

void cmd_persist(const context& c) {
  auto op = make(op_code::expire, c.arg(1));
  op.expires_ms = cache::no_expiry;
  run_one(c, std::move(op), reply_changed);
}

// -- the table ----------------------------------------------------------------

// Sorted by name. Flags and key positions as redis-server 7.0's COMMAND
// INFO gives them.
constexpr command_def commands[] = {
  {"append", 3, cmd_append, false, "write denyoom fast", 1, 1, 1, "string",
   "Appends a string to the value of a key"},
  {"auth", -2, cmd_auth, true, "noscript loading stale fast no_auth allow_busy",
   0, 0, 0, "connection", "Authenticates the connection"},
  {"bitcount", -2, cmd_bitcount, false, "readonly", 1, 1, 1, "bitmap",
   "Count set bits in a string"},
  {"bitpos", -3, cmd_bitpos, false, "readonly", 1, 1, 1, "bitmap",
   "Find first bit set or clear in a string"},
  {"client", -2, cmd_client, false, "", 0, 0, 0, "connection",
   "A container for client connection commands"},
  {"command", -1, cmd_command, false, "loading stale", 0, 0, 0, "server",
   "Returns detailed information about all commands"},
  {"config", -2, cmd_config, false, "", 0, 0, 0, "server",
   "A container for server configuration commands"},
  {"copy", -3, cmd_copy, false, "write denyoom", 1, 2, 1, "generic",
   "Copy a key"},
  {"dbsize", 1, cmd_dbsize, false, "readonly fast", 0, 0, 0, "server",
   "Returns the number of keys in the database"},
  {"decr", 2, cmd_decr, false, "write denyoom fast", 1, 1, 1, "string",
   "Decrements the integer value of a key by one"},
  {"decrby", 3, cmd_decrby, false, "write denyoom fast", 1, 1, 1, "string",
   "Decrements a number from the integer value of a key"},
  {"del", -2, cmd_del, false, "write", 1, -1, 1, "generic",
   "Deletes one or more keys"},
  {"discard", 1, cmd_discard, false, "noscript loading stale fast allow_busy",
   0, 0, 0, "transactions", "Discard all commands issued after MULTI"},
  {"echo", 2, cmd_echo, false, "loading stale fast", 0, 0, 0, "connection",
   "Returns the given string"},
  {"exec", 1, cmd_exec, false, "noscript loading stale skip_slowlog", 0, 0, 0,
   "transactions", "Execute all commands issued after MULTI"},
  {"exists", -2, cmd_exists, false, "readonly fast", 1, -1, 1, "generic",
   "Determines whether one or more keys exist"},
  {"expire", -3, cmd_expire, false, "write fast", 1, 1, 1, "generic",
   "Sets the expiration time of a key in seconds"},
  {"expireat", -3, cmd_expireat, false, "write fast", 1, 1, 1, "generic",
   "Sets the expiration time of a key to a Unix timestamp"},
  {"expiretime", 2, cmd_expiretime, false, "readonly fast", 1, 1, 1, "generic",
   "Returns the expiration time of a key as a Unix timestamp"},
  {"flushall", -1, cmd_flushall, false, "write", 0, 0, 0, "server",
   "Removes all keys from all databases"},
  {"flushdb", -1, cmd_flushdb, false, "write", 0, 0, 0, "server",
   "Remove all keys from the current database"},
  {"get", 2, cmd_get, false, "readonly fast", 1, 1, 1, "string",
   "Returns the string value of a key"},
  {"getbit", 3, cmd_getbit, false, "readonly fast", 1, 1, 1, "bitmap",
   "Returns the bit value at offset in the string value stored at key"},
  {"getdel", 2, cmd_getdel, false, "write fast", 1, 1, 1, "string",
   "Returns the string value of a key after deleting the key"},
  {"getex", -2, cmd_getex, false, "write fast", 1, 1, 1, "string",
   "Returns the string value of a key after setting its expiration time"},
  {"getrange", 4, cmd_getrange, false, "readonly", 1, 1, 1, "string",
   "Returns a substring of the string stored at a key"},
  {"getset", 3, cmd_getset, false, "write denyoom fast", 1, 1, 1, "string",
   "Returns the previous string value of a key after setting it to a new "
   "value"},
  {"hello", -1, cmd_hello, true,
   "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "connection",
   "Handshakes with the Redis server"},
  {"incr", 2, cmd_incr, false, "write denyoom fast", 1, 1, 1, "string",
   "Increments the integer value of a key by one"},
  {"incrby", 3, cmd_incrby, false, "write denyoom fast", 1, 1, 1, "string",
   "Increments the integer value of a key by a number"},
  {"incrbyfloat", 3, cmd_incrbyfloat, false, "write denyoom fast", 1, 1, 1,
   "string", "Increment the floating point value of a key by a number"},
  {"info", -1, cmd_info, false, "loading stale", 0, 0, 0, "server",
   "Returns information and statistics about the server"},
  {"keys", 2, cmd_keys, false, "readonly", 0, 0, 0, "generic",
   "Returns all key names that match a pattern"},
  {"memory", -2, cmd_memory, false, "", 0, 0, 0, "server",
   "A container for memory diagnostics commands"},
  {"mget", -2, cmd_mget, false, "readonly fast", 1, -1, 1, "string",
   "Atomically returns the string values of one or more keys"},
  {"move", 3, cmd_move, false, "write fast", 1, 1, 1, "generic",
   "Move a key to another database"},
  {"mset", -3, cmd_mset, false, "write denyoom", 1, -1, 2, "string",
   "Sets the string values of one or more keys"},
  {"msetnx", -3, cmd_msetnx, false, "write denyoom", 1, -1, 2, "string",
   "Sets the string values of one or more keys, only if none exist"},
  {"multi", 1, cmd_multi, false, "noscript loading stale fast allow_busy", 0, 0,
   0, "transactions", "Mark the start of a transaction block"},
  {"mycel.bucket", -2, cmd_mycel_bucket, false, "admin", 0, 0, 0, "server",
   "Creates, drops, lists and describes Mycel buckets"},
  {"mycel.use", 2, cmd_mycel_use, false, "fast", 0, 0, 0, "connection",
   "Switches the connection to a named Mycel bucket"},
  {"persist", 2, cmd_persist, false, "write fast", 1, 1, 1, "generic",
   "Removes the expiration time of a key"},
  {"pexpire", -3, cmd_pexpire, false, "write fast", 1, 1, 1, "generic",
   "Sets the expiration time of a key in milliseconds"},
  {"pexpireat", -3, cmd_pexpireat, false, "write fast", 1, 1, 1, "generic",
   "Sets the expiration time of a key to a Unix milliseconds timestamp"},
  {"pexpiretime", 2, cmd_pexpiretime, false, "readonly fast", 1, 1, 1,
   "generic",
   "Returns the expiration time of a key as a Unix milliseconds timestamp"},
  {"ping", -1, cmd_ping, false, "fast", 0, 0, 0, "connection",
   "Returns the server's liveliness response"},
  {"psetex", 4, cmd_psetex, false, "write denyoom", 1, 1, 1, "string",
   "Sets both string value and expiration time in milliseconds of a key"},
  {"pttl", 2, cmd_pttl, false, "readonly fast", 1, 1, 1, "generic",
   "Returns the expiration time in milliseconds of a key"},
  {"quit", -1, cmd_quit, true, "noscript loading stale fast no_auth allow_busy",
   0, 0, 0, "connection", "Closes the connection"},
  {"randomkey", 1, cmd_randomkey, false, "readonly", 0, 0, 0, "generic",
   "Returns a random key name from the database"},
  {"rename", 3, cmd_rename, false, "write", 1, 2, 1, "generic", "Rename a key"},
  {"renamenx", 3, cmd_renamenx, false, "write fast", 1, 2, 1, "generic",
   "Rename a key, only if the new key does not exist"},
  {"reset", 1, cmd_reset, true,
   "noscript loading stale fast no_auth allow_busy", 0, 0, 0, "connection",
   "Resets the connection"},
  {"scan", -2, cmd_scan, false, "readonly", 0, 0, 0, "generic",
   "Iterates over the key names in the database"},
  {"select", 2, cmd_select, false, "loading stale fast", 0, 0, 0, "connection",
   "Changes the selected database"},
  {"set", -3, cmd_set, false, "write denyoom", 1, 1, 1, "string",
   "Sets the string value of a key, ignoring its type"},
  {"setbit", 4, cmd_setbit, false, "write denyoom", 1, 1, 1, "bitmap",
   "Sets or clears the bit at offset in the string value stored at key"},
  {"setex", 4, cmd_setex, false, "write denyoom", 1, 1, 1, "string",
   "Sets the string value and expiration time of a key"},
  {"setnx", 3, cmd_setnx, false, "write denyoom fast", 1, 1, 1, "string",
   "Set the string value of a key only when the key doesn't exist"},
  {"setrange", 4, cmd_setrange, false, "write denyoom", 1, 1, 1, "string",
   "Overwrites a part of a string value with another by an offset"},
  {"strlen", 2, cmd_strlen, false, "readonly fast", 1, 1, 1, "string",
   "Returns the length of a string value"},
  {"time", 1, cmd_time, false, "loading stale fast", 0, 0, 0, "server",
   "Returns the server time"},
  {"ttl", 2, cmd_ttl, false, "readonly fast", 1, 1, 1, "generic",
   "Returns the expiration time in seconds of a key"},
  {"type", 2, cmd_type, false, "readonly fast", 1, 1, 1, "generic",
   "Determines the type of value stored at a key"},
  {"unlink", -2, cmd_del, false, "write fast", 1, -1, 1, "generic",
   "Asynchronously deletes one or more keys"},
  {"unwatch", 1, cmd_unwatch, false, "noscript loading stale fast allow_busy",
   0, 0, 0, "transactions", "Forget about all watched keys"},
  {"watch", -2, cmd_watch, false, "noscript loading stale fast allow_busy", 1,
   -1, 1, "transactions",
   "Watch the given keys to determine execution of the MULTI/EXEC block"},
};

const command_def* find_command(std::string_view name) {
  auto key = lower(name);
  auto* end = std::end(commands);
  auto* i = std::lower_bound(std::begin(commands), end, key,
                             [](const command_def& d, const std::string& k) {
                               return d.name < k;
                             });
  return i != end && i->name == key ? i : nullptr;
}

/// Redis 7.0's text for an unknown command: the name (at most 128 bytes)
/// and the first arguments, quoted, while less than 128 bytes are listed.
std::string unknown_command(const command& cmd) {
  std::string args;
  for (size_t i = 1; i < cmd.args.size() && args.size() < 128; ++i) {
    auto room = 128 - args.size();
    args += fmt::format("'{}' ", c_string(cmd.args[i]).substr(0, room));
  }
  return fmt::format("ERR unknown command '{}', with args beginning with: {}",
                     c_string(cmd.args[0]).substr(0, 128), args);
}

} // namespace

bool command_is_readonly(int index) {
  // Asked for every GET: the flags are searched once.
  static const auto readonly = [] {
    std::array<bool, std::size(commands)> out{};
    for (size_t i = 0; i < out.size(); ++i) {
      out[i] = commands[i].flags.find("readonly") != std::string_view::npos;
    }
    return out;
  }();
  return index >= 0 && static_cast<size_t>(index) < readonly.size()
         && readonly[static_cast<size_t>(index)];
}

std::span<const command_def> command_table() {
  return {std::begin(commands), std::end(commands)};
}

} // namespace detail

void flush_ops(caf::event_based_actor* self,
               const std::shared_ptr<op_access>& access) {
  for (auto& [bucket, ln] : access->lanes) {
    detail::start_round(self, access, bucket, ln);
  }
}

bool is_sequential(const command& cmd) {
  // Several steps each (a read, then a write on what was read; a read,
  // then writes elsewhere; a walk over partitions; a drop and a create):
  // they run alone.
  static constexpr std::string_view names[] = {
    "append",   "copy",    "exec",    "dbsize",    "expire",       "expireat",
    "flushall", "flushdb", "getdel",  "getex",     "incrbyfloat",  "keys",
    "move",     "msetnx",  "pexpire", "pexpireat", "randomkey",    "rename",
    "renamenx", "scan",    "setbit",  "setrange",  "mycel.bucket",
  };
  // Asked twice for every command: the names' lengths first (GET, SET
  // and DEL have none of them), then compared in place, not lowered.
  static constexpr auto lengths = [] {
    uint64_t mask = 0;
    for (auto name : names) {
      mask |= uint64_t{1} << name.size();
    }
    return mask;
  }();
  if (cmd.args.empty() || cmd.args[0].size() >= 64
      || ((lengths >> cmd.args[0].size()) & 1) == 0) {
    return false;
  }
  return std::any_of(std::begin(names), std::end(names),
                     [&](std::string_view name) {
                       return detail::iequals(cmd.args[0], name);
                     });
}

size_t command_count() {
  return std::size(detail::commands);
}

std::string_view command_name(size_t i) {
  return i < std::size(detail::commands) ? detail::commands[i].name
                                         : std::string_view{"unknown"};
}

void run_command(const command& cmd, session& s,
                 const std::shared_ptr<pending_reply>& slot,
                 const command_env& env) {
  using namespace detail;
  context c{cmd, s, slot, env};
  // A command refused before it runs; inside MULTI it also dooms the
  // transaction (EXEC answers EXECABORT), as Redis's flagTransaction.
  const command_def* def = nullptr;
  auto refuse = [&](std::string_view text) {
    slot->rejected = true;
    if (s.in_multi && def != nullptr && def->run == cmd_exec) {
      // EXEC itself refused: the transaction ends with the reason.
      s.end_multi();
      constexpr std::string_view err = "ERR ";
      c.error(
        fmt::format("EXECABORT Transaction discarded because of: {}",
                    text.starts_with(err) ? text.substr(err.size()) : text));
      return;
    }
    if (s.in_multi) {
      s.multi_dirty = true;
    }
    c.error(text);
  };
  def = find_command(cmd.args[0]);
  if (def == nullptr) {
    s.last_command = "unknown";
    refuse(!s.authenticated ? "NOAUTH Authentication required."
                            : unknown_command(cmd));
    return;
  }
  slot->command = static_cast<int>(def - std::begin(commands));
  s.last_command = std::string{def->name};
  if (!s.authenticated && !def->no_auth) {
    refuse("NOAUTH Authentication required.");
    return;
  }
  auto argc = static_cast<int>(cmd.args.size());
  if ((def->arity > 0 && argc != def->arity)
      || (def->arity < 0 && argc < -def->arity)) {
    refuse(
      fmt::format("ERR wrong number of arguments for '{}' command", def->name));
    return;
  }
  if (s.in_multi && !runs_inside_multi(*def)) {
    queue_in_multi(c);
    return;
  }
  def->run(c);
}

} // namespace mycorrizal::resp
