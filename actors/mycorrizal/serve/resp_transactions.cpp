// SPDX-License-Identifier: Apache-2.0
// MULTI, EXEC and DISCARD: a client's commands queued, then run in order
// as one reply. Redis runs them without another client's command in
// between; Mycel's keys live on different owners, so here EXEC runs them
// one after another, each atomic on its own key, but other clients'
// commands may come between them (docs/resp.md says so).
#include "mycorrizal/serve/resp_internal.hpp"

#include <fmt/format.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mycorrizal::resp::detail {

namespace {

/// What MULTI may queue at most (the queued arguments' bytes): a client
/// that never sends EXEC cannot grow the node's memory without bound.
constexpr size_t max_queued_bytes = size_t{256} << 20;

/// An EXEC under way: the queued commands, the replies so far.
struct exec_run {
  exec_run(const context& c, std::vector<std::vector<std::string>> queued)
      : cmds(std::move(queued)), out(c), s(&c.s), self(c.env.self),
        cache(&c.env.cache), timeout(c.env.timeout), password(&c.env.password),
        databases(c.env.databases), wall(&c.env.wall), server(&c.env.server),
        access(c.env.access) {
    // nop
  }

  std::vector<std::vector<std::string>> cmds;
  size_t next = 0;
  std::string replies;
  async_reply out;
  std::shared_ptr<pending_reply> slot;
  // The connection's own, as `command_env` refers to them: they live as
  // long as the connection's actor, and only its actor runs this.
  session* s;
  caf::event_based_actor* self;
  const cache_actor* cache;
  caf::timespan timeout;
  const std::string* password;
  uint32_t databases;
  const wall_clock* wall;
  server_state* server;
  std::shared_ptr<op_access> access;
};

/// Runs the queued commands from `run->next` on, one at a time (each sees
/// what the one before it did: SELECT, a write), and answers EXEC once
/// the last one answered.
void exec_step(const std::shared_ptr<exec_run>& run) {
  while (run->next < run->cmds.size()) {
    const auto& args = run->cmds[run->next];
    std::vector<std::string_view> views(args.begin(), args.end());
    run->slot = std::make_shared<pending_reply>();
    // Called when this command's reply completes later; holds the run
    // until then (nothing holds it in between: no cycle).
    std::function<void()> resume = [run] {
      run->replies += run->slot->bytes();
      ++run->next;
      exec_step(run);
    };
    command_env env{run->self,      *run->cache,    run->timeout,
                    *run->password, run->databases, resume,
                    *run->wall,     *run->server,   run->access};
    run_command(command{views, request_form::multibulk}, *run->s, run->slot,
                env);
    if (!run->slot->done()) {
      return;
    }
    run->replies += run->slot->bytes();
    ++run->next;
  }
  auto n = run->cmds.size();
  run->out.finish([&](reply_writer& w) {
    w.array(n);
    w.buffer() += run->replies;
  });
}

} // namespace

bool runs_inside_multi(const command_def& def) {
  // As Redis: these act at once inside MULTI, everything else is queued.
  return def.name == "exec" || def.name == "discard" || def.name == "multi"
         || def.name == "watch" || def.name == "quit" || def.name == "reset";
}

void queue_in_multi(const context& c) {
  size_t bytes = 0;
  for (auto a : c.cmd.args) {
    bytes += a.size();
  }
  if (c.s.queued_bytes + bytes > max_queued_bytes) {
    c.s.multi_dirty = true;
    c.error(fmt::format("ERR MULTI holds more than {} MB of queued commands",
                        max_queued_bytes >> 20));
    return;
  }
  c.s.queued.push_back(c.cmd.to_strings());
  c.s.queued_bytes += bytes;
  c.reply([](reply_writer& w) {
    w.simple_string("QUEUED");
  });
}

void cmd_multi(const context& c) {
  if (c.s.in_multi) {
    c.error("ERR MULTI calls can not be nested");
    return;
  }
  c.s.in_multi = true;
  c.reply([](reply_writer& w) {
    w.simple_string("OK");
  });
}

void cmd_discard(const context& c) {
  if (!c.s.in_multi) {
    c.error("ERR DISCARD without MULTI");
    return;
  }
  c.s.end_multi();
  c.reply([](reply_writer& w) {
    w.simple_string("OK");
  });
}

void cmd_exec(const context& c) {
  if (!c.s.in_multi) {
    c.error("ERR EXEC without MULTI");
    return;
  }
  if (c.s.multi_dirty) {
    c.s.end_multi();
    c.error("EXECABORT Transaction discarded because of previous errors.");
    return;
  }
  auto queued = std::move(c.s.queued);
  c.s.end_multi();
  exec_step(std::make_shared<exec_run>(c, std::move(queued)));
}

void cmd_watch(const context& c) {
  if (c.s.in_multi) {
    // Redis's answer; the transaction goes on.
    c.error("ERR WATCH inside MULTI is not allowed");
    return;
  }
  c.error("ERR WATCH is not offered: EXEC could not keep another client's "
          "write out until its commands ran (see docs/resp.md)");
}

void cmd_unwatch(const context& c) {
  // Nothing is ever watched.
  c.reply([](reply_writer& w) {
    w.simple_string("OK");
  });
}

} // namespace mycorrizal::resp::detail
