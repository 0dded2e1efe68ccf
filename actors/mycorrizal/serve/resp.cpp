// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/serve/resp.hpp"

#include "mycorrizal/config_check.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/net/events.hpp"
#include "mycorrizal/net/reactor.hpp"
#include "mycorrizal/node.hpp"
#include "mycorrizal/resp/reply.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/runtime/log.hpp"
#include "mycorrizal/serve/resp_commands.hpp"

#include <caf/all.hpp>

#include <fmt/format.h>

#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mycorrizal {

namespace {

constexpr std::string_view resp_component = "resp";

/// What every connection of one server shares.
struct resp_shared {
  resp_options opts;
  std::shared_ptr<net::reactor> reactor;
  cache_actor cache;
  std::string node_name;
  /// CLIENT ID: counting from 1, as Redis does.
  std::atomic<int64_t> next_client_id{1};
};

// -- one client ---------------------------------------------------------------

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
};

using resp_conn_actor = caf::stateful_actor<resp_conn_state>;

void write_ready(resp_conn_actor* self);
void parse_and_run(resp_conn_actor* self);

/// Closes the connection after what is queued (a protocol error, QUIT) or
/// at once (the output limit), and ends the actor once the reactor
/// confirms.
void close_client(resp_conn_actor* self, net::close_mode mode) {
  auto& st = self->state;
  if (st.closing) {
    return;
  }
  st.closing = true;
  if (!st.shared->reactor->close_tcp(st.conn, mode)) {
    self->quit();
  }
}

void write_ready(resp_conn_actor* self) {
  auto& st = self->state;
  std::string out;
  bool close_after = false;
  while (!st.slots.empty() && st.slots.front()->done()) {
    auto& s = *st.slots.front();
    out += s.bytes();
    close_after = close_after || s.close_after;
    st.slots.pop_front();
    if (close_after) {
      break;
    }
  }
  if (!out.empty() && !st.closing) {
    auto* p = reinterpret_cast<const std::byte*>(out.data());
    auto ok = st.shared->reactor->write_tcp(
      st.conn, std::vector<std::byte>(p, p + out.size()));
    if (!ok) {
      if (ok.error() == errc::queue_full) {
        MYCORRIZAL_LOG_INFO(resp_component,
                            "{}: closing a client over its output limit of "
                            "{} bytes (it does not read its replies)",
                            to_string(st.conn),
                            st.shared->opts.max_output_buffer);
        close_client(self, net::close_mode::abort);
      } else {
        self->quit();
      }
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
  }
  // After a FIN: once every command that arrived whole has its reply out
  // (an unfinished last one never will), close.
  if (st.eof && st.slots.empty() && !st.paused) {
    close_client(self, net::close_mode::flush);
  }
}

/// Runs the commands the parser holds, as many as the pipeline takes.
void parse_and_run(resp_conn_actor* self) {
  auto& st = self->state;
  while (!st.closing && st.slots.size() < st.shared->opts.max_pipeline) {
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
    auto slot = std::make_shared<resp::pending_reply>();
    st.slots.push_back(slot);
    resp::run_command(
      **cmd, st.session, slot,
      resp::command_env{self, st.shared->cache, st.shared->opts.op_timeout,
                        st.shared->opts.password, st.shared->opts.databases,
                        [self] {
                          // An asynchronous reply came in:
                          // write what is now in order.
                          write_ready(self);
                        },
                        st.wall});
    st.parser.auth_required(!st.session.authenticated);
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
                        net::tcp_conn_id conn) {
  auto& init = self->state;
  init.shared = std::move(shared);
  init.conn = conn;
  init.parser = resp::request_parser{init.shared->opts.limits};
  init.wall = wall_clock{self};
  init.session.id = init.shared->next_client_id.fetch_add(1);
  init.session.authenticated = init.shared->opts.password.empty();
  init.parser.auth_required(!init.session.authenticated);
  return {
    [self](net::tcp_received& x) {
      auto& st = self->state;
      if (st.closing) {
        return;
      }
      auto ok = st.parser.append(
        {reinterpret_cast<const char*>(x.data.data()), x.data.size()});
      if (!ok) {
        // Over the query buffer limit: Redis closes without a reply.
        MYCORRIZAL_LOG_INFO(resp_component, "{}: {}", to_string(st.conn),
                            ok.error().context());
        close_client(self, net::close_mode::abort);
        return;
      }
      parse_and_run(self);
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
        // Redis: the error, then close.
        constexpr std::string_view msg
          = "-ERR max number of clients reached\r\n";
        auto* p = reinterpret_cast<const std::byte*>(msg.data());
        static_cast<void>(
          r.write_tcp(x.conn, std::vector<std::byte>(p, p + msg.size())));
        static_cast<void>(r.close_tcp(x.conn));
        return;
      }
      auto c = self->spawn<caf::linked>(resp_conn, st.shared, x.conn);
      self->monitor(c);
      ++st.clients;
      if (!r.read_tcp(x.conn, true, c)) {
        caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
      }
    },
    [](net::tcp_closed&) {
      // A connection refused above.
    },
    [](net::tcp_received&) {
      // Nothing: refused connections read nothing worth answering.
    },
  };
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
  MYCORRIZAL_LOG_INFO(resp_component, "Redis protocol on {}{}",
                      to_string(x->local),
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
  // The connections are linked to the listener: they end with it, and the
  // reactor closes the sockets of owners that are gone.
  caf::scoped_actor self{*impl_->sys};
  self->monitor(impl_->listener);
  self->send_exit(impl_->listener, caf::exit_reason::user_shutdown);
  self->receive([](const caf::down_msg&) {},
                caf::after(std::chrono::seconds{10}) >> [] {});
}

} // namespace mycorrizal
