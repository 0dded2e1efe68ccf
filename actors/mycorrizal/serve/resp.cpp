// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/serve/resp.hpp"

#include "mycorrizal/config_check.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/metrics/registry.hpp"
#include "mycorrizal/net/events.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/quic/tls_stream.hpp"
#include "mycorrizal/resp/reply.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/serve/resp_commands.hpp"

#include <caf/all.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mycorrizal {

namespace {

constexpr std::string_view resp_component = "resp";

/// The listener cuts a refused connection that its client keeps open.
using refused_close_atom = caf::atom_constant<caf::atom("rfsdclose")>;

/// A connection's timer (op_access::later) and its deferred write.
using conn_timer_atom = caf::atom_constant<caf::atom("conntimer")>;
using conn_flush_atom = caf::atom_constant<caf::atom("connflush")>;

/// What every connection of one server shares.
struct resp_shared {
  resp_options opts;
  std::shared_ptr<net::reactor> reactor;
  cache_actor cache;
  std::string node_name;
  /// CLIENT ID: counting from 1, as Redis does.
  std::atomic<int64_t> next_client_id{1};
  /// Clients and counters (CLIENT LIST, INFO, the metrics).
  resp::server_state server{resp::command_count()};
};

// -- one client ---------------------------------------------------------------

/// A command with its own copy of the arguments.
struct owned_command {
  explicit owned_command(const resp::command& cmd)
      : args(cmd.args.begin(), cmd.args.end()), form(cmd.form) {
    for (const auto& a : args) {
      views.emplace_back(a);
    }
  }

  owned_command(owned_command&& other) noexcept
      : args(std::move(other.args)), views(std::move(other.views)),
        form(other.form) {
    // Moving the vector keeps the strings (and so the views) in place.
  }

  owned_command& operator=(owned_command&&) = delete;
  owned_command(const owned_command&) = delete;
  owned_command& operator=(const owned_command&) = delete;
  ~owned_command() = default;

  resp::command view() const {
    return resp::command{views, form};
  }

  std::vector<std::string> args;
  std::vector<std::string_view> views;
  resp::request_form form;
};

struct resp_conn_state {
  static inline const char* name = "mycorrizal.resp.conn";

  std::shared_ptr<resp_shared> shared;
  net::tcp_conn_id conn{};
  resp::request_parser parser;
  resp::session session;
  /// Unix time for TTLs, by this actor's clock.
  wall_clock wall;
  /// Replies in request order; the front ones that are done are written.
  std::deque<std::shared_ptr<resp::pending_reply>> slots;
  bool paused = false;
  bool closing = false;
  /// The client sent FIN: close once the replies it waits for are out.
  bool eof = false;
  /// A command ends the connection after its reply (QUIT): what came
  /// after it is not run, as Redis drops the rest of its input.
  bool quitting = false;
  /// A command parsed but not yet run: it waits for a sequential command
  /// before it, or is sequential and waits for those before it.
  std::optional<owned_command> held;
  /// The sequential command running (its reply not yet done).
  std::shared_ptr<resp::pending_reply> barrier;
  /// With `--resp-tls`: the session between the socket and the parser.
  std::optional<quic::tls_stream> tls;
  /// How commands reach Mycel (bucket handles, retries).
  std::shared_ptr<resp::op_access> access;
  /// What a command's asynchronous reply calls (reply_came).
  std::function<void()> on_done;
  /// The replies of one write, where they are (write_ready).
  std::vector<std::span<const std::byte>> parts;
  /// op_access::later's callbacks by id.
  std::map<uint64_t, std::function<void()>> timers;
  uint64_t next_timer = 1;
  /// A conn_flush_atom is on its way.
  bool flush_pending = false;
  /// When the last read came (Unix us by the actor clock).
  int64_t read_us = 0;
  /// Written replies, kept for the next commands (`new_slot`).
  std::vector<std::shared_ptr<resp::pending_reply>> spare_slots;
};

using resp_conn_actor = caf::stateful_actor<resp_conn_state>;

/// How many written replies a connection keeps for its next commands: a
/// pipeline's worth (redis-benchmark's -P 16 and more), while a server of
/// many clients holds little for each (at most this many times
/// `pending_reply::kept_buffer` bytes).
constexpr size_t kept_slots = 32;

/// The object for a new command's reply: a kept one, or a new one.
std::shared_ptr<resp::pending_reply> new_slot(resp_conn_state& st) {
  if (st.spare_slots.empty()) {
    return std::make_shared<resp::pending_reply>();
  }
  auto slot = std::move(st.spare_slots.back());
  st.spare_slots.pop_back();
  return slot;
}

/// A written reply's object: kept for a next command if nothing else
/// holds it any more (an answer that came late, a barrier).
void recycle(resp_conn_state& st, std::shared_ptr<resp::pending_reply> slot) {
  if (slot.use_count() == 1 && st.spare_slots.size() < kept_slots) {
    slot->reuse();
    st.spare_slots.push_back(std::move(slot));
  }
}

void write_ready(resp_conn_actor* self);
void parse_and_run(resp_conn_actor* self);

/// Whether the held command must wait: a client's commands take effect in
/// the order it sent them. Single-operation commands keep that order on
/// their own (their operations travel in order to the key's primary); a
/// sequential command (a read-modify-write, a walk over the key space)
/// runs alone: after every command before it has answered, and before
/// any after it starts.
bool blocked(resp_conn_state& st, const resp::command& next) {
  if (st.barrier) {
    if (!st.barrier->done()) {
      return true;
    }
    st.barrier.reset();
  }
  if (resp::is_sequential(next)) {
    return std::any_of(st.slots.begin(), st.slots.end(), [](const auto& s) {
      return !s->done();
    });
  }
  return false;
}

/// Closes the connection after what is queued (a protocol error, QUIT) or
/// at once (the output limit), and ends the actor once the reactor
/// confirms.
/// Writes `bytes` to the socket as they are (TLS records or plain RESP).
/// @returns false if the connection ends (over its output limit, gone).
bool write_raw(resp_conn_actor* self, std::string_view bytes);
/// Writes `parts` in order as one write (what must wait for the reactor
/// is copied).
bool write_bytes(resp_conn_actor* self,
                 std::span<const std::span<const std::byte>> parts);

void close_client(resp_conn_actor* self, net::close_mode mode) {
  auto& st = self->state;
  if (st.closing) {
    return;
  }
  if (st.tls && mode == net::close_mode::flush) {
    st.tls->close(); // close_notify after the last reply
    write_raw(self, st.tls->take_output());
    if (st.closing) {
      return;
    }
  }
  st.closing = true;
  if (!st.shared->reactor->close_tcp(st.conn, mode)) {
    self->quit();
  }
}

/// Replies go to the socket in writes of about this many bytes, and of at
/// most this many replies (the reactor hands 64 buffers to one sendmsg).
constexpr size_t write_chunk = size_t{256} * 1024;
constexpr size_t write_parts = 64;

void write_ready(resp_conn_actor* self) {
  auto& st = self->state;
  bool close_after = false;
  int64_t written_us = -1;
  while (!close_after && !st.closing && !st.slots.empty()
         && st.slots.front()->done()) {
    // The run of finished replies at the front: at most write_chunk bytes
    // and write_parts replies, up to one that closes the connection.
    size_t count = 0;
    size_t size = 0;
    for (auto i = st.slots.begin();
         i != st.slots.end() && (*i)->done() && size < write_chunk
         && count < write_parts;
         ++i) {
      size += (*i)->bytes().size();
      ++count;
      if ((*i)->close_after) {
        break;
      }
    }
    bool ok = true;
    if (st.tls) {
      std::string out;
      out.reserve(size);
      for (size_t k = 0; k < count; ++k) {
        out += st.slots[k]->bytes();
      }
      if (!st.tls->send(out)) {
        close_client(self, net::close_mode::abort);
        return;
      }
      ok = write_raw(self, st.tls->take_output());
    } else {
      // The replies where they are, in one gathered write: no buffer of
      // their size and no copy unless the kernel cannot take them now.
      st.parts.clear();
      for (size_t k = 0; k < count; ++k) {
        const auto& b = st.slots[k]->bytes();
        st.parts.emplace_back(reinterpret_cast<const std::byte*>(b.data()),
                              b.size());
      }
      ok = write_bytes(self, st.parts);
    }
    for (size_t k = 0; k < count; ++k) {
      auto& s = *st.slots.front();
      if (written_us < 0) {
        written_us = st.wall.now_us(self); // once per write
      }
      auto us = s.read_us > 0 && written_us > s.read_us
                  ? static_cast<uint64_t>(written_us - s.read_us)
                  : uint64_t{0};
      if (s.resets_stats) {
        st.shared->server.reset_stats();
      }
      st.shared->server.count_reply(s.command, s.bytes(), s.rejected, us);
      close_after = close_after || s.close_after;
      recycle(st, std::move(st.slots.front()));
      st.slots.pop_front();
    }
    if (!ok) {
      return;
    }
  }
  if (close_after) {
    st.slots.clear();
    close_client(self, net::close_mode::flush);
    return;
  }

  if (st.paused && st.slots.size() < st.shared->opts.max_pipeline / 2) {
    st.paused = false;
    static_cast<void>(st.shared->reactor->read_tcp(st.conn, true));
    parse_and_run(self);
  } else if (st.held && !blocked(st, st.held->view())) {
    parse_and_run(self);
  }
  // After a FIN: once every command that arrived whole has its reply out
  // (an unfinished last one never will), close.
  if (st.eof && st.slots.empty() && !st.paused && !st.held) {
    close_client(self, net::close_mode::flush);
  }
}

bool write_raw(resp_conn_actor* self, std::string_view bytes) {
  auto* p = reinterpret_cast<const std::byte*>(bytes.data());
  std::span<const std::byte> one[] = {{p, bytes.size()}};
  return write_bytes(self, one);
}

bool write_bytes(resp_conn_actor* self,
                 std::span<const std::span<const std::byte>> parts) {
  auto& st = self->state;
  if (parts.empty() || st.closing) {
    return !st.closing;
  }
  auto& r = *st.shared->reactor;
  auto ok = parts.size() == 1 ? r.write_tcp(st.conn, parts.front())
                              : r.write_tcp(st.conn, parts);
  if (ok) {
    return true;
  }
  if (ok.error() == errc::queue_full) {
    MYCORRIZAL_LOG_INFO(resp_component,
                        "{}: closing a client over its output limit of "
                        "{} bytes (it does not read its replies)",
                        to_string(st.conn), st.shared->opts.max_output_buffer);
    close_client(self, net::close_mode::abort);
  } else {
    self->quit();
  }
  return false;
}

/// An asynchronous reply completed. With more replies of this client
/// still out, the write waits for a message to ourselves: the replies
/// already in the mailbox come first and leave in one write (a pipeline's
/// replies in one syscall, not one each). The last one writes at once.
void reply_came(resp_conn_actor* self) {
  auto& st = self->state;
  if (st.access->answering > 0) {
    st.access->answered = true; // once after the round (on_answers)
    return;
  }
  // Replies ready to go at the front, and whether others are still out.
  size_t ready = 0;
  auto i = st.slots.begin();
  for (; i != st.slots.end() && (*i)->done() && ready < write_chunk; ++i) {
    ready += (*i)->bytes().size();
  }
  bool more = std::any_of(i, st.slots.end(), [](const auto& x) {
    return !x->done();
  });
  if (!more || ready >= write_chunk) {
    write_ready(self);
  } else if (!st.flush_pending) {
    st.flush_pending = true;
    self->send(self, conn_flush_atom::value);
  }
}

/// Runs one command; a sequential one that has not answered at once
/// becomes the barrier. @returns whether the connection closes after its
/// reply (QUIT).
bool run_now(resp_conn_actor* self, const resp::command& cmd) {
  auto& st = self->state;
  auto slot = new_slot(st);
  slot->read_us = st.read_us;
  st.slots.push_back(slot);
  resp::run_command(
    cmd, st.session, slot,
    resp::command_env{self, st.shared->cache, st.shared->opts.op_timeout,
                      st.shared->opts.password, st.shared->opts.databases,
                      st.on_done, st.wall, st.shared->server, st.access});
  st.parser.auth_required(!st.session.authenticated);
  if (!slot->done() && resp::is_sequential(cmd)) {
    st.barrier = slot;
  }
  // Not st.slots.back(): a reply completed at once may have been written
  // (and its slot let go) already.
  return slot->close_after;
}

/// Runs the commands the parser holds, as many as the pipeline takes.
void parse_and_run(resp_conn_actor* self) {
  auto& st = self->state;
  bool ran = false;
  // What these commands ask of a bucket leaves in one message at the end.
  ++st.access->holding;
  while (!st.closing && !st.quitting
         && st.slots.size() < st.shared->opts.max_pipeline) {
    if (st.held) {
      // Waiting for its turn: its arguments are copies (the parser's
      // buffer moves on).
      if (blocked(st, st.held->view())) {
        break;
      }
      auto held = std::move(*st.held);
      st.held.reset();
      st.quitting = run_now(self, held.view());
      ran = true;
      continue;
    }
    auto cmd = st.parser.next();
    if (!cmd) {
      // Redis answers a protocol error and closes the connection.
      resp::reply_writer w{st.session.version};
      if (cmd.error() == errc::malformed_frame) {
        w.error("ERR " + cmd.error().context());
      }
      auto slot = std::make_shared<resp::pending_reply>();
      slot->finish(w.take(), true);
      st.slots.push_back(std::move(slot));
      break;
    }
    if (!*cmd) {
      break;
    }
    if (blocked(st, **cmd)) {
      st.held.emplace(**cmd);
      break;
    }
    st.quitting = run_now(self, **cmd);
    ran = true;
  }
  if (--st.access->holding == 0) {
    resp::flush_ops(self, st.access);
  }
  if (ran) {
    st.shared->server.update(st.session);
  }
  if (!st.closing && st.slots.size() >= st.shared->opts.max_pipeline
      && !st.paused) {
    st.paused = true;
    static_cast<void>(st.shared->reactor->read_tcp(st.conn, false));
  }
  write_ready(self);
}

caf::behavior resp_conn(resp_conn_actor* self,
                        std::shared_ptr<resp_shared> shared,
                        net::tcp_accepted accepted) {
  auto conn = accepted.conn;
  auto& init = self->state;
  init.shared = std::move(shared);
  init.conn = conn;
  init.parser = resp::request_parser{init.shared->opts.limits};
  init.wall = wall_clock{self};
  init.access = std::make_shared<resp::op_access>();
  init.on_done = [self] {
    reply_came(self);
  };
  init.access->on_answers = init.on_done;
  init.access->cache = init.shared->cache;
  init.access->later = [self](caf::timespan delay, std::function<void()> f) {
    auto& st = self->state;
    auto id = st.next_timer++;
    st.timers.emplace(id, std::move(f));
    self->delayed_send(self, delay, conn_timer_atom::value, id);
  };
  init.session.id = init.shared->next_client_id.fetch_add(1);
  init.session.addr = to_string(accepted.peer);
  init.session.laddr = to_string(accepted.local);
  init.session.created_ms = init.wall.now_ms(self);
  init.session.last_ms = init.session.created_ms;
  init.shared->server.update(init.session);
  init.shared->server.connections_total.fetch_add(1, std::memory_order_relaxed);
  if (init.shared->opts.tls) {
    auto now = std::chrono::system_clock::time_point{
      std::chrono::milliseconds{init.wall.now_ms(self)}};
    auto t = quic::tls_stream::server(*init.shared->opts.tls,
                                      init.shared->opts.tls_auth, now);
    if (t) {
      init.tls.emplace(std::move(*t));
    } else {
      MYCORRIZAL_LOG_WARN(resp_component, "{}: {}", to_string(conn),
                          t.error().context());
      init.closing = true;
      if (!init.shared->reactor->close_tcp(conn, net::close_mode::abort)) {
        self->quit();
      }
    }
  }
  self->attach_functor([shared = init.shared, id = init.session.id] {
    shared->server.remove(id);
  });
  init.session.authenticated = init.shared->opts.password.empty();
  init.parser.auth_required(!init.session.authenticated);
  return {
    [self](net::tcp_received& x) {
      auto& st = self->state;
      if (st.closing) {
        return;
      }
      std::string_view in{reinterpret_cast<const char*>(x.data.data()),
                          x.data.size()};
      std::string plain;
      bool peer_closed = false;
      if (st.tls) {
        auto got = st.tls->receive(x.data, plain);
        // Handshake records, or the alert that says why it failed.
        if (!write_raw(self, st.tls->take_output())) {
          return;
        }
        if (!got) {
          MYCORRIZAL_LOG_INFO(resp_component, "{}: {}", to_string(st.conn),
                              got.error().context());
          st.tls.reset(); // no close_notify on a failed session
          close_client(self, net::close_mode::flush);
          return;
        }
        in = plain;
        peer_closed = st.tls->peer_closed();
      }
      // CLIENT LIST's idle time and the commands' time (INFO
      // commandstats): once per read, not per command.
      st.read_us = st.wall.now_us(self);
      st.session.last_ms = st.read_us / 1000;
      auto ok = st.parser.append(in);
      if (!ok) {
        // Over the query buffer limit: Redis closes without a reply.
        MYCORRIZAL_LOG_INFO(resp_component, "{}: {}", to_string(st.conn),
                            ok.error().context());
        close_client(self, net::close_mode::abort);
        return;
      }
      parse_and_run(self);
      if (peer_closed) {
        // close_notify: as a FIN.
        st.eof = true;
        write_ready(self);
      }
    },
    [self](net::tcp_eof&) {
      // `printf 'SET a 1\r\nGET a\r\n' | nc`: the commands before the
      // FIN still get their replies, then the connection closes.
      self->state.eof = true;
      write_ready(self);
    },
    [self](net::tcp_closed&) {
      self->quit();
    },
    [self](conn_flush_atom) {
      self->state.flush_pending = false;
      write_ready(self);
    },
    [self](conn_timer_atom, uint64_t id) {
      auto& timers = self->state.timers;
      auto i = timers.find(id);
      if (i != timers.end()) {
        auto f = std::move(i->second);
        timers.erase(i);
        f();
      }
    },
  };
}

// -- the listener -------------------------------------------------------------

struct resp_listener_state {
  static inline const char* name = "mycorrizal.resp.listener";

  std::shared_ptr<resp_shared> shared;
  size_t clients = 0;
};

using resp_listener_actor = caf::stateful_actor<resp_listener_state>;

caf::behavior resp_listener(resp_listener_actor* self,
                            std::shared_ptr<resp_shared> shared) {
  self->state.shared = std::move(shared);
  self->set_down_handler([self](caf::down_msg&) {
    --self->state.clients;
  });
  return {
    [self](net::tcp_accepted& x) {
      auto& st = self->state;
      auto& r = *st.shared->reactor;
      if (st.clients >= st.shared->opts.max_clients) {
        // Redis: the error, then close. Over TLS nothing can be said
        // before a handshake: just close. What the client sent meanwhile
        // is read and dropped, so that closing does not reset the
        // connection before the error arrives; one that stays open is cut
        // after a while.
        if (st.shared->opts.tls) {
          static_cast<void>(r.close_tcp(x.conn, net::close_mode::abort));
        } else {
          constexpr std::string_view msg
            = "-ERR max number of clients reached\r\n";
          auto* p = reinterpret_cast<const std::byte*>(msg.data());
          static_cast<void>(
            r.write_tcp(x.conn, std::vector<std::byte>(p, p + msg.size())));
          static_cast<void>(r.shutdown_tcp_write(x.conn));
          static_cast<void>(r.read_tcp(x.conn, true));
          self->delayed_send(self, std::chrono::seconds{5},
                             refused_close_atom::value, x.conn);
        }
        st.shared->server.rejected_total.fetch_add(1,
                                                   std::memory_order_relaxed);
        return;
      }
      auto c = self->spawn<caf::linked>(resp_conn, st.shared, x);
      self->monitor(c);
      ++st.clients;
      if (!r.read_tcp(x.conn, true, c)) {
        caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
      }
    },
    [](net::tcp_closed&) {
      // A connection refused above.
    },
    [self](refused_close_atom, net::tcp_conn_id conn) {
      static_cast<void>(
        self->state.shared->reactor->close_tcp(conn, net::close_mode::abort));
    },
    [](net::tcp_received&) {
      // Nothing: refused connections read nothing worth answering.
    },
  };
}

/// The front door's metrics, read at scrape time.
void collect(const resp::server_state& srv, metrics::collector_sink& out) {
  out.gauge("mycorrizal_resp_clients", "Redis protocol clients connected now",
            static_cast<double>(srv.client_count()));
  out.counter("mycorrizal_resp_connections_total",
              "Redis protocol connections accepted",
              srv.connections_total.load(std::memory_order_relaxed));
  out.counter("mycorrizal_resp_rejected_connections_total",
              "Redis protocol connections refused (max clients)",
              srv.rejected_total.load(std::memory_order_relaxed));
  for (size_t i = 0; i <= resp::command_count(); ++i) {
    std::vector<metrics::label> labels{
      {"command", std::string{resp::command_name(i)}}};
    out.counter("mycorrizal_resp_commands_total",
                "Redis protocol commands answered, by command (unknown: "
                "commands the front door does not have)",
                labels, srv.calls[i].load(std::memory_order_relaxed));
    out.counter("mycorrizal_resp_command_errors_total",
                "Redis protocol commands answered with an error reply, by "
                "command",
                labels, srv.failed[i].load(std::memory_order_relaxed));
  }
}

} // namespace

expected<void> resp_options::validate() const {
  config_check check{"resp"};
  check.in_range("max_clients", max_clients, size_t{1}, size_t{1} << 20);
  check.in_range("max_pipeline", max_pipeline, size_t{2}, size_t{1} << 20);
  check.in_range("max_output_buffer", max_output_buffer, size_t{1} << 10,
                 size_t{1} << 40);
  check.in_range("databases", databases, uint32_t{1}, uint32_t{1} << 16);
  check.require("op_timeout", op_timeout > caf::timespan::zero(),
                "must be positive");
  for (auto c : password) {
    check.require("password", c != '\r' && c != '\n',
                  "no line breaks in the password");
  }
  if (auto ok = limits.validate(); !ok) {
    return ok;
  }
  return std::move(check).result();
}

struct resp_server::impl {
  caf::actor_system* sys = nullptr;
  /// The node whose metrics registry holds our collector.
  std::weak_ptr<node> owner;
  uint64_t collector = 0;
  caf::actor listener;
  ip_endpoint local;
  std::shared_ptr<resp_shared> shared;
  std::mutex mtx;
  bool stopped = false;
};

resp_server::resp_server(std::unique_ptr<impl> x) : impl_(std::move(x)) {
  // nop
}

resp_server::~resp_server() {
  stop();
}

expected<std::unique_ptr<resp_server>>
resp_server::start(std::shared_ptr<node> n, resp_options opts) {
  if (auto ok = opts.validate(); !ok) {
    return unexpected{ok.error()};
  }
  if (!n) {
    return unexpected{error{errc::invalid_config, "resp: no node"}};
  }
  if (!n->cache()) {
    return unexpected{
      error{errc::invalid_config, "resp: the node runs no cache"}};
  }
  auto reactor = n->reactor();
  if (!reactor) {
    return unexpected{error{errc::shutting_down, "resp: the node stopped"}};
  }
  auto shared = std::make_shared<resp_shared>();
  shared->opts = std::move(opts);
  shared->reactor = reactor;
  shared->cache = n->cache();
  shared->node_name = n->name();
  auto x = std::make_unique<impl>();
  x->sys = &n->system();
  x->shared = shared;
  x->listener = x->sys->spawn(resp_listener, shared);
  net::tcp_options topts;
  topts.deadline = std::chrono::milliseconds{0};
  topts.max_write_queue = shared->opts.max_output_buffer;
  topts.max_connections = shared->opts.max_clients + 64;
  topts.start_paused = true;
  topts.close_on_eof = false;
  topts.backlog = 511; // Redis's tcp-backlog
  auto l = reactor->listen_tcp(shared->opts.bind, x->listener, topts);
  if (!l) {
    caf::anon_send_exit(x->listener, caf::exit_reason::user_shutdown);
    return unexpected{l.error()};
  }
  x->local = l->local;
  auto& srv = shared->server;
  srv.node_name = n->name();
  srv.started_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  srv.port = x->local.port();
  srv.max_clients = shared->opts.max_clients;
  srv.databases = shared->opts.databases;
  x->owner = n;
  x->collector = n->metrics_registry().add_collector(
    [shared](metrics::collector_sink& out) {
      collect(shared->server, out);
    });
  const char* tls = !shared->opts.tls ? ""
                    : shared->opts.tls_auth == quic::client_auth::required
                      ? " over TLS (client certificates required)"
                    : shared->opts.tls_auth == quic::client_auth::optional
                      ? " over TLS (client certificates optional)"
                      : " over TLS";
  MYCORRIZAL_LOG_INFO(resp_component, "Redis protocol on {}{}{}",
                      to_string(x->local), tls,
                      shared->opts.password.empty() ? "" : " (AUTH required)");
  return std::unique_ptr<resp_server>{new resp_server{std::move(x)}};
}

ip_endpoint resp_server::local() const noexcept {
  return impl_->local;
}

void resp_server::stop() {
  std::lock_guard guard{impl_->mtx};
  if (impl_->stopped) {
    return;
  }
  impl_->stopped = true;
  if (auto n = impl_->owner.lock()) {
    n->metrics_registry().remove_collector(impl_->collector);
  }
  // The connections are linked to the listener: they end with it, and the
  // reactor closes the sockets of owners that are gone.
  caf::scoped_actor self{*impl_->sys};
  self->monitor(impl_->listener);
  self->send_exit(impl_->listener, caf::exit_reason::user_shutdown);
  self->receive([](const caf::down_msg&) {},
                caf::after(std::chrono::seconds{10}) >> [] {});
}

} // namespace mycorrizal
