// SPDX-License-Identifier: Apache-2.0
// The Redis commands of the front door, run against Mycel.
#pragma once

#include "mycorrizal/mycel/cache.hpp"
#include "mycorrizal/resp/reply.hpp"
#include "mycorrizal/resp/request.hpp"
#include "mycorrizal/runtime/actor_time.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/timespan.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

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
  /// MYCEL.USE: a named bucket instead of `db<db>` (empty: none).
  std::string bucket;
  /// The client's address and ours (CLIENT LIST), as `ip:port`.
  std::string addr;
  std::string laddr;
  /// Unix ms of the connect and of the last read that brought commands
  /// (Redis's lastinteraction; the connection sets it).
  int64_t created_ms = 0;
  int64_t last_ms = 0;
  /// The last command's name, lower case (`client|list` for subcommands).
  std::string last_command;
  /// MULTI: the commands queued for EXEC (copies), their bytes, and
  /// whether one was refused (EXEC then aborts).
  bool in_multi = false;
  bool multi_dirty = false;
  std::vector<std::vector<std::string>> queued;
  size_t queued_bytes = 0;

  /// Leaves MULTI, forgetting what was queued (EXEC, DISCARD, RESET).
  void end_multi() {
    in_multi = false;
    multi_dirty = false;
    queued.clear();
    queued_bytes = 0;
  }
};

/// What CLIENT LIST shows of one client.
struct client_info {
  int64_t id = 0;
  std::string addr;
  std::string laddr;
  std::string name;
  int64_t created_ms = 0;
  int64_t last_ms = 0;
  uint32_t db = 0;
  int resp = 2;
  std::string last_command;
  /// Commands queued by MULTI, or -1 outside MULTI.
  int64_t multi = -1;
  /// Redis's client flags: N (none), x (in MULTI).
  std::string_view flags = "N";
};

/// What CLIENT LIST shows of the client of session `s`.
client_info info_of(const session& s);

/// What every connection of one server shares: the clients (CLIENT LIST,
/// INFO), and the counters INFO and the metrics report. The connection
/// actors write, the scrape and other clients read; counters are atomics,
/// the client list is under a mutex (written once per batch of commands).
class server_state {
public:
  explicit server_state(size_t commands);

  std::string node_name;
  /// Unix ms when the server started (INFO uptime).
  int64_t started_ms = 0;
  uint16_t port = 0;
  size_t max_clients = 0;
  uint32_t databases = 16;

  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> rejected_total{0};
  std::atomic<uint64_t> commands_total{0};
  std::atomic<uint64_t> error_replies_total{0};
  /// Read commands' lookups of a key that existed, and of one that did
  /// not (INFO keyspace_hits and keyspace_misses).
  std::atomic<uint64_t> keyspace_hits{0};
  std::atomic<uint64_t> keyspace_misses{0};

  void count_lookup(bool found);
  /// Per command of the table (`command_name(i)`), and one more at the end
  /// for commands the front door does not know.
  std::unique_ptr<std::atomic<uint64_t>[]> calls;
  /// Answered with an error by the command (Redis's failed_calls).
  std::unique_ptr<std::atomic<uint64_t>[]> failed;
  /// Refused before the command ran: arity, NOAUTH (rejected_calls).
  std::unique_ptr<std::atomic<uint64_t>[]> rejected;
  /// Microseconds from the read that brought each command to the write of
  /// its reply, summed (INFO commandstats' usec; see docs/resp.md).
  std::unique_ptr<std::atomic<uint64_t>[]> usec;

  void update(const session& s);
  void remove(int64_t id);
  std::vector<client_info> clients() const;
  size_t client_count() const;

  /// Counts a reply to command `index` (-1: unknown); `bytes` tell an
  /// error, and `rejected` whether it came before the command ran; `us`:
  /// the command's time in the node.
  void count_reply(int index, std::string_view bytes, bool rejected = false,
                   uint64_t us = 0);

  /// Error replies by their code (the first word: ERR, WRONGTYPE, NOAUTH,
  /// ...), for INFO errorstats; at most `max_error_codes` codes.
  std::vector<std::pair<std::string, uint64_t>> error_counts() const;
  static constexpr size_t max_error_codes = 128;

  /// The counters at the last CONFIG RESETSTAT: INFO shows each counter
  /// minus its value here, while the metrics' counters go on (a
  /// Prometheus counter never goes back).
  struct stat_base {
    uint64_t connections = 0;
    uint64_t rejected_connections = 0;
    uint64_t commands = 0;
    uint64_t errors = 0;
    uint64_t hits = 0;
    uint64_t misses = 0;
    /// Per command: calls, failed, rejected, usec.
    std::vector<std::array<uint64_t, 4>> per_command;
  };

  stat_base base() const;

  /// CONFIG RESETSTAT: INFO's counts start again; errorstats forget.
  void reset_stats();

private:
  size_t commands_;
  mutable std::mutex mtx_;
  std::map<int64_t, client_info> clients_;
  mutable std::mutex errors_mtx_;
  std::map<std::string, uint64_t, std::less<>> errors_;
  stat_base base_;
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

  /// The buffer, for a `reply_writer` to write this reply into: its room
  /// is that of the reply this object held before (see `reuse`).
  std::string take_buffer() noexcept {
    return std::exchange(bytes_, std::string{});
  }

  /// Ready for another command, once its reply was written: a connection
  /// keeps a few of these, so that a pipelined command costs neither this
  /// object nor its reply's buffer an allocation. A large buffer goes.
  void reuse() noexcept {
    done_ = false;
    close_after = false;
    command = -1;
    rejected = false;
    resets_stats = false;
    read_us = 0;
    if (bytes_.capacity() > kept_buffer) {
      bytes_ = std::string{};
    } else {
      bytes_.clear();
    }
  }

  /// The largest buffer `reuse` keeps.
  static constexpr size_t kept_buffer = 1024;

  bool close_after = false;
  /// The command's index in the table (-1: unknown), for the counters.
  int command = -1;
  /// Answered before the command ran (arity, NOAUTH): a rejected call.
  bool rejected = false;
  /// CONFIG RESETSTAT: INFO's counts restart when this reply is written,
  /// after the replies before it were counted (they are counted as they
  /// are written, in order).
  bool resets_stats = false;
  /// When the read that brought the command came (the connection's
  /// actor clock, in microseconds), for the command's time.
  int64_t read_us = 0;

private:
  bool done_ = false;
  std::string bytes_;
};

/// The cache operations of one command and what is done with their
/// answers (resp_commands.cpp).
struct op_batch;

/// How a connection's cache operations reach Mycel: through the bucket's
/// own actor once its handle is known (one hop less than the cache
/// actor), and with a timer on the connection's actor for retries.
struct op_access {
  cache_actor cache;
  /// Runs `f` on the connection's actor after `delay` (not after the
  /// connection ended).
  std::function<void(caf::timespan delay, std::function<void()> f)> later;
  /// Who waits for an operation: plain data, no callbacks (two
  /// `std::function`s per operation were a sixth of the allocations of a
  /// pipelined GET).
  struct held_op {
    /// The command's operations, and this one's place in them.
    std::shared_ptr<op_batch> batch;
    size_t index = 0;
    caf::timespan timeout{};
    /// Tries before this one (see resp_commands.cpp, `op_retry`).
    int attempt = 0;
  };

  /// Operations for one bucket, in order, and who waits for each
  /// (`waiting[i]` for `ops[i]`).
  struct held_ops {
    std::vector<cache::proto::op_request> ops;
    std::vector<held_op> waiting;
  };

  /// A connection's way to one bucket. One round of operations is under
  /// way at a time: what the connection asks meanwhile waits in `queued`
  /// and leaves as the next round, in one message. So a connection's
  /// operations reach the bucket in the order it sent them, also when one
  /// of them must be tried again (it goes first in the next round) or the
  /// way changes (from the cache actor to the bucket's own).
  struct lane {
    /// The bucket's own actor; invalid: not known (yet, or any more).
    bucket_handle handle;
    /// The handle was asked for and has not come yet.
    bool asking = false;
    /// A round is under way, or a retry waits.
    bool busy = false;
    held_ops queued;
  };

  /// Lanes by bucket name (never erased: a connection uses few buckets).
  std::unordered_map<std::string, lane> lanes;

  /// The lane of `bucket`, made when first asked for. The last one asked
  /// for is at hand without hashing the name (every operation asks, and a
  /// connection mostly stays in one database).
  lane& lane_of(const std::string& bucket) {
    if (last_lane_ == nullptr || last_bucket_ != bucket) {
      auto& ln = lanes[bucket];
      last_lane_ = &ln; // node-based: the address stays
      last_bucket_ = bucket;
    }
    return *last_lane_;
  }

  /// While above 0 (the connection runs what one read brought), rounds do
  /// not start: they leave at `flush_ops`, so a pipeline costs the
  /// bucket's actor one message, not one per command.
  int holding = 0;

  /// Emptied vectors of answered rounds, kept with their room for the
  /// next rounds (large allocations each round cost glibc a consolidation
  /// of its fast bins).
  std::vector<held_ops> spare;

  /// An answered round's reply vector, emptied, for the next round's
  /// answers (`cache_op_batch::room`).
  std::vector<cache::proto::op_reply> spare_replies;

  /// Operations of answered rounds, for the next commands' (`make`): a
  /// key or value that outgrows the short-string buffer costs an
  /// allocation once per kept operation, not once per command.
  std::vector<cache::proto::op_request> spare_ops;

  /// How many operations `spare_ops` keeps, and the largest key or value
  /// whose room it keeps.
  static constexpr size_t kept_ops = 64;
  static constexpr size_t kept_value = 1024;

  /// Keeps what it can of `ops` (an answered round's, let go by the
  /// bucket) in `spare_ops`.
  void keep_ops(std::vector<cache::proto::op_request>& ops) {
    for (auto& op : ops) {
      if (spare_ops.size() >= kept_ops) {
        return;
      }
      if (op.value.capacity() > kept_value) {
        op.value = cache::proto::bytes{};
      }
      if (op.key.capacity() > kept_value) {
        op.key = std::string{};
      }
      spare_ops.push_back(std::move(op));
    }
  }

  /// While above 0 (a round's answers are being handed to their
  /// commands), a command whose reply is done leaves it for `on_answers`,
  /// called once after the round, instead of looking at the connection's
  /// replies each time (`answered` says whether one did).
  int answering = 0;
  bool answered = false;
  std::function<void()> on_answers;

private:
  lane* last_lane_ = nullptr;
  std::string last_bucket_;
};

/// Starts the rounds that wait for `holding` to end (see `op_access`).
void flush_ops(caf::event_based_actor* self,
               const std::shared_ptr<op_access>& access);

/// What a command may use: references to the connection's own (one is
/// made per command; copies of handles cost atomic counts each).
struct command_env {
  caf::event_based_actor* self;
  const cache_actor& cache;
  caf::timespan timeout;
  const std::string& password;
  uint32_t databases;
  /// Called when an asynchronous reply completed.
  const std::function<void()>& on_done;
  /// Unix time for TTLs and expiries, by `self`'s actor clock.
  const wall_clock& wall;
  /// The server's clients and counters.
  server_state& server;
  /// The connection's way to the cache for operations.
  const std::shared_ptr<op_access>& access;
};

/// Runs `cmd`: completes `slot` now, or later from `env.self`'s responses.
void run_command(const command& cmd, session& s,
                 const std::shared_ptr<pending_reply>& slot,
                 const command_env& env);

/// Whether `cmd` must run alone (see resp.cpp): a read-modify-write or a
/// walk over the key space, which takes several steps.
bool is_sequential(const command& cmd);

/// How many commands the front door knows (COMMAND COUNT).
size_t command_count();

/// The name of command `i` of the table, lower case.
std::string_view command_name(size_t i);

} // namespace mycorrizal::resp
