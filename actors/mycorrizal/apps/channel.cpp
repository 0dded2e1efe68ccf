// SPDX-License-Identifier: Apache-2.0
// The channel actor: one (peer, application, stream) over one QUIC stream.
// Outgoing channels are the remote handles users send to; inbound channels
// serve the streams peers open. Both deliver what arrives to the local
// handler and answer or match requests.
#include "mycorrizal/apps/internal/channel.hpp"

#include "mycorrizal/apps/internal/caf_payload.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/rpc/pending.hpp"
#include "mycorrizal/runtime/actor_time.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/time.hpp"
#include "mycorrizal/transport/transport.hpp"
#include "mycorrizal/wire/frame.hpp"
#include "mycorrizal/wire/owned_frame.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>

namespace mycorrizal {

std::span<const double> app_stream_stats::latency_bounds() {
  static const std::vector<double> bounds = metrics::latency_buckets();
  return bounds;
}

} // namespace mycorrizal

namespace mycorrizal::detail {

app_stream_stats stream_counters::snapshot(std::string name) const {
  app_stream_stats out;
  out.name = std::move(name);
  auto get = [](const std::atomic<uint64_t>& x) {
    return x.load(std::memory_order_relaxed);
  };
  out.bytes_in = get(bytes_in);
  out.bytes_out = get(bytes_out);
  out.messages_in = get(messages_in);
  out.messages_out = get(messages_out);
  out.requests_out = get(requests_out);
  out.requests_failed = get(requests_failed);
  out.failed_sends = get(failed_sends);
  out.late_responses = get(late_responses);
  for (size_t code = 0; code < request_errors.size(); ++code) {
    if (auto n = get(request_errors[code]); n > 0) {
      out.request_errors.emplace_back(static_cast<errc>(code), n);
    }
  }
  out.request_latency = request_latency.read();
  out.created = created;
  auto last = last_active.load(std::memory_order_relaxed);
  out.last_active = last == 0 ? created
                              : caf::timestamp{caf::timestamp::duration{last}};
  return out;
}

namespace {

constexpr std::string_view channel_component = "apps";

/// Frames per write to the QUIC stream actor, and bytes: a batch must fit
/// the stream's queue (8 MiB by default) with room to spare.
constexpr size_t max_batch_frames = 256;
constexpr size_t max_batch_bytes = size_t{1} << 20;

/// A request of ours waiting for its RESPONSE.
struct waiting {
  caf::response_promise rp;
  /// A raw-bytes request: the answer is `raw_bytes`.
  bool raw = false;
  time_point started;
};

struct batch;

/// A request of the peer that our handler is serving.
struct serving {
  /// The peer's request id, for the RESPONSE.
  uint64_t id = 0;
  bool raw = false;
  /// The frames' delivery, acknowledged once the request is answered.
  std::shared_ptr<batch> delivery;
};

struct channel_state {
  static inline const char* name = "mycorrizal.channel";

  explicit channel_state(caf::event_based_actor*) {
    // nop
  }

  channel_options opts;
  bool inbound = false;
  /// The QUIC stream (invalid while there is none).
  stream_actor stream;
  /// Where an outgoing channel opens its stream.
  connection_actor conn;
  /// Set while the peer is unreachable and no connection is up: sends
  /// fail at once with this.
  std::optional<error> unreachable;
  bool opening = false;
  /// Bumped whenever the connection goes, so late answers are ignored.
  uint64_t conn_gen = 0;
  /// Frames not yet given to the stream actor, oldest first.
  std::deque<wire::owned_frame> outbox;
  size_t outbox_bytes = 0;
  bool flush_scheduled = false;
  /// A write to the stream actor is in flight (one at a time keeps order).
  bool writing = false;
  /// The stream's queue was full: wait for `stream_drained`.
  bool blocked = false;
  /// An inbound channel ending in words (`leave`): its STREAM_ERROR is
  /// queued; it quits once the outbox is written.
  bool leaving = false;
  rpc::pending<waiting> pending{65536};
  /// The peer's requests in our handler, each with the peer's budget as
  /// its deadline. Kept here, under the timer of `pending`, instead of as
  /// a timeout of the CAF request to the handler: CAF 0.17 hands every
  /// request timeout to its clock thread and wakes that thread for it,
  /// once per request.
  rpc::pending<serving> in_service{65536};
  /// The deadline the expiry timer is armed for.
  time_point armed = never;

  void count(std::atomic<uint64_t> stream_counters::*m, uint64_t n = 1) {
    opts.counters->add((*opts.counters).*m, n);
  }

  /// A request of ours ended at `now`: with an answer (`errc::none`) or
  /// failed with `code`.
  void ended(const waiting& w, time_point now, errc code) {
    auto& c = *opts.counters;
    c.request_latency.observe(
      std::chrono::duration<double>(now - w.started).count());
    if (code != errc::none) {
      c.add(c.requests_failed);
      c.add(c.request_errors[static_cast<uint8_t>(code)]);
    }
  }

  std::string who() const {
    std::string out = opts.peer;
    out += '/';
    out += opts.application;
    if (!opts.stream.empty()) {
      out += '/';
      out += opts.stream;
    }
    return out;
  }
};

using channel_actor = caf::stateful_actor<channel_state>;

// -- sending
// -------------------------------------------------------------------

void flush(channel_actor* self);

void schedule_flush(channel_actor* self) {
  auto& st = self->state;
  if (!st.flush_scheduled) {
    st.flush_scheduled = true;
    self->send(self, flush_atom::value);
  }
}

/// Buffers a frame for the peer.
/// @returns `queue_full` when the buffer is full.
expected<void> enqueue(channel_actor* self, wire::owned_frame f) {
  auto& st = self->state;
  if (st.unreachable && !st.conn) {
    return unexpected{error{st.unreachable->code(),
                            st.who() + ": " + st.unreachable->context()}};
  }
  auto n = wire::wire_size(f);
  // An empty outbox takes any frame (`max_message_size` bounds it).
  if (st.outbox_bytes > 0
      && st.outbox_bytes + n > st.opts.options.max_connecting_bytes) {
    return unexpected{error{errc::queue_full,
                            fmt::format("{}: {} bytes buffered, limit {}",
                                        st.who(), st.outbox_bytes,
                                        st.opts.options.max_connecting_bytes)}};
  }
  st.outbox_bytes += n;
  st.outbox.push_back(std::move(f));
  schedule_flush(self);
  return {};
}

/// Fails requests of ours with `reason`.
void fail(channel_actor* self,
          std::vector<std::pair<uint64_t, waiting>> entries,
          const error& reason) {
  if (entries.empty()) {
    return;
  }
  auto now = actor_now(self);
  auto err = make_caf_error(reason);
  for (auto& [id, w] : entries) {
    self->state.ended(w, now, reason.code());
    w.rp.deliver(err);
  }
}

void fail_all(channel_actor* self, const error& reason) {
  fail(self, self->state.pending.take_all(), reason);
}

/// We closed the connection of an outgoing channel: the member left or
/// died, or the node stops. The router's word follows and says which
/// (node_down, connection_lost, shutting_down); until then, deadlines bound
/// the pending requests.
bool closed_by_us(const channel_state& st, const error& why) {
  return why == errc::shutting_down && !st.inbound;
}

/// Frames that will not be sent: count them, fail their requests (or leave
/// them pending for the router's word, see `closed_by_us`).
void drop(channel_actor* self, std::vector<wire::owned_frame> frames,
          const error& reason) {
  auto& st = self->state;
  std::vector<std::pair<uint64_t, waiting>> failed;
  uint64_t messages = 0;
  bool keep_requests = closed_by_us(st, reason);
  for (auto& f : frames) {
    if (auto* r = std::get_if<wire::owned_request>(&f)) {
      if (keep_requests) {
        // Unanswered for now; ended by the router's word or the deadline.
      } else if (auto w = st.pending.take(r->id)) {
        failed.emplace_back(r->id, std::move(*w));
      }
      ++messages;
    } else if (std::holds_alternative<wire::owned_data>(f)) {
      ++messages;
    }
  }
  st.count(&stream_counters::failed_sends, messages);
  if (messages > 0) {
    MYCORRIZAL_LOG_DEBUG_RL(channel_component, 5,
                            "{}: {} messages not sent: {}", st.who(), messages,
                            to_string(reason));
  }
  fail(self, std::move(failed), reason);
}

void drop_outbox(channel_actor* self, const error& reason) {
  auto& st = self->state;
  std::vector<wire::owned_frame> frames(
    std::make_move_iterator(st.outbox.begin()),
    std::make_move_iterator(st.outbox.end()));
  st.outbox.clear();
  st.outbox_bytes = 0;
  drop(self, std::move(frames), reason);
}

/// The stream is gone: requests on it will not be answered.
void lose_stream(channel_actor* self, const error& reason) {
  auto& st = self->state;
  st.stream = stream_actor{};
  st.writing = false;
  st.blocked = false;
  fail_all(self, reason);
}

void open(channel_actor* self) {
  auto& st = self->state;
  if (st.inbound || st.opening || st.stream || !st.conn) {
    return;
  }
  st.opening = true;
  auto gen = st.conn_gen;
  wire::owned_stream_init init;
  init.application = st.opts.application;
  init.stream = st.opts.stream;
  self
    ->request(st.conn, std::chrono::seconds{10}, open_atom::value,
              wire::owned_frame{std::move(init)},
              caf::actor_cast<caf::actor>(self))
    .then(
      [=](stream_actor& s) {
        auto& cur = self->state;
        if (cur.conn_gen != gen) {
          self->send(s, close_atom::value);
          return;
        }
        cur.opening = false;
        cur.stream = std::move(s);
        flush(self);
      },
      [=](caf::error& err) {
        auto& cur = self->state;
        if (cur.conn_gen != gen) {
          return;
        }
        cur.opening = false;
        auto why = from_caf_error(err);
        MYCORRIZAL_LOG_DEBUG_RL(channel_component, 5,
                                "{}: cannot open a stream: {}", cur.who(),
                                to_string(why));
        drop_outbox(self, why);
      });
}

/// A leaving channel whose outbox is written: our side of the stream
/// ends after the STREAM_ERROR, and the channel with it.
void done_leaving(channel_actor* self) {
  auto& st = self->state;
  if (!st.leaving || !st.outbox.empty() || st.writing) {
    return;
  }
  if (st.stream) {
    self->send(st.stream, close_atom::value);
    st.stream = stream_actor{};
  }
  self->quit();
}

/// Hands the buffered frames to the stream actor, one batch at a time.
void flush(channel_actor* self) {
  auto& st = self->state;
  if (st.outbox.empty() || st.writing || st.blocked) {
    done_leaving(self);
    return;
  }
  if (!st.stream) {
    if (st.inbound) {
      drop_outbox(self, error{errc::connection_lost,
                              st.who() + ": the stream ended"});
    } else {
      open(self);
    }
    return;
  }
  std::vector<wire::owned_frame> batch;
  size_t bytes = 0;
  while (!st.outbox.empty() && batch.size() < max_batch_frames
         && (batch.empty() || bytes < max_batch_bytes)) {
    bytes += wire::wire_size(st.outbox.front());
    batch.push_back(std::move(st.outbox.front()));
    st.outbox.pop_front();
  }
  st.outbox_bytes -= bytes;
  st.writing = true;
  auto target = st.stream;
  // The stream encodes from our frames (no copy of the payloads); we keep
  // them to put back on `queue_full` or to fail their requests.
  auto shared
    = std::make_shared<std::vector<wire::owned_frame>>(std::move(batch));
  self->request(target, caf::infinite, write_atom::value, shared_frames{shared})
    .then(
      [=] {
        auto& cur = self->state;
        uint64_t messages = 0;
        for (auto& f : *shared) {
          if (!std::holds_alternative<wire::owned_response>(f)) {
            ++messages;
          }
        }
        cur.count(&stream_counters::messages_out, messages);
        cur.count(&stream_counters::bytes_out, bytes);
        cur.opts.counters->touch();
        if (cur.stream == target) {
          cur.writing = false;
          flush(self);
        }
      },
      [=](caf::error& err) {
        auto& cur = self->state;
        auto why = from_caf_error(err);
        if (why == errc::queue_full && cur.stream == target) {
          // Keep them, in order, until the stream has room.
          cur.writing = false;
          cur.blocked = true;
          for (auto i = shared->rbegin(); i != shared->rend(); ++i) {
            cur.outbox_bytes += wire::wire_size(*i);
            cur.outbox.push_front(std::move(*i));
          }
          return;
        }
        if (cur.stream == target) {
          cur.writing = false;
        }
        drop(self, std::move(*shared), why);
        done_leaving(self);
      });
}

void arm(channel_actor* self) {
  auto& st = self->state;
  auto next = std::min(st.pending.next_deadline(),
                       st.in_service.next_deadline());
  if (next == never || next >= st.armed) {
    return;
  }
  st.armed = next;
  auto delay = std::max(next - actor_now(self), duration::zero());
  self->delayed_send(self, delay, expire_atom::value);
}

/// Sends a request; `rp` gets the answer.
void start_request(channel_actor* self, std::vector<std::byte> payload,
                   uint8_t flags, caf::response_promise rp, bool raw,
                   caf::timespan timeout) {
  auto& st = self->state;
  timeout = std::min(timeout, st.opts.options.request_timeout);
  auto now = actor_now(self);
  auto id = st.pending.add(waiting{rp, raw, now}, now + timeout);
  if (!id) {
    st.count(&stream_counters::failed_sends);
    rp.deliver(make_caf_error(
      error{errc::queue_full, fmt::format("{}: {} requests pending", st.who(),
                                          st.pending.size())}));
    return;
  }
  st.count(&stream_counters::requests_out);
  wire::owned_request req;
  req.id = *id;
  req.timeout_ms = static_cast<uint32_t>(std::clamp<int64_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count(), 1,
    UINT32_MAX));
  req.flags = flags;
  req.payload = std::move(payload);
  if (auto ok = enqueue(self, std::move(req)); !ok) {
    if (auto w = st.pending.take(*id)) {
      fail(self, {{*id, std::move(*w)}}, ok.error());
    }
    st.count(&stream_counters::failed_sends);
    return;
  }
  arm(self);
}

error too_large(const channel_state& st, size_t n) {
  return error{errc::too_large,
               fmt::format("{}: a {}-byte message exceeds the {}-byte limit",
                           st.who(), n, st.opts.options.max_message_size)};
}

/// A message a local actor sent to us (the remote handle): to the peer.
caf::result<caf::message> on_local(channel_actor* self, caf::message msg) {
  auto& st = self->state;
  bool is_request = self->current_message_id().is_request();
  auto bytes = encode_caf_message(self->system(), msg);
  if (bytes && bytes->size() > st.opts.options.max_message_size) {
    bytes = unexpected{too_large(st, bytes->size())};
  }
  if (!bytes) {
    st.count(&stream_counters::failed_sends);
    MYCORRIZAL_LOG_WARN_RL(channel_component, 1, "{}",
                           to_string(bytes.error()));
    if (is_request) {
      return make_caf_error(bytes.error());
    }
    return caf::message{};
  }
  if (is_request) {
    auto rp = self->make_response_promise();
    start_request(self, std::move(*bytes), wire::flag_caf_message, rp, false,
                  st.opts.options.request_timeout);
    return rp;
  }
  wire::owned_data d;
  d.flags = wire::flag_caf_message;
  d.payload = std::move(*bytes);
  if (auto ok = enqueue(self, std::move(d)); !ok) {
    st.count(&stream_counters::failed_sends);
    MYCORRIZAL_LOG_WARN_RL(channel_component, 1, "a message was dropped: {}",
                           to_string(ok.error()));
  }
  return caf::message{};
}

// -- receiving
// -----------------------------------------------------------------

/// Answers the peer's request `id`.
void respond(channel_actor* self, uint64_t id, errc status, uint8_t flags,
             std::vector<std::byte> payload) {
  if (self->state.leaving) {
    return; // the peer failed the request with the STREAM_ERROR's reason
  }
  wire::owned_response r;
  r.id = id;
  r.status = status;
  r.flags = flags;
  r.payload = std::move(payload);
  if (auto ok = enqueue(self, std::move(r)); !ok) {
    MYCORRIZAL_LOG_WARN_RL(channel_component, 1, "{}: response {} dropped: {}",
                           self->state.who(), id, to_string(ok.error()));
  }
}

void respond_error(channel_actor* self, uint64_t id, const error& e) {
  auto text = std::string{e.context()};
  std::vector<std::byte> payload(text.size());
  std::memcpy(payload.data(), text.data(), text.size());
  respond(self, id, e.code(), 0, std::move(payload));
}

/// The handler's error as the requester should see it.
error handler_error(channel_actor* self, const caf::error& e) {
  auto& st = self->state;
  if (e == caf::sec::unexpected_message) {
    return error{errc::no_handler,
                 fmt::format("the handler of '{}' on {} has no case for this "
                             "message",
                             st.opts.application, st.opts.self_name)};
  }
  if (e == caf::sec::request_timeout) {
    return error{errc::timeout,
                 fmt::format("the handler of '{}' on {} did not answer in time",
                             st.opts.application, st.opts.self_name)};
  }
  if (e == caf::sec::request_receiver_down) {
    // The handler ended with the request in its mailbox (or before it
    // arrived): the router unregisters the application as soon as it
    // hears, so the requester gets what it gets from then on.
    return error{errc::unknown_application,
                 fmt::format("the handler of '{}' on {} has ended",
                             st.opts.application, st.opts.self_name)};
  }
  if (e.category() == errc_category) {
    return from_caf_error(e);
  }
  return error{errc::remote_error, self->system().render(e)};
}

/// The handler answered the peer's request `id` with `reply`.
void answer(channel_actor* self, uint64_t id, bool raw, caf::message reply) {
  auto& st = self->state;
  if (raw) {
    if (reply.empty()) {
      respond(self, id, errc::none, 0, {});
    } else if (reply.match_elements<raw_bytes>()) {
      respond(self, id, errc::none, 0,
              std::move(reply.get_mutable_as<raw_bytes>(0).data));
    } else {
      respond_error(self, id,
                    error{errc::remote_error,
                          "the handler of '" + st.opts.application
                            + "' answered a raw request with "
                            + describe_message(reply)
                            + " instead of mycorrizal::raw_bytes"});
    }
    return;
  }
  auto bytes = encode_caf_message(self->system(), reply);
  if (bytes && bytes->size() > st.opts.options.max_message_size) {
    bytes = unexpected{too_large(st, bytes->size())};
  }
  if (!bytes) {
    respond_error(self, id, bytes.error());
    return;
  }
  respond(self, id, errc::none, wire::flag_caf_message, std::move(*bytes));
}

/// Tracks the deliveries of one `stream_frames`; its reply (which lets the
/// peer send more) goes once the handler processed all of them.
struct batch {
  caf::response_promise rp;
  size_t left = 0;
  void done() {
    if (--left == 0) {
      rp.deliver(caf::unit);
    }
  }
};

/// Builds what the handler receives.
expected<caf::message> to_message(channel_actor* self, uint8_t flags,
                                  std::vector<std::byte>& payload,
                                  const wire::owned_request* req) {
  auto& st = self->state;
  if ((flags & wire::flag_caf_message) != 0) {
    return decode_caf_message(self->system(), payload);
  }
  if (req != nullptr) {
    app_request r{st.opts.peer, st.opts.application, st.opts.stream,
                  std::move(payload),
                  std::chrono::milliseconds{req->timeout_ms}};
    return caf::make_message(std::move(r));
  }
  return caf::make_message(app_message{st.opts.peer, st.opts.application,
                                       st.opts.stream, std::move(payload)});
}

void on_data(channel_actor* self, wire::owned_data& d,
             const std::shared_ptr<batch>& b) {
  auto& st = self->state;
  auto msg = to_message(self, d.flags, d.payload, nullptr);
  if (!msg || !st.opts.handler) {
    st.count(&stream_counters::failed_sends);
    MYCORRIZAL_LOG_WARN_RL(channel_component, 1, "{}: message dropped: {}",
                           st.who(),
                           msg ? "no handler" : to_string(msg.error()));
    b->done();
    return;
  }
  self->request(st.opts.handler, caf::infinite, std::move(*msg))
    .then(
      [b] {
        b->done();
      },
      [=](caf::error& e) {
        if (e != caf::sec::unexpected_response) {
          MYCORRIZAL_LOG_DEBUG_RL(channel_component, 5, "{}: handler: {}",
                                  self->state.who(), self->system().render(e));
        }
        b->done();
      });
}

void on_request(channel_actor* self, wire::owned_request& r,
                const std::shared_ptr<batch>& b) {
  auto& st = self->state;
  auto id = r.id;
  bool raw = (r.flags & wire::flag_caf_message) == 0;
  auto msg = to_message(self, r.flags, r.payload, &r);
  if (!msg) {
    respond_error(self, id, msg.error());
    b->done();
    return;
  }
  if (!st.opts.handler) {
    respond_error(self, id,
                  error{errc::no_handler,
                        fmt::format("application '{}' on {} has no handler",
                                    st.opts.application, st.opts.self_name)});
    b->done();
    return;
  }
  caf::timespan budget
    = r.timeout_ms > 0 ? caf::timespan{std::chrono::milliseconds{r.timeout_ms}}
                       : st.opts.options.request_timeout;
  auto key = st.in_service.add(serving{id, raw, b}, actor_now(self) + budget);
  if (!key) {
    respond_error(self, id, key.error());
    b->done();
    return;
  }
  arm(self);
  // The budget is ours to keep (`in_service`): an answer after it is dropped.
  self->request(st.opts.handler, caf::infinite, std::move(*msg))
    .then(
      [=, k = *key] {
        if (auto s = self->state.in_service.take(k)) {
          answer(self, s->id, s->raw, caf::message{});
          s->delivery->done();
        }
      },
      [=, k = *key](caf::error& e) {
        auto s = self->state.in_service.take(k);
        if (!s) {
          return;
        }
        // CAF 0.17 reports a reply no case of ours matched as
        // unexpected_response carrying the reply: that is the answer.
        if (e == caf::sec::unexpected_response) {
          answer(self, s->id, s->raw, e.context());
        } else {
          respond_error(self, s->id, handler_error(self, e));
        }
        s->delivery->done();
      });
}

/// What answers a request of ours, given its RESPONSE frame.
expected<caf::message> answer_of(channel_actor* self, const waiting& w,
                                 wire::owned_response& r) {
  if (r.status != errc::none) {
    std::string text(reinterpret_cast<const char*>(r.payload.data()),
                     r.payload.size());
    return unexpected{error{r.status, std::move(text)}};
  }
  bool caf_msg = (r.flags & wire::flag_caf_message) != 0;
  if (w.raw) {
    if (caf_msg) {
      return unexpected{
        error{errc::remote_error, "a CAF message answered a raw request"}};
    }
    return caf::make_message(raw_bytes{std::move(r.payload)});
  }
  if (!caf_msg) {
    return unexpected{
      error{errc::remote_error, "raw bytes answered a CAF request"}};
  }
  return decode_caf_message(self->system(), r.payload);
}

void on_response(channel_actor* self, wire::owned_response& r) {
  auto& st = self->state;
  auto w = st.pending.take(r.id);
  if (!w) {
    st.count(&stream_counters::late_responses);
    return;
  }
  auto msg = answer_of(self, *w, r);
  st.ended(*w, actor_now(self), msg ? errc::none : msg.error().code());
  if (!msg) {
    w->rp.deliver(make_caf_error(msg.error()));
    return;
  }
  w->rp.deliver(std::move(*msg));
}

caf::result<void> on_frames(channel_actor* self, stream_frames& msg) {
  auto& st = self->state;
  auto b = std::make_shared<batch>();
  b->rp = self->make_response_promise();
  b->left = 1; // released at the end of this function
  uint64_t messages = 0;
  uint64_t bytes = 0;
  for (auto& f : msg.frames) {
    bytes += wire::wire_size(f);
    if (auto* d = std::get_if<wire::owned_data>(&f)) {
      ++messages;
      ++b->left;
      on_data(self, *d, b);
    } else if (auto* r = std::get_if<wire::owned_request>(&f)) {
      ++messages;
      ++b->left;
      on_request(self, *r, b);
    } else if (auto* resp = std::get_if<wire::owned_response>(&f)) {
      on_response(self, *resp);
    } else if (auto* e = std::get_if<wire::owned_stream_error>(&f)) {
      // Terminal: the stream's end follows with this reason.
      MYCORRIZAL_LOG_DEBUG_RL(channel_component, 5,
                              "{}: peer ended the stream: {}", st.who(),
                              e->message);
    } else {
      MYCORRIZAL_LOG_WARN_RL(channel_component, 1,
                             "{}: unexpected {} frame ignored", st.who(),
                             wire::to_string(wire::type_of(f)));
    }
  }
  st.count(&stream_counters::messages_in, messages);
  st.count(&stream_counters::bytes_in, bytes);
  st.opts.counters->touch();
  b->done();
  return b->rp;
}

/// Ends the channel: our side of the stream closes, requests fail.
void shut(channel_actor* self, const error& reason) {
  auto& st = self->state;
  drop_outbox(self, reason);
  fail_all(self, reason);
  if (st.stream) {
    self->send(st.stream, close_atom::value);
    st.stream = stream_actor{};
  }
}

/// How long a leaving channel waits for a peer that reads nothing.
constexpr auto leave_grace = std::chrono::seconds{2};

/// Ends an inbound channel in words when its application goes (it was
/// unregistered, its handler ended): what is queued goes out, then a
/// STREAM_ERROR with `reason`, then our side's end. The peer fails its
/// requests on the stream with that reason (`unknown_application`), not
/// as a lost connection, and the next ones it sends are refused the same
/// way. Anything else (the node stops, a second close, no stream) shuts
/// at once.
void leave(channel_actor* self, const error& reason) {
  auto& st = self->state;
  if (!st.inbound || !st.stream || st.leaving || reason == errc::none
      || reason == errc::shutting_down) {
    shut(self, reason);
    self->quit();
    return;
  }
  // Their answers would follow the STREAM_ERROR: none will be sent.
  for (auto& [_, s] : st.in_service.take_all()) {
    s.delivery->done();
  }
  wire::owned_frame e{
    wire::owned_stream_error{reason.code(), reason.context()}};
  st.outbox_bytes += wire::wire_size(e);
  st.outbox.push_back(std::move(e));
  st.leaving = true;
  flush(self);
  self->delayed_send(self, leave_grace, channel_close{reason});
}

caf::behavior channel_impl(channel_actor* self, channel_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.inbound = static_cast<bool>(st.opts.accepted);
  st.stream = st.opts.accepted;
  st.conn = st.opts.connection;
  st.unreachable = st.opts.unreachable;
  st.pending = rpc::pending<waiting>{st.opts.options.max_pending_requests};
  self->set_default_handler(
    [](caf::scheduled_actor* ptr,
       caf::message_view& x) -> caf::result<caf::message> {
      auto* me = static_cast<channel_actor*>(ptr);
      return on_local(me, x.move_content_to_message());
    });
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto why = from_caf_error(msg.reason);
    if (!why) {
      why = error{errc::shutting_down, "the node is stopping"};
    }
    shut(self, why);
    self->quit(msg.reason);
  });
  return {
    [=](stream_frames& msg) -> caf::result<void> {
      return on_frames(self, msg);
    },
    [=](stream_end& msg) {
      auto& cur = self->state;
      if (msg.stream != cur.stream) {
        return;
      }
      // A stream that breaks with its connection (idle timeout, reset)
      // means the connection was lost; refusals and stops keep their code.
      error why;
      if (!msg.reason) {
        why = error{errc::connection_lost,
                    cur.who() + ": the peer closed the stream"};
      } else if (msg.reason == errc::timeout) {
        why = error{errc::connection_lost,
                    cur.who() + ": " + to_string(msg.reason)};
      } else if (closed_by_us(cur, msg.reason)) {
        cur.stream = stream_actor{};
        cur.writing = false;
        cur.blocked = false;
        return;
      } else {
        why = msg.reason;
      }
      lose_stream(self, why);
      if (cur.inbound) {
        drop_outbox(self, why);
        self->quit();
      } else if (!cur.outbox.empty()) {
        schedule_flush(self); // reopens
      }
    },
    [=](stream_drained& msg) {
      auto& cur = self->state;
      if (msg.stream == cur.stream) {
        cur.blocked = false;
        flush(self);
      }
    },
    [=](flush_atom) {
      self->state.flush_scheduled = false;
      flush(self);
    },
    [=](expire_atom) {
      auto& cur = self->state;
      cur.armed = never;
      auto now = actor_now(self);
      auto due = cur.pending.expire(now);
      fail(self, std::move(due),
           error{errc::timeout,
                 "no answer from " + cur.opts.peer + " in time"});
      for (auto& [_, s] : cur.in_service.expire(now)) {
        respond_error(self, s.id,
                      handler_error(self, caf::sec::request_timeout));
        s.delivery->done();
      }
      arm(self);
    },
    [=](channel_connect& msg) {
      auto& cur = self->state;
      if (cur.conn == msg.connection) {
        return;
      }
      cur.conn = std::move(msg.connection);
      cur.unreachable.reset();
      ++cur.conn_gen;
      cur.opening = false;
      if (cur.stream) {
        lose_stream(self, error{errc::connection_lost,
                                cur.who() + ": replaced by a new connection"});
      }
      flush(self);
    },
    [=](channel_lost& msg) {
      auto& cur = self->state;
      cur.conn = connection_actor{};
      ++cur.conn_gen;
      cur.opening = false;
      if (msg.unreachable) {
        cur.unreachable = msg.reason;
      }
      lose_stream(self, msg.reason);
      drop_outbox(self, msg.reason);
      if (cur.inbound) {
        self->quit();
      }
    },
    [=](channel_handler& msg) {
      self->state.opts.handler = std::move(msg.handler);
    },
    [=](channel_send& msg) -> caf::result<void> {
      auto& cur = self->state;
      if (msg.payload.size() > cur.opts.options.max_message_size) {
        cur.count(&stream_counters::failed_sends);
        return make_caf_error(too_large(cur, msg.payload.size()));
      }
      wire::owned_data d;
      d.payload = std::move(msg.payload);
      if (auto ok = enqueue(self, std::move(d)); !ok) {
        cur.count(&stream_counters::failed_sends);
        return make_caf_error(ok.error());
      }
      return caf::unit;
    },
    [=](channel_request& msg) -> caf::result<raw_bytes> {
      auto& cur = self->state;
      if (msg.payload.size() > cur.opts.options.max_message_size) {
        cur.count(&stream_counters::failed_sends);
        return make_caf_error(too_large(cur, msg.payload.size()));
      }
      auto rp = self->make_response_promise();
      start_request(self, std::move(msg.payload), 0, rp, true, msg.timeout);
      return rp;
    },
    [=](channel_close& msg) {
      leave(self, msg.reason);
    },
  };
}

} // namespace

caf::actor spawn_channel(caf::local_actor* parent, channel_options opts) {
  return parent->spawn<caf::linked>(channel_impl, std::move(opts));
}

} // namespace mycorrizal::detail
