// SPDX-License-Identifier: Apache-2.0
// What the Redis commands share (resp_commands.cpp, resp_keyspace.cpp,
// resp_more_commands.cpp, resp_server_commands.cpp): the command context,
// running cache operations, read-modify-write, parsing numbers and times as
// Redis does.
#pragma once

#include "mycorrizal/cache/codec.hpp"
#include "mycorrizal/error.hpp"
#include "mycorrizal/serve/resp_commands.hpp"

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::resp::detail {

using cache::proto::op_code;
using cache::proto::op_reply;
using cache::proto::op_request;

inline constexpr int64_t llong_max = std::numeric_limits<int64_t>::max();
inline constexpr int64_t llong_min = std::numeric_limits<int64_t>::min();

inline constexpr std::string_view not_an_integer
  = "ERR value is not an integer or out of range";
inline constexpr std::string_view syntax_error = "ERR syntax error";

/// Redis's server version as HELLO and INFO report it: the behaviour we
/// answer with is 7.0's.
inline constexpr std::string_view redis_version = "7.0.15";

std::string lower(std::string_view x);
/// `x` as C's `%s` prints it, which Redis's error texts use for the
/// arguments they quote: up to its first NUL byte.
std::string_view c_string(std::string_view x);
/// Whether `x` is `y` (lower case) but for the case of its ASCII letters.
bool iequals(std::string_view x, std::string_view y);

/// Redis's string2ll: strict decimal, no spaces, no `+`, no leading zeros.
bool parse_ll(std::string_view s, int64_t& out);

/// A range of `total` units as GETRANGE, BITCOUNT and BITPOS take it:
/// negative indexes from the end, then clamped into it (`end` below 0
/// when `total` is 0: an empty range).
void clamp_range(int64_t total, int64_t& start, int64_t& end);

cache::proto::bytes to_bytes(std::string_view s);
std::string_view as_view(const cache::proto::bytes& b);

/// How a cache error reads as a Redis error reply.
std::string error_text(const error& e);

/// Redis's proto-max-bulk-len: no string grows past 512 MB.
inline constexpr int64_t max_string = int64_t{512} << 20;

/// A value past Mycel's limit, refused before it is built (SETRANGE or
/// SETBIT at a large offset would otherwise allocate it first): the text
/// the store would answer.
std::string too_large_for_mycel(int64_t size);

/// One command being run.
struct context {
  const command& cmd;
  session& s;
  const std::shared_ptr<pending_reply>& slot;
  const command_env& env;

  std::string_view arg(size_t i) const {
    return cmd.args[i];
  }

  size_t argc() const {
    return cmd.args.size();
  }

  void reply(const std::function<void(reply_writer&)>& f,
             bool close = false) const;

  void error(std::string_view text) const;

  std::string bucket() const;
};

/// CLIENT SETNAME's and HELLO SETNAME's check, then the name set; false
/// if it was refused (and the error replied).
bool set_client_name(const context& c, std::string_view name);

using op_results = std::vector<expected<op_reply>>;

/// Copyable: what asynchronous steps of a command keep.
struct async_reply {
  protocol_version version;
  std::shared_ptr<pending_reply> slot;
  std::function<void()> on_done;

  explicit async_reply(const context& c);

  void finish(const std::function<void(reply_writer&)>& f) const;

  /// `finish` by the only holder: lets go of the slot before `on_done`,
  /// which may write it and keep it for the connection's next command.
  void finish_last(const std::function<void(reply_writer&)>& f);
};

/// Sends `ops` (in parallel) to the bucket, creating it with the defaults
/// when it does not exist yet (and trying again for a while where an owner
/// has not heard of it yet), and calls `done` with every answer, in order.
void exec_ops(caf::event_based_actor* self,
              const std::shared_ptr<op_access>& access, caf::timespan timeout,
              const std::string& bucket, std::vector<op_request> ops,
              std::function<void(op_results&)> done);

/// `exec_ops` for a command: `f` writes the reply.
void run_ops(const context& c, std::vector<op_request> ops,
             std::function<void(reply_writer&, op_results&)> f);

/// Runs one operation; an error becomes the error reply, an answer goes to
/// `f`.
void run_one(const context& c, op_request op,
             std::function<void(reply_writer&, const op_reply&)> f);

op_request make(op_code code, std::string_view key);

/// `make` for a command, from an answered round's operation where the
/// connection kept one (no allocation for the key).
op_request make(const context& c, op_code code, std::string_view key);

/// `out` holds the bytes of `s` (in the room it has).
void assign_bytes(cache::proto::bytes& out, std::string_view s);

/// The first error among `rs`, or null.
const error* first_error(const op_results& rs);

/// What a read-modify-write does with what it read.
struct rmw_plan {
  /// An error reply, and nothing written.
  std::string error;
  /// The write (a put, del or expire; the version condition is added), or
  /// none.
  std::optional<op_request> write;
  /// The reply, once the write took (or at once without one); gets the
  /// write's answer (or the read's).
  std::function<void(reply_writer&, const op_reply&)> reply;
};

/// Reads `key` (`read`: get or ttl), lets `decide` plan from it, writes
/// only if the key still holds the version read (a put as compare-and-set,
/// a del or expire with `only_if_version`), and starts over from the read
/// when another write came first.
void read_modify_write(const context& c, std::string key, op_code read,
                       std::function<rmw_plan(const op_reply& current)> decide);

/// Parses an expiry given in `unit_ms` (relative unless `absolute`) as SET,
/// SETEX and GETEX do: the absolute Unix ms, or the error text.
std::optional<std::string> expire_at(const context& c, std::string_view text,
                                     int64_t unit_ms, bool absolute,
                                     std::string_view cmd_name, int64_t& out);

/// A command of the table.
struct command_def {
  std::string_view name;
  /// Redis's arity: n exactly, -n at least n (the name counts).
  int arity;
  void (*run)(const context&);
  /// Runs before AUTH.
  bool no_auth = false;
  /// COMMAND INFO: flags, and the first, last and step of key arguments.
  std::string_view flags = "";
  int first_key = 0;
  int last_key = 0;
  int step = 0;
  /// COMMAND DOCS: group and summary.
  std::string_view group = "string";
  std::string_view summary = "";
};

std::span<const command_def> command_table();

/// Whether command `index` of the table is flagged `readonly`.
bool command_is_readonly(int index);

// -- commands of resp_keyspace.cpp --------------------------------------------

void cmd_scan(const context& c);
void cmd_keys(const context& c);
void cmd_dbsize(const context& c);
void cmd_randomkey(const context& c);
void cmd_flushdb(const context& c);
void cmd_flushall(const context& c);

// -- commands of resp_more_commands.cpp ---------------------------------------

void cmd_rename(const context& c);
void cmd_renamenx(const context& c);
void cmd_copy(const context& c);
void cmd_move(const context& c);
void cmd_getbit(const context& c);
void cmd_setbit(const context& c);
void cmd_bitcount(const context& c);
void cmd_bitpos(const context& c);

// -- commands of resp_transactions.cpp ----------------------------------------

void cmd_multi(const context& c);
void cmd_exec(const context& c);
void cmd_discard(const context& c);
void cmd_watch(const context& c);
void cmd_unwatch(const context& c);

/// Whether `def` runs at once inside MULTI (EXEC, DISCARD, MULTI, QUIT,
/// RESET) rather than being queued.
bool runs_inside_multi(const command_def& def);

/// Queues the command of `c` for EXEC and answers QUEUED.
void queue_in_multi(const context& c);

// -- commands of resp_server_commands.cpp -------------------------------------

void cmd_client(const context& c);
void cmd_command(const context& c);
void cmd_info(const context& c);
void cmd_config(const context& c);
void cmd_memory(const context& c);
void cmd_time(const context& c);
void cmd_reset(const context& c);

// -- commands of resp_buckets.cpp ---------------------------------------------

void cmd_mycel_bucket(const context& c);
void cmd_mycel_use(const context& c);

} // namespace mycorrizal::resp::detail
