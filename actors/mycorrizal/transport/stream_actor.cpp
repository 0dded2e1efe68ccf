// SPDX-License-Identifier: Apache-2.0
// The stream actor: frames on one QUIC stream.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/runtime/send.hpp"
#include "mycorrizal/transport/internal/actors.hpp"
#include "mycorrizal/wire/decoder.hpp"
#include "mycorrizal/wire/encoder.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <array>
#include <deque>

namespace mycorrizal::detail {

namespace {

constexpr std::string_view stream_component = "quic";

struct stream_state {
  static inline const char* name = "mycorrizal.stream";

  stream_args args;
  /// This actor, for the last report (released when the state goes).
  stream_actor me;
  std::optional<wire::decoder> decoder;

  // -- outgoing ---------------------------------------------------------------

  /// Encoded frames not yet handed to the connection, in chunks that move
  /// to the connection whole (small frames share a chunk, a large frame has
  /// its own), so bytes are copied once: when they are encoded.
  std::deque<std::vector<std::byte>> queue;
  size_t queued_bytes = 0;
  /// Handed to the connection, not yet taken by QUIC.
  size_t in_flight = 0;
  /// `close_atom` asked for the end of our side.
  bool fin_requested = false;
  bool fin_handed = false;
  bool fin_taken = false;
  /// A pump_atom is in the mailbox.
  bool pump_pending = false;
  /// Writers refused with `queue_full`, told when there is room again.
  std::vector<caf::actor> drain_waiters;
  std::vector<caf::response_promise> close_waiters;

  // -- incoming ---------------------------------------------------------------

  /// A decoded frame not yet delivered.
  struct ready_frame {
    wire::owned_frame frame;
    /// Its wire size (what the consumer holds until it answers).
    size_t size = 0;
    /// What reopens the peer's window once the consumer answered: the
    /// size less what `early_consumed` already gave back.
    size_t consume = 0;
  };
  std::deque<ready_frame> ready;
  /// Bytes of the frame being decoded that already reopened the peer's
  /// window. A frame larger than the stream window could never complete
  /// otherwise; the decoder bounds them by the frame limit.
  size_t early_consumed = 0;
  /// Delivered and not yet answered by the consumer.
  size_t unacked = 0;
  /// The peer finished its side (all its bytes are decoded).
  bool peer_fin = false;

  /// Set once the stream is over; then writes fail with it.
  std::optional<error> ended;
  /// `stream_end` went to the consumer.
  bool end_reported = false;
  /// The connection said the stream is gone: quit once delivered.
  bool gone = false;
  /// A peer-opened stream's first frame went to the handler.
  bool asked_handler = false;

  stream_stats counters;

  stream_state() = default;
  stream_state(const stream_state&) = delete;
  stream_state& operator=(const stream_state&) = delete;

  ~stream_state() {
    notify_drained();
    auto why = ended.value_or(error{errc::shutting_down, "stream stopped"});
    for (auto& rp : close_waiters) {
      rp.deliver(make_caf_error(why));
    }
    if (!end_reported && args.consumer) {
      caf::anon_send(args.consumer, stream_end{me, why});
    }
  }

  size_t queued() const noexcept {
    return queued_bytes;
  }

  /// Tells every refused writer that it may write again.
  void notify_drained() {
    for (auto& w : drain_waiters) {
      caf::anon_send(w, stream_drained{me});
    }
    drain_waiters.clear();
  }

  /// Appends the encoding of `f` to the queue.
  expected<void> encode(const wire::owned_frame& f) {
    if (queue.empty() || queue.back().size() >= chunk_size) {
      queue.emplace_back();
    }
    auto& back = queue.back();
    auto before = back.size();
    if (auto ok = wire::append(back, wire::view(f)); !ok) {
      back.resize(before);
      return ok;
    }
    queued_bytes += back.size() - before;
    return {};
  }

  /// Appends the encoding of `f`, taking a large payload as a chunk of its
  /// own instead of copying it (`f` is left without its payload then).
  expected<void> encode_taking(wire::owned_frame& f) {
    auto* payload = payload_of(f);
    if (payload == nullptr || payload->size() < zero_copy_payload) {
      return encode(f);
    }
    std::array<std::byte, wire::max_prefix_size> prefix;
    auto n = wire::encode_prefix(wire::view(f), prefix);
    if (!n) {
      return unexpected{std::move(n).error()};
    }
    if (queue.empty() || queue.back().size() >= chunk_size) {
      queue.emplace_back();
    }
    auto& back = queue.back();
    back.insert(back.end(), prefix.begin(), prefix.begin() + *n);
    queued_bytes += *n + payload->size();
    queue.push_back(std::move(*payload));
    payload->clear();
    return {};
  }

  static std::vector<std::byte>* payload_of(wire::owned_frame& f) {
    if (auto* d = std::get_if<wire::owned_data>(&f)) {
      return &d->payload;
    }
    if (auto* r = std::get_if<wire::owned_request>(&f)) {
      return &r->payload;
    }
    if (auto* r = std::get_if<wire::owned_response>(&f)) {
      return &r->payload;
    }
    return nullptr;
  }

  /// Frames are added to the last chunk until it holds this many bytes.
  static constexpr size_t chunk_size = size_t{64} << 10;

  /// A payload this large moves into the queue as its own chunk: no copy,
  /// and no step of this actor spends milliseconds copying a big message.
  static constexpr size_t zero_copy_payload = size_t{64} << 10;
};

/// The public interface plus the connection's messages and the pump.
using stream_impl = stream_actor::extend<
  caf::reacts_to<stream_input>, caf::reacts_to<stream_taken>,
  caf::reacts_to<stream_gone>, caf::reacts_to<stream_released>,
  caf::reacts_to<pump_atom>>;

using stream_self = stream_impl::stateful_pointer<stream_state>;

void deliver(stream_self self);

/// Hands queued bytes to the connection while the in-flight budget allows.
void pump(stream_self self) {
  auto& st = self->state;
  if (st.ended) {
    return;
  }
  auto budget = st.args.options.max_in_flight_bytes;
  // A chunk moves when it fits the budget, or alone when nothing is in
  // flight (a frame larger than the budget).
  while (!st.queue.empty()
         && (st.in_flight == 0
             || st.in_flight + st.queue.front().size() <= budget)) {
    stream_output out;
    out.stream_id = st.args.stream_id;
    out.data = std::move(st.queue.front());
    st.queue.pop_front();
    st.queued_bytes -= out.data.size();
    st.in_flight += out.data.size();
    out.fin = st.fin_requested && st.queue.empty();
    st.fin_handed = out.fin;
    send_untyped(self, st.args.connection, std::move(out));
  }
  if (!st.drain_waiters.empty()
      && st.queued() <= st.args.options.max_queued_bytes / 2) {
    st.notify_drained();
  }
  if (st.fin_requested && !st.fin_handed && st.queued() == 0) {
    st.fin_handed = true;
    send_untyped(self, st.args.connection,
                 stream_output{st.args.stream_id, {}, true});
  }
}

/// Ends the stream: reports to the consumer (after what it still has to
/// get), fails waiters, and quits when nothing is left to deliver.
void finish(stream_self self, const error& why) {
  auto& st = self->state;
  if (!st.ended) {
    st.ended = why;
  }
  st.notify_drained();
  st.gone = true;
  deliver(self);
}

/// Resets the stream because of bad input or a gone consumer.
void abort_stream(stream_self self, const error& why) {
  auto& st = self->state;
  MYCORRIZAL_LOG_DEBUG_RL(stream_component, 10, "stream {} with {} reset: {}",
                          st.args.stream_id, st.args.peer_name, to_string(why));
  send_untyped(self, st.args.connection,
               stream_abort{st.args.stream_id,
                            static_cast<uint64_t>(why.code())});
  st.ready.clear();
  finish(self, why);
}

/// Refuses a peer-opened stream in words: STREAM_ERROR (the reason's code
/// and text), then the end of our side; the stream ends when the peer
/// closes its side.
void refuse(stream_self self, const error& why) {
  auto& st = self->state;
  MYCORRIZAL_LOG_DEBUG_RL(stream_component, 10, "stream {} from {} refused: {}",
                          st.args.stream_id, st.args.peer_name, to_string(why));
  auto code = why.code() == errc::none ? errc::no_handler : why.code();
  std::ignore = st.encode(wire::owned_stream_error{code, why.context()});
  st.ready.clear();
  st.fin_requested = true;
  pump(self);
  st.ended = why;
  st.notify_drained();
}

/// Decodes received bytes into ready frames.
void decode(stream_self self, const std::vector<std::byte>& data) {
  auto& st = self->state;
  wire::bytes_view input{data};
  while (!input.empty()) {
    auto f = st.decoder->next(input);
    if (!f) {
      abort_stream(self,
                   error{f.error().code(), "bad frame from " + st.args.peer_name
                                             + ": " + to_string(f.error())});
      return;
    }
    if (!*f) {
      break;
    }
    auto owned = st.decoder->take(**f);
    auto size = wire::wire_size(owned);
    auto consume = size - std::min(size, st.early_consumed);
    st.early_consumed = 0;
    st.counters.frames_in++;
    st.counters.bytes_in += size;
    if (auto* se = std::get_if<wire::owned_stream_error>(&owned)) {
      // Terminal: the peer refused or abandoned the stream, and said why.
      // The consumer gets the frame, then the end with that reason; our
      // side closes too.
      error why{se->code, "the peer refused the stream: " + se->message};
      st.ready.push_back({std::move(owned), size, consume});
      send_untyped(self, st.args.connection,
                   stream_abort{st.args.stream_id,
                                static_cast<uint64_t>(why.code())});
      finish(self, why);
      return;
    }
    st.ready.push_back({std::move(owned), size, consume});
  }
  // Bytes of an unfinished frame are ours to hold: let more of it come.
  auto partial = st.decoder->buffered();
  if (partial > st.early_consumed) {
    send_untyped(self, st.args.connection,
                 stream_consumed{st.args.stream_id,
                                 partial - st.early_consumed});
    st.early_consumed = partial;
  }
}

/// The peer finished its side: nothing may be left inside a frame.
void decode_end(stream_self self) {
  auto& st = self->state;
  if (auto ok = st.decoder->finish(); !ok) {
    abort_stream(self,
                 error{ok.error().code(), "stream from " + st.args.peer_name
                                            + " ended inside a frame"});
    return;
  }
  st.peer_fin = true;
}

/// Sends ready frames to the consumer while the unacknowledged budget
/// allows (all of them once the stream is gone), then the end.
/// The peer opened the stream and its first frame (STREAM_INIT, HELLO or
/// STREAM_ERROR) is here: the handler sees it and names the consumer.
void ask_handler(stream_self self) {
  auto& st = self->state;
  st.asked_handler = true;
  auto first = std::move(st.ready.front().frame);
  auto first_consume = st.ready.front().consume;
  st.ready.pop_front();
  stream_accepted msg;
  msg.connection = caf::actor_cast<connection_actor>(st.args.connection);
  msg.stream = caf::actor_cast<stream_actor>(self);
  msg.peer_name = st.args.peer_name;
  msg.stream_id = st.args.stream_id;
  msg.first = std::move(first);
  self->request(st.args.handler, caf::infinite, std::move(msg))
    .then(
      [=](caf::actor& consumer) {
        auto& cur = self->state;
        if (!consumer) {
          refuse(self, error{errc::no_handler, "no consumer for the stream"});
          return;
        }
        cur.args.consumer = std::move(consumer);
        // The handler took the first frame.
        if (!cur.gone) {
          send_untyped(self, cur.args.connection,
                       stream_consumed{cur.args.stream_id, first_consume});
        }
        deliver(self);
      },
      [=](caf::error& err) {
        refuse(self, from_caf_error(err));
      });
}

void deliver(stream_self self) {
  auto& st = self->state;
  if (!st.args.consumer) {
    if (st.gone) {
      // Refused, or over before it said what it is.
      self->quit();
    } else if (!st.asked_handler && !st.ready.empty() && st.args.handler) {
      ask_handler(self);
    }
    return;
  }
  auto& opts = st.args.options;
  while (!st.ready.empty()
         && (st.gone || st.unacked < opts.max_unacked_bytes)) {
    stream_frames msg;
    msg.stream = caf::actor_cast<stream_actor>(self);
    size_t bytes = 0;
    size_t consume = 0;
    while (!st.ready.empty()
           && msg.frames.size() < opts.max_frames_per_delivery) {
      bytes += st.ready.front().size;
      consume += st.ready.front().consume;
      msg.frames.push_back(std::move(st.ready.front().frame));
      st.ready.pop_front();
    }
    st.unacked += bytes;
    self->request(st.args.consumer, caf::infinite, std::move(msg))
      .then(
        [=]() {
          auto& cur = self->state;
          cur.unacked -= bytes;
          if (!cur.gone && consume > 0) {
            send_untyped(self, cur.args.connection,
                         stream_consumed{cur.args.stream_id, consume});
          }
          deliver(self);
        },
        [=](caf::error& err) {
          auto& cur = self->state;
          cur.unacked -= bytes;
          if (!cur.ended) {
            abort_stream(self, error{errc::no_handler,
                                     "the stream's consumer failed: "
                                       + to_string(from_caf_error(err))});
          }
        });
  }
  if (st.ready.empty() && !st.end_reported && (st.peer_fin || st.gone)) {
    // The peer finished (normal end) or the stream is gone (its reason).
    auto why = st.gone ? st.ended.value_or(error{}) : error{};
    if (st.peer_fin && !st.gone) {
      why = error{};
    }
    st.end_reported = true;
    send_untyped(self, st.args.consumer,
                 stream_end{caf::actor_cast<stream_actor>(self), why});
  }
  if (st.gone && st.ready.empty()) {
    self->quit();
  }
}

/// Queues `frames` (all or none); large payloads move out of the accepted
/// frames instead of being copied.
caf::result<void> enqueue(stream_self self,
                          std::vector<wire::owned_frame>& frames) {
  auto& st = self->state;
  if (st.ended) {
    return make_caf_error(*st.ended);
  }
  if (st.fin_requested) {
    return make_caf_error(
      error{errc::shutting_down, "the stream was closed for writing"});
  }
  size_t total = 0;
  for (const auto& f : frames) {
    auto v = wire::view(f);
    auto n = wire::encoded_size(v);
    if (!n) {
      return make_caf_error(n.error());
    }
    if (*n - wire::header_size > st.args.options.limits.max_frame_size) {
      return make_caf_error(
        error{errc::too_large,
              fmt::format("a {}-byte frame exceeds the {}-byte limit",
                          *n - wire::header_size,
                          st.args.options.limits.max_frame_size)});
    }
    total += *n;
  }
  // An empty queue takes any write (the frame limit bounds it), or a frame
  // larger than the queue could never be sent.
  if (st.queued() > 0
      && st.queued() + total > st.args.options.max_queued_bytes) {
    st.counters.queue_full++;
    auto who = caf::actor_cast<caf::actor>(self->current_sender());
    if (who
        && std::find(st.drain_waiters.begin(), st.drain_waiters.end(), who)
             == st.drain_waiters.end()) {
      st.drain_waiters.push_back(std::move(who));
    }
    return make_caf_error(
      error{errc::queue_full,
            fmt::format("stream {} to {}: {} bytes queued, limit {}",
                        st.args.stream_id, st.args.peer_name, st.queued(),
                        st.args.options.max_queued_bytes)});
  }
  for (auto& f : frames) {
    // Cannot fail: encoded_size accepted every frame above.
    std::ignore = st.encode_taking(f);
  }
  st.counters.frames_out += frames.size();
  st.counters.bytes_out += total;
  // After the writes already in the mailbox: they share one chunk.
  if (!st.pump_pending) {
    st.pump_pending = true;
    self->send(self, pump_atom::value);
  }
  return caf::unit;
}

stream_impl::behavior_type running(stream_self self) {
  return {
    [=](stream_input& in) {
      auto& st = self->state;
      if (st.gone) {
        return;
      }
      for (const auto& chunk : in.chunks) {
        decode(self, chunk);
        if (st.ended) {
          return;
        }
      }
      if (in.fin) {
        decode_end(self);
      }
      deliver(self);
    },
    [=](stream_taken& x) {
      auto& st = self->state;
      st.in_flight -= std::min(st.in_flight, x.n);
      if (x.fin) {
        st.fin_taken = true;
        for (auto& rp : st.close_waiters) {
          rp.deliver(caf::unit);
        }
        st.close_waiters.clear();
      }
      pump(self);
    },
    [=](stream_gone& x) {
      finish(self, x.reason);
    },
    [=](stream_released&) {
      // The buffer is freed with this message, on this actor's turn.
    },
    [=](pump_atom) {
      self->state.pump_pending = false;
      pump(self);
    },
    [=](write_atom, wire::owned_frame& f) -> caf::result<void> {
      std::vector<wire::owned_frame> one;
      one.push_back(std::move(f));
      return enqueue(self, one);
    },
    [=](write_atom, std::vector<wire::owned_frame>& fs) -> caf::result<void> {
      return enqueue(self, fs);
    },
    [=](write_atom, const shared_frames& fs) -> caf::result<void> {
      if (!fs) {
        return caf::unit;
      }
      return enqueue(self, *fs);
    },
    [=](close_atom) -> caf::result<void> {
      auto& st = self->state;
      if (st.fin_taken) {
        return caf::unit;
      }
      if (st.ended) {
        return make_caf_error(*st.ended);
      }
      st.fin_requested = true;
      auto rp = self->make_response_promise();
      st.close_waiters.push_back(rp);
      pump(self);
      return rp;
    },
    [=](reset_atom, uint64_t code) {
      auto& st = self->state;
      if (!st.ended) {
        send_untyped(self, st.args.connection,
                     stream_abort{st.args.stream_id, code});
        st.ready.clear();
        finish(self,
               error{errc::shutting_down,
                     fmt::format("stream reset locally (code {})", code)});
      }
    },
    [=](stats_atom) {
      auto& st = self->state;
      auto out = st.counters;
      out.stream_id = st.args.stream_id;
      out.queued = st.queued() + st.in_flight;
      return out;
    },
  };
}

stream_impl::behavior_type stream_fn(stream_self self,
                                     const stream_args& args) {
  auto& st = self->state;
  st.args = args;
  st.me = caf::actor_cast<stream_actor>(self);
  auto start = wire::stream_start::peer_opened;
  if (st.args.first) {
    start = wire::type_of(*st.args.first) == wire::frame_type::hello
              ? wire::stream_start::control_reply
              : wire::stream_start::application_reply;
  }
  st.decoder.emplace(st.args.options.limits, start);
  self->monitor(st.args.connection);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& cur = self->state;
    if (dm.source == cur.args.connection.address()) {
      finish(self, error{errc::connection_lost, "the connection ended"});
    }
  });
  if (st.args.first) {
    // The connection checked that it encodes.
    if (auto ok = st.encode(*st.args.first); ok) {
      st.counters.frames_out++;
      st.counters.bytes_out += st.queued();
    }
    st.args.first.reset();
    pump(self);
  }
  return running(self);
}

} // namespace

caf::actor spawn_stream(caf::local_actor* connection, stream_args args) {
  return caf::actor_cast<caf::actor>(
    connection->spawn(stream_fn, std::move(args)));
}

} // namespace mycorrizal::detail
