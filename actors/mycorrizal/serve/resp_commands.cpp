// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/serve/resp_commands.hpp"

#include "mycorrizal/cache/store.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include <caf/all.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::resp {

namespace {

using cache::proto::op_code;
using cache::proto::op_reply;
using cache::proto::op_request;
namespace flags = cache::proto;

constexpr int64_t llong_max = std::numeric_limits<int64_t>::max();
constexpr int64_t llong_min = std::numeric_limits<int64_t>::min();

constexpr std::string_view not_an_integer
  = "ERR value is not an integer or out of range";
constexpr std::string_view syntax_error = "ERR syntax error";

/// Redis's server version as HELLO and INFO report it: the behaviour we
/// answer with is 7.0's.
constexpr std::string_view redis_version = "7.0.15";

std::string lower(std::string_view x) {
  std::string out{x};
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool iequals(std::string_view x, std::string_view y) {
  return x.size() == y.size() && lower(x) == y;
}

/// Redis's string2ll: strict decimal, no spaces, no `+`, no leading zeros.
bool parse_ll(std::string_view s, int64_t& out) {
  if (s.empty() || s.size() > 20) {
    return false;
  }
  if (s == "0") {
    out = 0;
    return true;
  }
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size() || s[i] < '1' || s[i] > '9') {
    return false;
  }
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) {
    return false;
  }
  out = v;
  return true;
}

cache::proto::bytes to_bytes(std::string_view s) {
  auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

std::string_view as_view(const cache::proto::bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

/// How a cache error reads as a Redis error reply.
std::string error_text(const error& e) {
  if (e == errc::wrong_type) {
    return "ERR " + e.context();
  }
  return fmt::format("ERR mycel: {}", to_string(e));
}

std::string finish_error(protocol_version v, std::string_view text) {
  reply_writer w{v};
  w.error(text);
  return w.take();
}

struct context {
  const command& cmd;
  session& s;
  std::shared_ptr<pending_reply> slot;
  const command_env& env;

  std::string_view arg(size_t i) const {
    return cmd.args[i];
  }

  size_t argc() const {
    return cmd.args.size();
  }

  void reply(const std::function<void(reply_writer&)>& f,
             bool close = false) const {
    reply_writer w{s.version};
    f(w);
    slot->finish(w.take(), close);
  }

  void error(std::string_view text) const {
    slot->finish(finish_error(s.version, text));
  }

  std::string bucket() const {
    return fmt::format("db{}", s.db);
  }
};

/// Runs `ops` against the cache (in parallel), creating the bucket when it
/// does not exist yet, and calls `done` with every answer, in order.
using op_results = std::vector<expected<op_reply>>;

struct batch {
  op_results results;
  size_t remaining = 0;
  std::function<void(op_results&)> done;
};

void send_op(caf::event_based_actor* self, const command_env& env,
             const std::shared_ptr<batch>& b, size_t i, const cache_op& op,
             bool may_create);

void run_ops(const context& c, std::vector<op_request> ops,
             std::function<void(reply_writer&, op_results&)> f) {
  auto b = std::make_shared<batch>();
  b->results.resize(ops.size(), unexpected{error{errc::timeout}});
  b->remaining = ops.size();
  auto version = c.s.version;
  auto slot = c.slot;
  auto on_done = c.env.on_done;
  b->done = [version, slot, on_done, f = std::move(f)](op_results& rs) {
    reply_writer w{version};
    f(w, rs);
    slot->finish(w.take());
    on_done();
  };
  auto bucket = c.bucket();
  for (size_t i = 0; i < ops.size(); ++i) {
    ops[i].bucket = bucket;
    send_op(c.env.self, c.env, b, i, cache_op{bucket, std::move(ops[i])}, true);
  }
}

void send_op(caf::event_based_actor* self, const command_env& env,
             const std::shared_ptr<batch>& b, size_t i, const cache_op& op,
             bool may_create) {
  auto cache = env.cache;
  auto timeout = env.timeout;
  auto complete = [b, i](expected<op_reply> r) {
    b->results[i] = std::move(r);
    if (--b->remaining == 0) {
      b->done(b->results);
    }
  };
  self->request(cache, timeout, op)
    .then(
      [complete](op_reply& r) {
        if (r.status != errc::none) {
          complete(unexpected{error{r.status, r.message}});
        } else {
          complete(std::move(r));
        }
      },
      [self, cache, timeout, op, may_create,
       complete](caf::error& err) mutable {
        auto e = from_caf_error(err);
        if (e != errc::unknown_bucket || !may_create) {
          complete(unexpected{std::move(e)});
          return;
        }
        // The database's bucket does not exist yet: create it with the
        // defaults (a second create by another client or node is fine).
        auto name = op.bucket;
        self
          ->request(cache, timeout, create_bucket_atom::value, name,
                    bucket_options{})
          .then(
            [self, cache, timeout, op, complete](bool) mutable {
              self->request(cache, timeout, op)
                .then(
                  [complete](op_reply& r) {
                    if (r.status != errc::none) {
                      complete(unexpected{error{r.status, r.message}});
                    } else {
                      complete(std::move(r));
                    }
                  },
                  [complete](caf::error& e2) {
                    complete(unexpected{from_caf_error(e2)});
                  });
            },
            [complete](caf::error& e2) {
              complete(unexpected{from_caf_error(e2)});
            });
      });
}

op_request make(op_code code, std::string_view key) {
  op_request op;
  op.op = code;
  op.key = std::string{key};
  return op;
}

/// The first error among `rs`, or null.
const error* first_error(const op_results& rs) {
  for (const auto& r : rs) {
    if (!r) {
      return &r.error();
    }
  }
  return nullptr;
}

/// Runs one operation; an error becomes the error reply, an answer goes to
/// `f`.
void run_one(const context& c, op_request op,
             std::function<void(reply_writer&, const op_reply&)> f) {
  run_ops(c, {std::move(op)},
          [f = std::move(f)](reply_writer& w, op_results& rs) {
            if (!rs[0]) {
              w.error(error_text(rs[0].error()));
            } else {
              f(w, *rs[0]);
            }
          });
}

/// Replies 1 when the operation changed the key, else 0.
void reply_changed(reply_writer& w, const op_reply& r) {
  w.integer(r.number == 1 ? 1 : 0);
}

// -- connection commands ------------------------------------------------------

void cmd_ping(const context& c) {
  if (c.argc() > 2) {
    c.error("ERR wrong number of arguments for 'ping' command");
    return;
  }
  if (c.argc() == 2) {
    c.reply([&](reply_writer& w) {
      w.bulk_string(c.arg(1));
    });
  } else {
    c.reply([](reply_writer& w) {
      w.simple_string("PONG");
    });
  }
}

void cmd_echo(const context& c) {
  c.reply([&](reply_writer& w) {
    w.bulk_string(c.arg(1));
  });
}

void cmd_quit(const context& c) {
  c.reply(
    [](reply_writer& w) {
      w.simple_string("OK");
    },
    true);
}

void cmd_select(const context& c) {
  int64_t db = 0;
  if (!parse_ll(c.arg(1), db)) {
    c.error(not_an_integer);
    return;
  }
  if (db < 0 || db >= static_cast<int64_t>(c.env.databases)) {
    c.error("ERR DB index is out of range");
    return;
  }
  c.s.db = static_cast<uint32_t>(db);
  c.reply([](reply_writer& w) {
    w.simple_string("OK");
  });
}

/// AUTH [user] password (`with_user`: the user was given); false if it
/// failed (and replied). Without requirepass the default user takes any
/// password (Redis's `nopass`), but AUTH without a user is an error.
bool check_auth(const context& c, bool with_user, std::string_view user,
                std::string_view pass) {
  if (c.env.password.empty()) {
    if (!with_user) {
      c.error("ERR AUTH <password> called without any password configured "
              "for the default user. Are you sure your configuration is "
              "correct?");
      return false;
    }
    if (user == "default") {
      c.s.authenticated = true;
      return true;
    }
  }
  if (user != "default" || pass != c.env.password) {
    c.error("WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  }
  c.s.authenticated = true;
  return true;
}

void cmd_auth(const context& c) {
  if (c.argc() > 3) {
    c.error(syntax_error);
    return;
  }
  auto user = c.argc() == 3 ? c.arg(1) : std::string_view{"default"};
  auto pass = c.argc() == 3 ? c.arg(2) : c.arg(1);
  if (check_auth(c, c.argc() == 3, user, pass)) {
    c.reply([](reply_writer& w) {
      w.simple_string("OK");
    });
  }
}

void cmd_hello(const context& c) {
  auto version = c.s.version;
  size_t i = 1;
  if (c.argc() >= 2) {
    int64_t v = 0;
    if (!parse_ll(c.arg(1), v)) {
      c.error("ERR Protocol version is not an integer or out of range");
      return;
    }
    if (v < 2 || v > 3) {
      c.error("NOPROTO unsupported protocol version");
      return;
    }
    version = v == 3 ? protocol_version::resp3 : protocol_version::resp2;
    i = 2;
  }
  std::string_view user;
  std::string_view pass;
  bool auth = false;
  std::optional<std::string_view> setname;
  for (; i < c.argc(); ++i) {
    bool more = i + 1 < c.argc();
    if (iequals(c.arg(i), "auth") && i + 2 < c.argc()) {
      auth = true;
      user = c.arg(i + 1);
      pass = c.arg(i + 2);
      i += 2;
    } else if (iequals(c.arg(i), "setname") && more) {
      setname = c.arg(i + 1);
      ++i;
    } else {
      c.error(fmt::format("ERR Syntax error in HELLO option '{}'", c.arg(i)));
      return;
    }
  }
  if (auth && !check_auth(c, true, user, pass)) {
    return;
  }
  if (!c.s.authenticated) {
    c.error("NOAUTH HELLO must be called with the client already "
            "authenticated, otherwise the HELLO <proto> AUTH <user> <pass> "
            "option can be used to authenticate the client and select the "
            "RESP protocol version at the same time");
    return;
  }
  if (setname) {
    c.s.name = std::string{*setname};
  }
  c.s.version = version;
  c.reply([&](reply_writer& w) {
    w.map(7);
    w.bulk_string("server").bulk_string("redis");
    w.bulk_string("version").bulk_string(redis_version);
    w.bulk_string("proto").integer(version == protocol_version::resp3 ? 3 : 2);
    w.bulk_string("id").integer(c.s.id);
    w.bulk_string("mode").bulk_string("standalone");
    w.bulk_string("role").bulk_string("master");
    w.bulk_string("modules").array(0);
  });
}

void cmd_client(const context& c) {
  auto sub = lower(c.arg(1));
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
    auto name = c.arg(2);
    for (auto ch : name) {
      if (ch < '!' || ch > '~') {
        c.error("ERR Client names cannot contain spaces, newlines or special "
                "characters.");
        return;
      }
    }
    c.s.name = std::string{name};
    c.reply([](reply_writer& w) {
      w.simple_string("OK");
    });
  } else if (sub == "id" || sub == "getname" || sub == "setname") {
    c.error(fmt::format("ERR wrong number of arguments for 'client|{}' command",
                        sub));
  } else {
    c.error(fmt::format("ERR unknown subcommand '{}'. Try CLIENT HELP.",
                        c.arg(1).substr(0, 128)));
  }
}

void cmd_command(const context& c) {
  if (c.argc() >= 2 && iequals(c.arg(1), "count")) {
    c.reply([](reply_writer& w) {
      w.integer(static_cast<int64_t>(command_count()));
    });
    return;
  }
  if (c.argc() >= 2 && iequals(c.arg(1), "docs")) {
    // No documentation yet: clients (redis-cli) go on without hints.
    c.reply([](reply_writer& w) {
      w.map(0);
    });
    return;
  }
  c.reply([](reply_writer& w) {
    w.array(0);
  });
}

// -- strings ------------------------------------------------------------------

void cmd_get(const context& c) {
  run_one(c, make(op_code::get, c.arg(1)),
          [](reply_writer& w, const op_reply& r) {
            if (r.found) {
              w.bulk_string(as_view(r.value));
            } else {
              w.null();
            }
          });
}

/// Milliseconds from a relative or absolute time in `unit_ms`; false with
/// the error replied.
bool expire_at(const context& c, std::string_view text, int64_t unit_ms,
               bool absolute, std::string_view cmd_name, int64_t& out) {
  int64_t v = 0;
  if (!parse_ll(text, v)) {
    c.error(not_an_integer);
    return false;
  }
  auto invalid = [&] {
    c.error(fmt::format("ERR invalid expire time in '{}' command", cmd_name));
    return false;
  };
  if (v <= 0) {
    return invalid();
  }
  if (v > llong_max / unit_ms) {
    return invalid();
  }
  v *= unit_ms;
  if (!absolute) {
    auto now = c.env.wall.now_ms(c.env.self);
    if (v > llong_max - now) {
      return invalid();
    }
    v += now;
  }
  out = v;
  return true;
}

void put(const context& c, std::string_view key, std::string_view value,
         uint8_t op_flags, int64_t expires_ms,
         std::function<void(reply_writer&, const op_reply&)> f) {
  auto op = make(op_code::put, key);
  op.value = to_bytes(value);
  op.flags = op_flags;
  op.expires_ms = expires_ms;
  run_one(c, std::move(op), std::move(f));
}

void cmd_set(const context& c) {
  enum : unsigned {
    nx = 1,
    xx = 2,
    get = 4,
    keepttl = 8,
    ex = 16,
    px = 32,
    exat = 64,
    pxat = 128
  };
  constexpr unsigned any_expire = ex | px | exat | pxat;
  unsigned fl = 0;
  std::string_view when;
  for (size_t j = 3; j < c.argc(); ++j) {
    auto opt = lower(c.arg(j));
    bool has_next = j + 1 < c.argc();
    if (opt == "nx" && (fl & xx) == 0) {
      fl |= nx;
    } else if (opt == "xx" && (fl & nx) == 0) {
      fl |= xx;
    } else if (opt == "get") {
      fl |= get;
    } else if (opt == "keepttl" && (fl & any_expire) == 0) {
      fl |= keepttl;
    } else if ((opt == "ex" || opt == "px" || opt == "exat" || opt == "pxat")
               && (fl & (keepttl | any_expire)) == 0 && has_next) {
      fl |= opt == "ex" ? ex : opt == "px" ? px : opt == "exat" ? exat : pxat;
      when = c.arg(++j);
    } else {
      c.error(syntax_error);
      return;
    }
  }
  int64_t expires = cache::no_expiry;
  if ((fl & any_expire) != 0) {
    int64_t unit = (fl & (ex | exat)) != 0 ? 1000 : 1;
    bool absolute = (fl & (exat | pxat)) != 0;
    if (!expire_at(c, when, unit, absolute, "set", expires)) {
      return;
    }
  }
  uint8_t of = 0;
  of |= (fl & nx) != 0 ? flags::only_if_absent : 0;
  of |= (fl & xx) != 0 ? flags::only_if_present : 0;
  of |= (fl & get) != 0 ? flags::return_previous : 0;
  of |= (fl & keepttl) != 0 ? flags::keep_ttl : 0;
  bool with_get = (fl & get) != 0;
  put(c, c.arg(1), c.arg(2), of, expires,
      [with_get](reply_writer& w, const op_reply& r) {
        if (with_get) {
          if (r.found) {
            w.bulk_string(as_view(r.value));
          } else {
            w.null();
          }
        } else if (r.number == 1) {
          w.simple_string("OK");
        } else {
          w.null();
        }
      });
}

void cmd_setnx(const context& c) {
  put(c, c.arg(1), c.arg(2), flags::only_if_absent, cache::no_expiry,
      reply_changed);
}

void setex_like(const context& c, int64_t unit, std::string_view name) {
  int64_t expires = 0;
  if (!expire_at(c, c.arg(2), unit, false, name, expires)) {
    return;
  }
  put(c, c.arg(1), c.arg(3), 0, expires, [](reply_writer& w, const op_reply&) {
    w.simple_string("OK");
  });
}

void cmd_setex(const context& c) {
  setex_like(c, 1000, "setex");
}

void cmd_psetex(const context& c) {
  setex_like(c, 1, "psetex");
}

void cmd_getset(const context& c) {
  put(c, c.arg(1), c.arg(2), flags::return_previous, cache::no_expiry,
      [](reply_writer& w, const op_reply& r) {
        if (r.found) {
          w.bulk_string(as_view(r.value));
        } else {
          w.null();
        }
      });
}

void incr_by(const context& c, int64_t delta) {
  auto op = make(op_code::incr, c.arg(1));
  op.delta = delta;
  run_one(c, std::move(op), [](reply_writer& w, const op_reply& r) {
    w.integer(r.number);
  });
}

void cmd_incr(const context& c) {
  incr_by(c, 1);
}

void cmd_decr(const context& c) {
  incr_by(c, -1);
}

void cmd_incrby(const context& c) {
  int64_t d = 0;
  if (!parse_ll(c.arg(2), d)) {
    c.error(not_an_integer);
    return;
  }
  incr_by(c, d);
}

void cmd_decrby(const context& c) {
  int64_t d = 0;
  if (!parse_ll(c.arg(2), d)) {
    c.error(not_an_integer);
    return;
  }
  if (d == llong_min) {
    c.error("ERR decrement would overflow");
    return;
  }
  incr_by(c, -d);
}

// -- keys ---------------------------------------------------------------------

/// One operation per key argument from `first`.
std::vector<op_request> per_key(const context& c, op_code code, size_t first) {
  std::vector<op_request> ops;
  for (size_t i = first; i < c.argc(); ++i) {
    ops.push_back(make(code, c.arg(i)));
  }
  return ops;
}

void cmd_del(const context& c) {
  run_ops(c, per_key(c, op_code::del, 1), [](reply_writer& w, op_results& rs) {
    if (auto* e = first_error(rs)) {
      w.error(error_text(*e));
      return;
    }
    int64_t n = 0;
    for (auto& r : rs) {
      n += r->number == 1 ? 1 : 0;
    }
    w.integer(n);
  });
}

void cmd_exists(const context& c) {
  run_ops(c, per_key(c, op_code::ttl, 1), [](reply_writer& w, op_results& rs) {
    if (auto* e = first_error(rs)) {
      w.error(error_text(*e));
      return;
    }
    int64_t n = 0;
    for (auto& r : rs) {
      n += r->found ? 1 : 0;
    }
    w.integer(n);
  });
}

void cmd_mget(const context& c) {
  run_ops(c, per_key(c, op_code::get, 1), [](reply_writer& w, op_results& rs) {
    if (auto* e = first_error(rs)) {
      w.error(error_text(*e));
      return;
    }
    w.array(rs.size());
    for (auto& r : rs) {
      if (r->found) {
        w.bulk_string(as_view(r->value));
      } else {
        w.null();
      }
    }
  });
}

void ttl_like(const context& c, bool millis) {
  // The reply comes later, from the connection actor (`self`), whose state
  // holds `wall`.
  auto* self = c.env.self;
  const auto& wall = c.env.wall;
  run_one(c, make(op_code::ttl, c.arg(1)),
          [millis, self, &wall](reply_writer& w, const op_reply& r) {
            if (!r.found) {
              w.integer(-2);
            } else if (r.expires_ms == cache::no_expiry) {
              w.integer(-1);
            } else {
              auto left = std::max<int64_t>(r.expires_ms - wall.now_ms(self),
                                            0);
              w.integer(millis ? left : (left + 500) / 1000);
            }
          });
}

void cmd_ttl(const context& c) {
  ttl_like(c, false);
}

void cmd_pttl(const context& c) {
  ttl_like(c, true);
}

void expire_like(const context& c, int64_t unit, std::string_view name) {
  if (c.argc() > 3) {
    c.error(fmt::format("ERR Unsupported option {}", c.arg(3)));
    return;
  }
  int64_t v = 0;
  if (!parse_ll(c.arg(2), v)) {
    c.error(not_an_integer);
    return;
  }
  auto invalid = [&] {
    c.error(fmt::format("ERR invalid expire time in '{}' command", name));
  };
  if (v > llong_max / unit || v < llong_min / unit) {
    invalid();
    return;
  }
  v *= unit;
  auto now = c.env.wall.now_ms(c.env.self);
  if (v > llong_max - now) {
    invalid();
    return;
  }
  auto op = make(op_code::expire, c.arg(1));
  // At or before now the key goes (Redis deletes it): a time long past, so
  // that a primary whose clock is behind ours deletes too.
  op.expires_ms = v <= 0 ? 1 : v + now;
  run_one(c, std::move(op), reply_changed);
}

void cmd_expire(const context& c) {
  expire_like(c, 1000, "expire");
}

void cmd_pexpire(const context& c) {
  expire_like(c, 1, "pexpire");
}

void cmd_persist(const context& c) {
  auto op = make(op_code::expire, c.arg(1));
  op.expires_ms = cache::no_expiry;
  run_one(c, std::move(op), reply_changed);
}

// -- the table ----------------------------------------------------------------

struct command_def {
  std::string_view name;
  /// Redis's arity: n exactly, -n at least n (the name counts).
  int arity;
  void (*run)(const context&);
  /// Runs before AUTH.
  bool no_auth = false;
};

constexpr command_def commands[] = {
  {"auth", -2, cmd_auth, true}, {"client", -2, cmd_client},
  {"command", -1, cmd_command}, {"decr", 2, cmd_decr},
  {"decrby", 3, cmd_decrby},    {"del", -2, cmd_del},
  {"echo", 2, cmd_echo},        {"exists", -2, cmd_exists},
  {"expire", -3, cmd_expire},   {"get", 2, cmd_get},
  {"getset", 3, cmd_getset},    {"hello", -1, cmd_hello, true},
  {"incr", 2, cmd_incr},        {"incrby", 3, cmd_incrby},
  {"mget", -2, cmd_mget},       {"persist", 2, cmd_persist},
  {"pexpire", -3, cmd_pexpire}, {"ping", -1, cmd_ping},
  {"psetex", 4, cmd_psetex},    {"pttl", 2, cmd_pttl},
  {"quit", -1, cmd_quit, true}, {"select", 2, cmd_select},
  {"set", -3, cmd_set},         {"setex", 4, cmd_setex},
  {"setnx", 3, cmd_setnx},      {"ttl", 2, cmd_ttl},
  {"unlink", -2, cmd_del},
};

const command_def* find_command(std::string_view name) {
  auto key = lower(name);
  auto* end = std::end(commands);
  auto* i = std::lower_bound(std::begin(commands), end, key,
                             [](const command_def& d, const std::string& k) {
                               return d.name < k;
                             });
  return i != end && i->name == key ? i : nullptr;
}

/// Redis 7.0's text for an unknown command: the name (at most 128 bytes)
/// and the first arguments, quoted, while less than 128 bytes are listed.
std::string unknown_command(const command& cmd) {
  std::string args;
  for (size_t i = 1; i < cmd.args.size() && args.size() < 128; ++i) {
    auto room = 128 - args.size();
    args += fmt::format("'{}' ", cmd.args[i].substr(0, room));
  }
  return fmt::format("ERR unknown command '{}', with args beginning with: {}",
                     cmd.args[0].substr(0, 128), args);
}

} // namespace

size_t command_count() {
  return std::size(commands);
}

void run_command(const command& cmd, session& s,
                 const std::shared_ptr<pending_reply>& slot,
                 const command_env& env) {
  context c{cmd, s, slot, env};
  const auto* def = find_command(cmd.args[0]);
  if (def == nullptr) {
    if (!s.authenticated) {
      c.error("NOAUTH Authentication required.");
      return;
    }
    c.error(unknown_command(cmd));
    return;
  }
  if (!s.authenticated && !def->no_auth) {
    c.error("NOAUTH Authentication required.");
    return;
  }
  auto argc = static_cast<int>(cmd.args.size());
  if ((def->arity > 0 && argc != def->arity)
      || (def->arity < 0 && argc < -def->arity)) {
    c.error(
      fmt::format("ERR wrong number of arguments for '{}' command", def->name));
    return;
  }
  def->run(c);
}

} // namespace mycorrizal::resp
