// SPDX-License-Identifier: Apache-2.0
// The server and connection commands of the Redis front door that clients
// and tools send around the data: CLIENT, COMMAND, INFO, CONFIG, TIME,
// RESET.
#include "mycorrizal/cache/store.hpp"
#include "mycorrizal/resp/glob.hpp"
#include "mycorrizal/serve/resp_internal.hpp"

#include <caf/all.hpp>

#include <fmt/format.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mycorrizal::resp::detail {

namespace {

/// A CLIENT LIST line (Redis 7.0's fields; what Mycorrizal does not have is
/// 0 or empty).
std::string client_line(const client_info& x, int64_t now_ms) {
  auto age = (now_ms - x.created_ms) / 1000;
  auto idle = (now_ms - x.last_ms) / 1000;
  return fmt::format(
    "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={} db={} "
    "sub=0 psub=0 ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 "
    "rbs=0 rbp=0 "
    "obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 "
    "resp={}\n",
    x.id, x.addr, x.laddr, x.name, std::max<int64_t>(age, 0),
    std::max<int64_t>(idle, 0), x.flags, x.db, x.multi,
    x.last_command.empty() ? "NULL" : x.last_command, x.resp);
}

void reply_ok(reply_writer& w) {
  w.simple_string("OK");
}

std::vector<std::string> split_flags(std::string_view flags) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < flags.size()) {
    auto j = flags.find(' ', i);
    if (j == std::string_view::npos) {
      j = flags.size();
    }
    if (j > i) {
      out.emplace_back(flags.substr(i, j - i));
    }
    i = j + 1;
  }
  return out;
}

/// The ACL categories of `d` (without the `@`), in Redis's order (that of
/// its category flags: keyspace, read, write, string, admin, fast, slow,
/// connection).
std::vector<std::string_view> categories(const command_def& d) {
  // Where Redis 7.0's categories do not follow from the flags and group.
  static const std::pair<std::string_view, std::vector<std::string_view>>
    exceptions[] = {
      {"client", {"slow"}},
      {"command", {"slow", "connection"}},
      {"config", {"slow"}},
      {"memory", {"slow"}},
      {"dbsize", {"keyspace", "read", "fast"}},
      {"flushall", {"keyspace", "write", "slow", "dangerous"}},
      {"flushdb", {"keyspace", "write", "slow", "dangerous"}},
      {"info", {"slow", "dangerous"}},
      {"keys", {"keyspace", "read", "slow", "dangerous"}},
      {"time", {"fast"}},
      {"multi", {"fast", "transaction"}},
      {"exec", {"slow", "transaction"}},
      {"discard", {"fast", "transaction"}},
      {"watch", {"fast", "transaction"}},
      {"unwatch", {"fast", "transaction"}},
    };
  for (const auto& [name, cats] : exceptions) {
    if (name == d.name) {
      return cats;
    }
  }
  bool write = d.flags.find("write") != std::string_view::npos;
  bool read = d.flags.find("readonly") != std::string_view::npos;
  bool fast = d.flags.find("fast") != std::string_view::npos;
  std::string_view group = d.group == "generic"  ? "keyspace"
                           : d.group == "server" ? "admin"
                                                 : d.group;
  std::vector<std::string_view> cats;
  if (group == "keyspace") {
    cats.push_back(group);
  }
  if (read) {
    cats.emplace_back("read");
  }
  if (write) {
    cats.emplace_back("write");
  }
  if (group != "keyspace" && group != "connection") {
    cats.push_back(group);
  }
  cats.emplace_back(fast ? "fast" : "slow");
  if (group == "connection") {
    cats.push_back(group);
  }
  return cats;
}

void write_command_info(reply_writer& w, const command_def& d) {
  auto flags = split_flags(d.flags);
  w.array(10);
  w.bulk_string(d.name);
  w.integer(d.arity);
  w.set(flags.size());
  for (auto& f : flags) {
    w.simple_string(f);
  }
  w.integer(d.first_key);
  w.integer(d.last_key);
  w.integer(d.step);
  auto cats = categories(d);
  w.set(cats.size());
  for (auto cat : cats) {
    w.simple_string(fmt::format("@{}", cat));
  }
  // None of these has tips, key specifications or subcommands listed:
  // Redis answers each of those as an empty set.
  w.set(0);
  w.set(0);
  w.set(0);
}

const command_def* find_def(std::string_view name) {
  auto key = lower(name);
  for (const auto& d : command_table()) {
    if (d.name == key) {
      return &d;
    }
  }
  return nullptr;
}

std::string section_server(const context& c) {
  utsname u{};
  std::string os = "Linux";
  if (uname(&u) == 0) {
    os = fmt::format("{} {} {}", u.sysname, u.release, u.machine);
  }
  auto& srv = c.env.server;
  auto now = c.env.wall.now_ms(c.env.self);
  auto up = std::max<int64_t>((now - srv.started_ms) / 1000, 0);
  return fmt::format("# Server\r\n"
                     "redis_version:{}\r\n"
                     "redis_mode:standalone\r\n"
                     "os:{}\r\n"
                     "arch_bits:64\r\n"
                     "process_id:{}\r\n"
                     "tcp_port:{}\r\n"
                     "server_time_usec:{}\r\n"
                     "uptime_in_seconds:{}\r\n"
                     "uptime_in_days:{}\r\n"
                     "mycorrizal_node:{}\r\n",
                     redis_version, os, getpid(), srv.port, now * 1000, up,
                     up / 86400, srv.node_name);
}

std::string section_clients(const context& c) {
  auto& srv = c.env.server;
  return fmt::format("# Clients\r\n"
                     "connected_clients:{}\r\n"
                     "maxclients:{}\r\n",
                     srv.client_count(), srv.max_clients);
}

/// Redis's bytesToHuman: 512B, 1.50K, 20.00M...
std::string human_bytes(uint64_t n) {
  constexpr std::string_view units = "KMGTPE";
  if (n < 1024) {
    return fmt::format("{}B", n);
  }
  auto x = static_cast<double>(n) / 1024;
  size_t u = 0;
  while (x >= 1024 && u + 1 < units.size()) {
    x /= 1024;
    ++u;
  }
  return fmt::format("{:.2f}{}", x, units[u]);
}

std::string section_memory() {
  long pages = 0;
  long rss = 0;
  if (auto* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &rss) != 2) {
      rss = 0;
    }
    std::fclose(f);
  }
  auto rss_bytes = static_cast<uint64_t>(rss)
                   * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  // What the allocator has handed out and not taken back (Redis's
  // used_memory is its allocator's count too): heap chunks in use plus
  // blocks mapped on their own.
  auto m = mallinfo2();
  auto used = static_cast<uint64_t>(m.uordblks + m.hblkhd);
  if (used == 0) {
    used = rss_bytes; // an allocator that does not tell (a sanitizer's)
  }
  return fmt::format("# Memory\r\n"
                     "used_memory:{}\r\n"
                     "used_memory_human:{}\r\n"
                     "used_memory_rss:{}\r\n"
                     "used_memory_rss_human:{}\r\n"
                     "maxmemory:0\r\n"
                     "maxmemory_human:0B\r\n"
                     "maxmemory_policy:allkeys-lru\r\n",
                     used, human_bytes(used), rss_bytes,
                     human_bytes(rss_bytes));
}

std::string section_stats(const context& c) {
  auto& srv = c.env.server;
  auto base = srv.base();
  return fmt::format("# Stats\r\n"
                     "total_connections_received:{}\r\n"
                     "total_commands_processed:{}\r\n"
                     "rejected_connections:{}\r\n"
                     "keyspace_hits:{}\r\n"
                     "keyspace_misses:{}\r\n"
                     "total_error_replies:{}\r\n",
                     srv.connections_total.load() - base.connections,
                     srv.commands_total.load() - base.commands,
                     srv.rejected_total.load() - base.rejected_connections,
                     srv.keyspace_hits.load() - base.hits,
                     srv.keyspace_misses.load() - base.misses,
                     srv.error_replies_total.load() - base.errors);
}

std::string section_persistence(const context& c) {
  // Nothing is saved or loaded: Mycel keeps its copies in memory on
  // several nodes (docs/cache.md). The fields are Redis's with save ""
  // and appendonly no.
  return fmt::format("# Persistence\r\n"
                     "loading:0\r\n"
                     "async_loading:0\r\n"
                     "current_cow_peak:0\r\n"
                     "current_cow_size:0\r\n"
                     "current_cow_size_age:0\r\n"
                     "current_fork_perc:0.00\r\n"
                     "current_save_keys_processed:0\r\n"
                     "current_save_keys_total:0\r\n"
                     "rdb_bgsave_in_progress:0\r\n"
                     "rdb_last_save_time:{}\r\n"
                     "rdb_last_bgsave_status:ok\r\n"
                     "rdb_last_bgsave_time_sec:-1\r\n"
                     "rdb_current_bgsave_time_sec:-1\r\n"
                     "rdb_saves:0\r\n"
                     "rdb_last_cow_size:0\r\n"
                     "rdb_last_load_keys_expired:0\r\n"
                     "rdb_last_load_keys_loaded:0\r\n"
                     "aof_enabled:0\r\n"
                     "aof_rewrite_in_progress:0\r\n"
                     "aof_rewrite_scheduled:0\r\n"
                     "aof_last_rewrite_time_sec:-1\r\n"
                     "aof_current_rewrite_time_sec:-1\r\n"
                     "aof_last_bgrewrite_status:ok\r\n"
                     "aof_rewrites:0\r\n"
                     "aof_rewrites_consecutive_failures:0\r\n"
                     "aof_last_write_status:ok\r\n"
                     "aof_last_cow_size:0\r\n"
                     "module_fork_in_progress:0\r\n"
                     "module_fork_last_cow_size:0\r\n",
                     c.env.server.started_ms / 1000);
}

/// Per command that was called: calls, the time (from the read that
/// brought each call to the write of its reply, in microseconds: the
/// wait for the key's owners included, where Redis counts its own
/// execution only), and the calls refused before they ran or answered
/// with an error.
std::string section_commandstats(const context& c) {
  auto& srv = c.env.server;
  auto base = srv.base();
  std::string text = "# Commandstats\r\n";
  for (size_t i = 0; i < command_count(); ++i) {
    const auto& b = base.per_command[i];
    auto calls = srv.calls[i].load(std::memory_order_relaxed) - b[0];
    auto rejected = srv.rejected[i].load(std::memory_order_relaxed) - b[2];
    if (calls == 0) {
      continue;
    }
    auto us = srv.usec[i].load(std::memory_order_relaxed) - b[3];
    // Redis counts a refused call apart from its calls.
    auto ran = calls - std::min(calls, rejected);
    text += fmt::format(
      "cmdstat_{}:calls={},usec={},usec_per_call={:.2f},rejected_calls={},"
      "failed_calls={}\r\n",
      command_name(i), ran, us,
      ran > 0 ? static_cast<double>(us) / static_cast<double>(ran) : 0.0,
      rejected, srv.failed[i].load(std::memory_order_relaxed) - b[1]);
  }
  return text;
}

std::string section_cpu() {
  rusage self{};
  getrusage(RUSAGE_SELF, &self);
  auto secs = [](const timeval& t) {
    return fmt::format("{}.{:06}", t.tv_sec, t.tv_usec);
  };
  return fmt::format("# CPU\r\n"
                     "used_cpu_sys:{}\r\n"
                     "used_cpu_user:{}\r\n",
                     secs(self.ru_stime), secs(self.ru_utime));
}

} // namespace

bool set_client_name(const context& c, std::string_view name) {
  for (auto ch : name) {
    if (ch < '!' || ch > '~') {
      c.error("ERR Client names cannot contain spaces, newlines or special "
              "characters.");
      return false;
    }
  }
  c.s.name = std::string{name};
  return true;
}

void cmd_client(const context& c) {
  auto sub = lower(c.arg(1));
  auto now = c.env.wall.now_ms(c.env.self);
  if (sub == "id" && c.argc() == 2) {
    c.reply([&](reply_writer& w) {
      w.integer(c.s.id);
    });
  } else if (sub == "getname" && c.argc() == 2) {
    c.reply([&](reply_writer& w) {
      if (c.s.name.empty()) {
        w.null();
      } else {
        w.bulk_string(c.s.name);
      }
    });
  } else if (sub == "setname" && c.argc() == 3) {
    if (set_client_name(c, c.arg(2))) {
      c.reply(reply_ok);
    }
  } else if (sub == "info" && c.argc() == 2) {
    c.s.last_command = "client|info";
    auto line = client_line(info_of(c.s), now);
    c.reply([&](reply_writer& w) {
      w.verbatim(line, "txt");
    });
  } else if (sub == "list") {
    c.s.last_command = "client|list";
    c.env.server.update(c.s);
    // As Redis 7.0: TYPE only as the whole filter; ID with one or more
    // integers (any, unknown ones list nothing), each listed client in
    // the order asked; anything else is a syntax error.
    std::string text;
    auto clients = c.env.server.clients();
    if (c.argc() == 4 && iequals(c.arg(2), "type")) {
      auto t = lower(c.arg(3));
      if (t != "normal" && t != "master" && t != "replica" && t != "slave"
          && t != "pubsub") {
        c.error(
          fmt::format("ERR Unknown client type '{}'", c_string(c.arg(3))));
        return;
      }
      if (t == "normal") {
        for (auto& x : clients) {
          text += client_line(x, now);
        }
      }
    } else if (c.argc() > 3 && iequals(c.arg(2), "id")) {
      for (size_t i = 3; i < c.argc(); ++i) {
        int64_t id = 0;
        if (!parse_ll(c.arg(i), id)) {
          c.error("ERR Invalid client ID");
          return;
        }
        for (auto& x : clients) {
          if (static_cast<int64_t>(x.id) == id) {
            text += client_line(x, now);
          }
        }
      }
    } else if (c.argc() != 2) {
      c.error(syntax_error);
      return;
    } else {
      for (auto& x : clients) {
        text += client_line(x, now);
      }
    }
    c.reply([&](reply_writer& w) {
      w.verbatim(text, "txt");
    });
  } else if (sub == "help" && c.argc() == 2) {
    c.reply([](reply_writer& w) {
      constexpr std::string_view lines[]
        = {"CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
           "GETNAME",
           "    Return the name of the current connection.",
           "ID",
           "    Return the ID of the current connection.",
           "INFO",
           "    Return information about the current client connection.",
           "LIST [options ...]",
           "    Return information about client connections. Options:",
           "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
           "      Return clients of specified type.",
           "    * ID <client-id> [<client-id> ...]",
           "      Return clients of specified IDs only.",
           "SETNAME <name>",
           "    Assign the name <name> to the current connection.",
           "HELP",
           "    Print this help."};
      w.array(std::size(lines));
      for (auto l : lines) {
        w.simple_string(l);
      }
    });
  } else if (sub == "id" || sub == "getname" || sub == "setname"
             || sub == "info" || sub == "help") {
    c.error(fmt::format("ERR wrong number of arguments for 'client|{}' command",
                        sub));
  } else {
    c.error(fmt::format("ERR unknown subcommand '{}'. Try CLIENT HELP.",
                        c_string(c.arg(1)).substr(0, 128)));
  }
}

void cmd_command(const context& c) {
  auto table = command_table();
  if (c.argc() == 1) {
    c.reply([&](reply_writer& w) {
      w.array(table.size());
      for (const auto& d : table) {
        write_command_info(w, d);
      }
    });
    return;
  }
  auto sub = lower(c.arg(1));
  if (sub == "count" && c.argc() == 2) {
    c.reply([&](reply_writer& w) {
      w.integer(static_cast<int64_t>(table.size()));
    });
  } else if (sub == "list" && (c.argc() == 2 || c.argc() == 5)) {
    // COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]
    std::vector<std::string_view> names;
    if (c.argc() == 2) {
      for (const auto& d : table) {
        names.push_back(d.name);
      }
    } else {
      auto by = lower(c.arg(3));
      if (!iequals(c.arg(2), "filterby")
          || (by != "module" && by != "aclcat" && by != "pattern")) {
        c.error(syntax_error);
        return;
      }
      for (const auto& d : table) {
        bool hit = false;
        if (by == "aclcat") {
          auto cats = categories(d);
          hit = std::any_of(cats.begin(), cats.end(), [&](auto cat) {
            return iequals(c.arg(4), cat);
          });
        } else if (by == "pattern") {
          hit = glob_match(c_string(c.arg(4)), d.name, true);
        }
        if (hit) {
          names.push_back(d.name);
        }
      }
    }
    c.reply([&](reply_writer& w) {
      w.array(names.size());
      for (auto name : names) {
        w.bulk_string(name);
      }
    });
  } else if (sub == "list") {
    c.error(syntax_error);
  } else if (sub == "info") {
    c.reply([&](reply_writer& w) {
      if (c.argc() == 2) {
        w.array(table.size());
        for (const auto& d : table) {
          write_command_info(w, d);
        }
        return;
      }
      w.array(c.argc() - 2);
      for (size_t i = 2; i < c.argc(); ++i) {
        if (const auto* d = find_def(c.arg(i))) {
          write_command_info(w, *d);
        } else {
          w.null();
        }
      }
    });
  } else if (sub == "docs") {
    std::vector<const command_def*> defs;
    if (c.argc() == 2) {
      for (const auto& d : table) {
        defs.push_back(&d);
      }
    } else {
      for (size_t i = 2; i < c.argc(); ++i) {
        if (const auto* d = find_def(c.arg(i))) {
          defs.push_back(d);
        }
      }
    }
    c.reply([&](reply_writer& w) {
      w.map(defs.size());
      for (const auto* d : defs) {
        w.bulk_string(d->name);
        w.map(2);
        w.bulk_string("summary").bulk_string(d->summary);
        w.bulk_string("group").bulk_string(d->group);
      }
    });
  } else if (sub == "count") {
    c.error("ERR wrong number of arguments for 'command|count' command");
  } else {
    c.error(fmt::format("ERR unknown subcommand '{}'. Try COMMAND HELP.",
                        c_string(c.arg(1)).substr(0, 128)));
  }
}

void cmd_info(const context& c) {
  // Redis 7.0's choice: no argument or `default` the default sections,
  // `all` every one (`everything` also the modules' own: there are none),
  // others by name in any case, each once, in Redis's order.
  std::set<std::string, std::less<>> want;
  bool all = false;
  bool defaults = c.argc() == 1;
  for (size_t i = 1; i < c.argc(); ++i) {
    auto name = lower(c.arg(i));
    if (name == "all" || name == "everything") {
      all = true;
    } else if (name == "default") {
      defaults = true;
    } else {
      want.insert(std::move(name));
    }
  }
  auto has = [&](std::string_view name, bool by_default) {
    return all || (defaults && by_default) || want.count(name) != 0;
  };
  std::vector<std::string> parts;
  if (has("server", true)) {
    parts.push_back(section_server(c));
  }
  if (has("clients", true)) {
    parts.push_back(section_clients(c));
  }
  if (has("memory", true)) {
    parts.push_back(section_memory());
  }
  if (has("persistence", true)) {
    parts.push_back(section_persistence(c));
  }
  if (has("stats", true)) {
    parts.push_back(section_stats(c));
  }
  if (has("replication", true)) {
    // A node serves its keys itself; Mycel replicates them, not Redis's
    // replication (SYNC and PSYNC are unknown commands).
    parts.emplace_back(
      "# Replication\r\n"
      "role:master\r\n"
      "connected_slaves:0\r\n"
      "master_failover_state:no-failover\r\n"
      "master_replid:0000000000000000000000000000000000000000\r\n"
      "master_replid2:0000000000000000000000000000000000000000\r\n"
      "master_repl_offset:0\r\n"
      "second_repl_offset:-1\r\n"
      "repl_backlog_active:0\r\n"
      "repl_backlog_size:0\r\n"
      "repl_backlog_first_byte_offset:0\r\n"
      "repl_backlog_histlen:0\r\n");
  }
  if (has("cpu", true)) {
    parts.push_back(section_cpu());
  }
  if (has("module_list", true) || has("modules", false)) {
    parts.emplace_back("# Modules\r\n");
  }
  if (has("commandstats", false)) {
    parts.push_back(section_commandstats(c));
  }
  if (has("errorstats", true)) {
    std::string text = "# Errorstats\r\n";
    for (const auto& [code, count] : c.env.server.error_counts()) {
      text += fmt::format("errorstat_{}:count={}\r\n", code, count);
    }
    parts.push_back(std::move(text));
  }
  if (has("latencystats", false)) {
    // As Redis with latency-tracking off: the node's latency histograms
    // are its metrics (mycorrizal_resp_*, mycorrizal_cache_*).
    parts.emplace_back("# Latencystats\r\n");
  }
  if (has("cluster", true)) {
    // Not Redis Cluster: every node serves every key (docs/resp.md).
    parts.emplace_back("# Cluster\r\ncluster_enabled:0\r\n");
  }
  if (has("keyspace", true)) {
    // Per database key counts would take a walk over every partition of
    // the cluster (DBSIZE does that on request); INFO stays cheap.
    parts.emplace_back("# Keyspace\r\n");
  }
  std::string text;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) {
      text += "\r\n";
    }
    text += parts[i];
  }
  c.reply([&](reply_writer& w) {
    w.verbatim(text, "txt");
  });
}

void cmd_config(const context& c) {
  auto sub = lower(c.arg(1));
  if (sub == "get") {
    if (c.argc() < 3) {
      c.error("ERR wrong number of arguments for 'config|get' command");
      return;
    }
    auto& srv = c.env.server;
    const std::pair<std::string, std::string> params[] = {
      {"appendonly", "no"},
      {"bind", c.s.laddr.substr(0, c.s.laddr.rfind(':'))},
      {"cluster-enabled", "no"},
      {"databases", std::to_string(c.env.databases)},
      {"maxclients", std::to_string(srv.max_clients)},
      {"maxmemory", "0"},
      {"maxmemory-policy", "allkeys-lru"},
      {"port", std::to_string(srv.port)},
      {"proto-max-bulk-len", "536870912"},
      {"requirepass", c.env.password},
      {"save", ""},
      {"tcp-keepalive", "300"},
      {"timeout", "0"},
    };
    // As Redis 7.0: an argument without `*`, `?` or `[` (before a NUL)
    // names a parameter in any case and is answered as written; the
    // others match names as globs, read as C strings (up to a NUL); each
    // parameter once.
    std::vector<std::pair<std::string_view, const std::string*>> hits;
    std::vector<bool> taken(std::size(params), false);
    for (size_t i = 2; i < c.argc(); ++i) {
      auto arg = c.arg(i);
      auto pattern = c_string(arg);
      bool glob = pattern.find_first_of("*?[") != std::string_view::npos;
      for (size_t k = 0; k < std::size(params); ++k) {
        const auto& p = params[k];
        bool hit = glob ? glob_match(pattern, p.first, true)
                        : iequals(arg, p.first);
        if (hit && !taken[k]) {
          taken[k] = true;
          hits.emplace_back(glob ? std::string_view{p.first} : arg, &p.second);
        }
      }
    }
    c.reply([&](reply_writer& w) {
      w.map(hits.size());
      for (const auto& [name, value] : hits) {
        w.bulk_string(name).bulk_string(*value);
      }
    });
  } else if (sub == "resetstat" || sub == "rewrite" || sub == "help") {
    if (c.argc() != 2) {
      c.error(fmt::format(
        "ERR wrong number of arguments for 'config|{}' command", sub));
    } else if (sub == "resetstat") {
      c.slot->resets_stats = true; // in write_ready, in order
      c.reply(reply_ok);
    } else if (sub == "rewrite") {
      c.error("ERR The server is running without a config file");
    } else {
      c.reply([](reply_writer& w) {
        constexpr std::string_view lines[] = {
          "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
          "GET <pattern>",
          "    Return parameters matching the glob-like <pattern>.",
          "SET <directive> <value>",
          "    Not supported: the node's settings are its command line.",
          "RESETSTAT",
          "    Reset statistics reported by the INFO command.",
          "REWRITE",
          "    Not supported: there is no configuration file.",
          "HELP",
          "    Print this help.",
        };
        w.array(std::size(lines));
        for (auto line : lines) {
          w.simple_string(line);
        }
      });
    }
  } else if (sub == "set") {
    if (c.argc() < 4) {
      c.error("ERR wrong number of arguments for 'config|set' command");
    } else {
      c.error("ERR CONFIG SET is not supported: mycorrizal-node takes its "
              "settings on the command line");
    }
  } else {
    c.error(fmt::format("ERR unknown subcommand '{}'. Try CONFIG HELP.",
                        c_string(c.arg(1)).substr(0, 128)));
  }
}

void cmd_memory(const context& c) {
  auto sub = lower(c.arg(1));
  if (sub == "usage" && c.argc() >= 3) {
    // SAMPLES n pairs (a string has no elements to sample).
    for (size_t j = 3; j < c.argc(); j += 2) {
      int64_t samples = 0;
      if (!iequals(c.arg(j), "samples") || j + 1 >= c.argc()) {
        c.error(syntax_error);
        return;
      }
      if (!parse_ll(c.arg(j + 1), samples)) {
        c.error(not_an_integer);
        return;
      }
      if (samples < 0) {
        c.error(syntax_error);
        return;
      }
    }
    // What an owner's store counts for the entry (its max_bytes
    // accounting): the key, the value and the overhead of an entry.
    auto key_size = c.arg(2).size();
    run_one(c, make(op_code::get, c.arg(2)),
            [key_size](reply_writer& w, const op_reply& r) {
              if (!r.found) {
                w.null();
              } else {
                w.integer(static_cast<int64_t>(key_size + r.value.size()
                                               + cache::entry_overhead()));
              }
            });
  } else if (sub == "help" && c.argc() == 2) {
    c.reply([](reply_writer& w) {
      constexpr std::string_view lines[] = {
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value.",
        "HELP",
        "    Print this help.",
      };
      w.array(std::size(lines));
      for (auto line : lines) {
        w.simple_string(line);
      }
    });
  } else if (sub == "usage" || sub == "help") {
    c.error(fmt::format("ERR wrong number of arguments for 'memory|{}' command",
                        sub));
  } else {
    c.error(fmt::format("ERR unknown subcommand '{}'. Try MEMORY HELP.",
                        c_string(c.arg(1)).substr(0, 128)));
  }
}

void cmd_time(const context& c) {
  auto us = c.env.wall.now_us(c.env.self);
  c.reply([&](reply_writer& w) {
    w.array(2);
    w.bulk_string(std::to_string(us / 1000000));
    w.bulk_string(std::to_string(us % 1000000));
  });
}

void cmd_reset(const context& c) {
  c.s.end_multi();
  c.s.version = protocol_version::resp2;
  c.s.db = 0;
  c.s.bucket.clear();
  c.s.name.clear();
  c.s.authenticated = c.env.password.empty();
  c.reply([](reply_writer& w) {
    w.simple_string("RESET");
  });
}

} // namespace mycorrizal::resp::detail
