// SPDX-License-Identifier: Apache-2.0
// The connection actor: drives one QUIC connection core.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/actor_time.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/runtime/send.hpp"
#include "mycorrizal/transport/internal/actors.hpp"
#include "mycorrizal/wire/encoder.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <unordered_map>

namespace mycorrizal::detail {

namespace {

constexpr std::string_view connection_component = "quic";

/// Deadlines closer than this are served by a message to ourselves.
constexpr auto soon_threshold = std::chrono::microseconds{100};

/// A timer armed at most this much after a new deadline is kept.
constexpr auto timer_slack = std::chrono::microseconds{500};

/// Write rounds per message handled before the actor yields to its mailbox
/// (acknowledgements must get in between during a bulk transfer).
constexpr int max_write_rounds = 8;

struct connection_state {
  static inline const char* name = "mycorrizal.connection";

  /// One stream: its actor and the bytes QUIC did not take yet.
  struct stream_entry {
    caf::actor actor; // its whole interface, internal messages included
    std::deque<std::vector<std::byte>> pending;
    /// Read offset into `pending.front()`.
    size_t offset = 0;
    /// The end of our side is queued behind `pending`.
    bool fin = false;
    bool fin_taken = false;
  };

  connection_args_ptr args;
  quic::connection* core = nullptr;
  /// This actor, for the reports (released when the state goes).
  connection_actor me;
  /// The actor system's clock, for the destructor (which has no `self`).
  caf::actor_clock* clock = nullptr;
  std::unordered_map<int64_t, stream_entry> streams;

  std::vector<std::span<const std::byte>> views;
  std::vector<net::udp_send_item> items;

  uint64_t routes_epoch = 0;
  /// The core deadline the pending tick serves (max: none pending).
  quic::time_point armed = quic::time_point::max();
  bool flush_pending = false;
  /// A `tick_atom` with deadline 0 (due about now) is in the mailbox or,
  /// on the loop's thread, will be at `soon_at` (`reactor::wake_at`).
  bool tick_soon = false;
  quic::time_point soon_at = quic::time_point::max();

  std::optional<caf::response_promise> dial;
  /// Set when a dial deadline closed the connection: the reason reported.
  std::optional<error> override_reason;
  bool up = false;
  bool down_reported = false;
  /// The core closed it because the peer stopped answering.
  bool unreachable = false;
  uint64_t send_errors = 0;

  connection_state() = default;
  connection_state(const connection_state&) = delete;
  connection_state& operator=(const connection_state&) = delete;

  ~connection_state();

  /// The reason the connection is over, as reported to everyone.
  error reason() const {
    if (override_reason) {
      return *override_reason;
    }
    if (core != nullptr && core->close_reason().code() != errc::none) {
      return core->close_reason();
    }
    return error{errc::shutting_down, "connection actor stopped"};
  }

  /// Reports the end once: to the handler, the dialer and every stream.
  void report_down() {
    if (down_reported) {
      return;
    }
    down_reported = true;
    auto why = reason();
    if (dial) {
      dial->deliver(make_caf_error(why));
      dial.reset();
    }
    for (auto& [id, s] : streams) {
      caf::anon_send(s.actor, stream_gone{why});
    }
    streams.clear();
    connection_down msg;
    msg.connection = me;
    msg.peer_name = up ? core->peer_name() : std::string{};
    msg.remote = args->remote;
    msg.incoming = args->incoming;
    msg.reason = why;
    msg.unreachable = unreachable && !override_reason;
    caf::anon_send(args->handler, std::move(msg));
  }
};

/// The public interface plus the transport's and the streams' messages and
/// the actor's timers.
using connection_impl = connection_actor::extend<
  caf::reacts_to<routed_datagrams>, caf::reacts_to<stream_output>,
  caf::reacts_to<stream_consumed>, caf::reacts_to<stream_abort>,
  caf::reacts_to<tick_atom, int64_t>, caf::reacts_to<flush_atom>,
  caf::reacts_to<dial_timeout_atom>>;

using connection_self = connection_impl::stateful_pointer<connection_state>;

/// Where the core writes datagrams: one buffer per worker thread, not per
/// connection (it is only used inside one handler; 90 KiB per idle
/// connection otherwise).
std::span<std::byte> send_buffer(const connection_state& st) {
  thread_local std::vector<std::byte> buf;
  auto need = st.args->transport.max_udp_payload
              * st.args->transport.max_datagrams_per_write;
  if (buf.size() < need) {
    buf.resize(need);
  }
  return {buf.data(), need};
}

/// Sends the CONNECTION_CLOSE of a connection whose actor stops without
/// having closed it (the socket outlives the transport for this).
void close_now(connection_state& st, std::string_view why,
               quic::time_point now) {
  if (st.core == nullptr) {
    return;
  }
  auto s = st.core->state();
  if (s == quic::connection_state::handshaking
      || s == quic::connection_state::established) {
    // The code tells the peer that this endpoint goes away (protocol.md
    // §5): it reports node_down rather than a lost connection.
    st.core->close(static_cast<uint64_t>(errc::shutting_down), why, now);
    st.views.clear();
    st.core->write(now, send_buffer(st), st.views);
    for (auto v : st.views) {
      std::ignore = st.args->socket->reactor().send_udp(st.args->socket->id(),
                                                        st.args->remote, v);
    }
  }
}

connection_state::~connection_state() {
  if (args == nullptr) {
    return;
  }
  // The actor stopped (transport stop, exit message) while still open.
  close_now(*this, "shutting down",
            std::chrono::time_point_cast<duration>(clock->now()));
  report_down();
}

/// Hands queued stream bytes to the core as far as it takes them, and
/// tells the stream actor how much it took.
void push_stream(connection_self self, int64_t id,
                 connection_state::stream_entry& s) {
  auto& st = self->state;
  size_t taken = 0;
  bool fin_now = false;
  while (!s.pending.empty()) {
    auto& front = s.pending.front();
    auto rest = std::span<const std::byte>{front}.subspan(s.offset);
    bool last = s.pending.size() == 1;
    // A whole chunk moves into the core without a copy (or waits until it
    // fits); only the rest of a chunk larger than its buffer is copied.
    auto n = s.offset == 0 ? st.core->send(id, std::move(front), last && s.fin)
                           : st.core->send(id, rest, last && s.fin);
    if (!n) {
      break;
    }
    taken += *n;
    s.offset += *n;
    if (*n < rest.size()) {
      break; // `front` was not moved: it did not fit whole
    }
    s.pending.pop_front();
    s.offset = 0;
    if (last && s.fin) {
      s.fin_taken = true;
      fin_now = true;
    }
  }
  if (s.pending.empty() && s.fin && !s.fin_taken) {
    // A FIN without bytes.
    if (auto n = st.core->send(id, quic::bytes_view{}, true); n) {
      s.fin_taken = true;
      fin_now = true;
    }
  }
  if (taken > 0 || fin_now) {
    // From this worker's context: the stream runs next on this worker
    // instead of waking another one through the scheduler's queue.
    send_untyped(self, s.actor, stream_taken{taken, fin_now});
  }
}

/// Hands the core's events on; returns whether it gave a stream bytes.
bool handle_events(connection_self self) {
  auto& st = self->state;
  auto& events = st.core->events();
  // Bytes for one stream in one round go to its actor in one message.
  std::vector<std::pair<int64_t, stream_input>> inputs;
  auto input_for = [&](int64_t id) -> stream_input& {
    for (auto& [sid, in] : inputs) {
      if (sid == id) {
        return in;
      }
    }
    return inputs.emplace_back(id, stream_input{}).second;
  };
  bool gave = false;
  auto flush_inputs = [&] {
    for (auto& [id, in] : inputs) {
      if (auto i = st.streams.find(id); i != st.streams.end()) {
        gave = gave || !in.chunks.empty();
        send_untyped(self, i->second.actor, std::move(in));
      }
    }
    inputs.clear();
  };
  for (size_t k = 0; k < events.size(); ++k) {
    auto& ev = events[k];
    if (auto* d = std::get_if<quic::stream_data>(&ev)) {
      auto& in = input_for(d->stream_id);
      if (!d->data.empty()) {
        in.chunks.push_back(std::move(d->data));
      }
      in.fin = in.fin || d->fin;
    } else if (auto* o = std::get_if<quic::stream_opened>(&ev)) {
      stream_args sa;
      sa.stream_id = o->stream_id;
      sa.connection = caf::actor_cast<caf::actor>(self);
      sa.peer_name = st.core->peer_name();
      sa.options = st.args->streams;
      sa.handler = st.args->handler;
      auto actor = spawn_stream(self, std::move(sa));
      self->monitor(actor);
      st.streams[o->stream_id].actor = std::move(actor);
    } else if (auto* w = std::get_if<quic::stream_writable>(&ev)) {
      if (auto i = st.streams.find(w->stream_id); i != st.streams.end()) {
        push_stream(self, w->stream_id, i->second);
      }
    } else if (auto* r = std::get_if<quic::send_chunk_released>(&ev)) {
      if (auto i = st.streams.find(r->stream_id); i != st.streams.end()) {
        send_untyped(self, i->second.actor,
                     stream_released{std::move(r->data)});
      }
    } else if (auto* c = std::get_if<quic::stream_closed>(&ev)) {
      flush_inputs();
      if (auto i = st.streams.find(c->stream_id); i != st.streams.end()) {
        error why;
        if (c->app_error_code) {
          why = error{errc::connection_lost,
                      fmt::format("stream reset with code {}",
                                  *c->app_error_code)};
        }
        send_untyped(self, i->second.actor, stream_gone{std::move(why)});
        st.streams.erase(i);
      }
    } else if (auto* h = std::get_if<quic::handshake_completed>(&ev)) {
      st.up = true;
      MYCORRIZAL_LOG_INFO(connection_component, "connection {} {} {} is up",
                          st.args->incoming ? "from" : "to", h->peer_name,
                          st.args->remote.to_string());
      connection_info info;
      info.connection = caf::actor_cast<connection_actor>(self);
      info.peer_name = h->peer_name;
      info.remote = st.args->remote;
      info.incoming = st.args->incoming;
      send_untyped(self, st.args->transport_actor,
                   connection_named{st.args->id, h->peer_name});
      if (st.dial) {
        st.dial->deliver(info);
        st.dial.reset();
      }
      self->send(st.args->handler, connection_up{std::move(info)});
    } else if (auto* cc = std::get_if<quic::connection_closed>(&ev)) {
      st.unreachable = cc->unreachable;
      if (!st.up && cc->handshake != quic::handshake_failure::none) {
        send_untyped(self, st.args->transport_actor,
                     handshake_failed{cc->handshake});
      }
      flush_inputs();
      auto why = st.reason();
      MYCORRIZAL_LOG_INFO(connection_component,
                          "connection {} {} ({}) closed: {}",
                          st.args->incoming ? "from" : "to",
                          st.up ? st.core->peer_name() : std::string{"?"},
                          st.args->remote.to_string(), to_string(why));
      st.report_down();
    }
  }
  flush_inputs();
  events.clear();
  return gave;
}

/// Makes a `tick_atom` with deadline 0 arrive at `when` (about now) from
/// the loop's timers (`reactor::wake_at`) when the loop's thread runs us;
/// a tick already due by then serves. Returns false, arranging nothing,
/// on any other thread.
bool tick_soon_at(connection_self self, quic::time_point when) {
  auto& st = self->state;
  if (st.tick_soon && when >= st.soon_at) {
    return true;
  }
  auto& r = st.args->socket->reactor();
  if (!r.on_loop_thread()) {
    return false;
  }
  r.wake_at(when, caf::actor_cast<caf::actor>(self),
            caf::make_message(tick_atom::value, int64_t{0}));
  st.tick_soon = true;
  st.soon_at = when;
  return true;
}

void arm(connection_self self, quic::time_point now) {
  auto& st = self->state;
  auto next = st.core->next_deadline();
  if (next == quic::time_point::max()) {
    return;
  }
  // Where the loop's thread runs us, every deadline is one of its timers
  // (`reactor::wake_at`), as precise as the kernel's. Elsewhere a deadline
  // due (nearly) now, as ACK delays and pacing deadlines are, is a message
  // to ourselves behind what is in the mailbox, which spares CAF's clock
  // thread a wake-up for each; later ones go through that clock.
  if (next - now <= soon_threshold) {
    if (!tick_soon_at(self, next) && !st.tick_soon) {
      st.tick_soon = true;
      st.soon_at = now;
      self->send(self, tick_atom::value, int64_t{0});
    }
    return;
  }
  // A timer already armed a little later serves too: loss-detection and
  // idle deadlines move by microseconds all the time.
  if (next >= st.armed || st.armed - next <= timer_slack) {
    return;
  }
  st.armed = next;
  auto id = static_cast<int64_t>(next.time_since_epoch().count());
  if (auto& r = st.args->socket->reactor(); r.on_loop_thread()) {
    r.wake_at(next, caf::actor_cast<caf::actor>(self),
              caf::make_message(tick_atom::value, id));
  } else {
    auto wait = std::max(next - now, quic::duration::zero());
    self->delayed_send(self, wait, tick_atom::value, id);
  }
}

/// After every input: sends what the core writes (routes first), reports
/// its events, re-arms the timer, and quits once the core is finished.
/// With `after_read`, an established connection that just gave a stream
/// bytes writes nothing yet: the answer is likely to come within the
/// loop's round and carry the ACK (see `ack_delay` in quic/connection.cpp);
/// the ACK's deadline, armed below, writes what is left after that round.
void process(connection_self self, bool after_read = false) {
  auto& st = self->state;
  auto& core = *st.core;
  auto now = actor_now(self);
  auto gave = handle_events(self);
  auto write = !(after_read && gave && st.up);
  for (int round = 0; write; ++round) {
    st.views.clear();
    auto n = core.write(now, send_buffer(st), st.views);
    if (auto epoch = core.routing_epoch(); epoch != st.routes_epoch) {
      st.routes_epoch = epoch;
      send_untyped(self, st.args->transport_actor,
                   connection_routes{st.args->id, core.routing_ids()});
    }
    handle_events(self);
    if (n == 0) {
      break;
    }
    st.items.clear();
    for (auto v : st.views) {
      st.items.push_back(net::udp_send_item{st.args->remote, v});
    }
    auto& r = st.args->socket->reactor();
    size_t sent = 0;
    while (sent < st.items.size()) {
      auto k = r.send_udp_many(
        st.args->socket->id(),
        std::span<const net::udp_send_item>{st.items}.subspan(sent));
      if (!k) {
        // QUIC treats what did not leave as lost and sends it again.
        st.send_errors += st.items.size() - sent;
        MYCORRIZAL_LOG_DEBUG_RL(connection_component, 10,
                                "send to {} failed: {}",
                                st.args->remote.to_string(),
                                to_string(k.error()));
        break;
      }
      sent += *k;
    }
    if (n < st.args->transport.max_datagrams_per_write) {
      break;
    }
    if (round + 1 == max_write_rounds) {
      // More to write: let acknowledgements in first.
      if (!st.flush_pending) {
        st.flush_pending = true;
        self->send(self, flush_atom::value);
      }
      break;
    }
    now = actor_now(self);
  }
  if (core.finished()) {
    st.report_down();
    self->quit();
    return;
  }
  arm(self, now);
}

/// Writes after the messages already in the mailbox: stream bytes and
/// window updates that arrive together leave in full packets together.
void schedule_flush(connection_self self) {
  auto& st = self->state;
  if (!st.flush_pending) {
    st.flush_pending = true;
    self->send(self, flush_atom::value);
  }
}

/// Writes once the loop's round is over, when the loop runs us: a window
/// update (and the ACK that would go with it) needs no packet of its own
/// when an answer or the next request is written within the round, as
/// they usually are (a client consumes a response, then asks again).
/// Elsewhere as `schedule_flush`.
void write_after_round(connection_self self) {
  if (!tick_soon_at(self, actor_now(self))) {
    schedule_flush(self);
  }
}

void on_exit_request(connection_self self, const caf::exit_msg& msg) {
  auto& st = self->state;
  if (st.core != nullptr && !st.core->finished()
      && msg.reason != caf::exit_reason::kill) {
    close_now(st, "shutting down", actor_now(self));
    st.report_down();
  }
  self->quit(msg.reason);
}

connection_impl::behavior_type connection_fn(connection_self self,
                                             const connection_args_ptr& args) {
  auto& init = self->state;
  init.args = args;
  init.core = &*args->core;
  init.me = caf::actor_cast<connection_actor>(self);
  init.clock = &self->clock();
  init.routes_epoch = init.core->routing_epoch();
  self->set_exit_handler([=](caf::exit_msg& msg) {
    on_exit_request(self, msg);
  });
  self->set_down_handler([=](caf::down_msg& dm) {
    // A stream actor ended on its own (crash or kill): reset its stream.
    auto& st = self->state;
    for (auto i = st.streams.begin(); i != st.streams.end(); ++i) {
      if (i->second.actor.address() == dm.source) {
        std::ignore = st.core->reset_stream(i->first, 1);
        st.streams.erase(i);
        process(self);
        return;
      }
    }
  });
  if (args->dial) {
    init.dial = std::move(args->dial);
    args->dial.reset();
    self->delayed_send(self, args->dial_deadline, dial_timeout_atom::value);
  }
  // The first Initial (client) or the reply to the client's (server).
  self->send(self, flush_atom::value);
  init.flush_pending = true;
  return {
    [=](routed_datagrams& batch) {
      auto& st = self->state;
      auto now = actor_now(self);
      for (auto& d : batch.datagrams) {
        net::for_each_datagram(d, [&](std::span<const std::byte> piece) {
          st.core->handle_datagram(d.from, piece, now);
        });
      }
      process(self, true);
    },
    [=](tick_atom, int64_t deadline) {
      auto& st = self->state;
      if (deadline == 0) {
        st.tick_soon = false;
        st.soon_at = quic::time_point::max();
      } else if (deadline == st.armed.time_since_epoch().count()) {
        st.armed = quic::time_point::max();
      }
      auto now = actor_now(self);
      if (st.core->next_deadline() <= now) {
        st.core->on_timeout(now);
      }
      process(self);
    },
    [=](flush_atom) {
      self->state.flush_pending = false;
      process(self);
    },
    [=](dial_timeout_atom) {
      auto& st = self->state;
      if (st.up || st.down_reported) {
        return;
      }
      st.override_reason = error{
        errc::timeout, fmt::format("no authenticated connection to {} in time",
                                   st.args->remote.to_string())};
      st.core->close(0, "handshake timeout", actor_now(self));
      process(self);
      st.report_down();
    },
    [=](open_atom, wire::owned_frame& first,
        caf::actor& consumer) -> caf::result<stream_actor> {
      auto& st = self->state;
      auto t = wire::type_of(first);
      if (t != wire::frame_type::stream_init && t != wire::frame_type::hello) {
        return make_caf_error(error{
          errc::unexpected_frame, "a stream opens with STREAM_INIT or HELLO"});
      }
      if (!consumer) {
        return make_caf_error(
          error{errc::invalid_config, "open: no consumer actor"});
      }
      if (auto n = wire::encoded_size(wire::view(first)); !n) {
        return make_caf_error(n.error());
      }
      if (st.down_reported) {
        return make_caf_error(st.reason());
      }
      auto id = st.core->open_stream();
      if (!id) {
        return make_caf_error(id.error());
      }
      stream_args sa;
      sa.stream_id = *id;
      sa.connection = caf::actor_cast<caf::actor>(self);
      sa.peer_name = st.core->peer_name();
      sa.options = st.args->streams;
      sa.first = std::move(first);
      sa.consumer = std::move(consumer);
      auto actor = spawn_stream(self, std::move(sa));
      self->monitor(actor);
      st.streams[*id].actor = actor;
      return caf::actor_cast<stream_actor>(actor);
    },
    [=](stream_output& out) {
      auto& st = self->state;
      auto i = st.streams.find(out.stream_id);
      if (i == st.streams.end()) {
        return;
      }
      auto& s = i->second;
      if (!out.data.empty()) {
        s.pending.push_back(std::move(out.data));
      }
      s.fin = s.fin || out.fin;
      push_stream(self, out.stream_id, s);
      schedule_flush(self);
    },
    [=](stream_consumed& x) {
      auto& st = self->state;
      st.core->consume(x.stream_id, x.n);
      write_after_round(self);
    },
    [=](stream_abort& x) {
      auto& st = self->state;
      if (st.streams.erase(x.stream_id) > 0) {
        std::ignore = st.core->reset_stream(x.stream_id, x.code);
        process(self);
      }
    },
    [=](close_atom, uint64_t code, std::string& reason) {
      auto& st = self->state;
      st.core->close(code, reason, actor_now(self));
      process(self);
    },
    [=](stats_atom) {
      auto& st = self->state;
      connection_info info;
      info.connection = caf::actor_cast<connection_actor>(self);
      info.peer_name = st.up ? st.core->peer_name() : std::string{};
      info.remote = st.args->remote;
      info.incoming = st.args->incoming;
      info.stats = st.core->stats();
      return info;
    },
  };
}

} // namespace

caf::actor spawn_connection(caf::local_actor* transport,
                            connection_args_ptr args) {
  return caf::actor_cast<caf::actor>(
    transport->spawn(connection_fn, std::move(args)));
}

} // namespace mycorrizal::detail
