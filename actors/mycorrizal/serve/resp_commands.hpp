// SPDX-License-Identifier: Apache-2.0
// The Redis commands of the front door, run against Mycel.
#pragma once

#include "mycorrizal/mycel/cache.hpp"
#include "mycorrizal/resp/reply.hpp"
#include "mycorrizal/resp/request.hpp"
#include "mycorrizal/runtime/actor_time.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/timespan.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace mycorrizal::resp {

/// One client's connection state, as commands see and change it.
struct session {
  protocol_version version = protocol_version::resp2;
  int64_t id = 0;
  bool authenticated = true;
  /// SELECT: the bucket `db<db>`.
  uint32_t db = 0;
  /// CLIENT SETNAME.
  std::string name;
};

/// The reply to one command: written at once, or when its cache
/// operations answer. Replies go out in request order.
class pending_reply {
public:
  bool done() const noexcept {
    return done_;
  }

  const std::string& bytes() const noexcept {
    return bytes_;
  }

  /// Completes the reply; `close` ends the connection after it.
  void finish(std::string bytes, bool close = false) {
    bytes_ = std::move(bytes);
    close_after = close;
    done_ = true;
  }

  bool close_after = false;

private:
  bool done_ = false;
  std::string bytes_;
};

/// What a command may use.
struct command_env {
  caf::event_based_actor* self;
  cache_actor cache;
  caf::timespan timeout;
  const std::string& password;
  uint32_t databases;
  /// Called when an asynchronous reply completed.
  std::function<void()> on_done;
  /// Unix time for TTLs and expiries, by `self`'s actor clock.
  const wall_clock& wall;
};

/// Runs `cmd`: completes `slot` now, or later from `env.self`'s responses.
void run_command(const command& cmd, session& s,
                 const std::shared_ptr<pending_reply>& slot,
                 const command_env& env);

/// Names of the commands the front door knows, lower case (COMMAND COUNT,
/// docs).
size_t command_count();

} // namespace mycorrizal::resp
