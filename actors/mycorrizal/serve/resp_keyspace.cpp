// SPDX-License-Identifier: Apache-2.0
// The key-space commands of the Redis front door: SCAN, KEYS, DBSIZE,
// RANDOMKEY, FLUSHDB, FLUSHALL. A database is a bucket; these walk its
// partitions (a SCAN cursor is the partition to go on from) or drop and
// re-create it.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/resp/glob.hpp"
#include "mycorrizal/runtime/caf_error.hpp"
#include "mycorrizal/serve/resp_internal.hpp"

#include <caf/all.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace mycorrizal::resp::detail {

namespace {

/// Keys asked per partition walk step of KEYS, DBSIZE and RANDOMKEY.
constexpr uint32_t walk_step = 4096;

/// What the asynchronous steps of a key-space command keep (a `context`
/// refers to things that end with the call).
struct db_scope {
  caf::event_based_actor* self;
  cache_actor cache;
  caf::timespan timeout;
  std::string bucket;
  async_reply out;

  explicit db_scope(const context& c)
      : self(c.env.self), cache(c.env.cache), timeout(c.env.timeout),
        bucket(c.bucket()), out(c) {
    // nop
  }
};

/// The partitions of a database's bucket (nullopt: the bucket does not
/// exist, an empty database), then `f`; an error becomes the reply.
void with_partitions(const db_scope& d,
                     std::function<void(std::optional<uint32_t>)> f) {
  auto out = d.out;
  auto name = d.bucket;
  d.self->request(d.cache, d.timeout, list_buckets_atom::value)
    .then(
      [name, f](std::vector<bucket_info>& all) {
        for (auto& b : all) {
          if (b.name == name) {
            f(b.options.partitions);
            return;
          }
        }
        f(std::nullopt);
      },
      [out](caf::error& err) {
        auto text = error_text(from_caf_error(err));
        out.finish([&](reply_writer& w) {
          w.error(text);
        });
      });
}

/// Walks the partitions from `cursor` until `enough(keys)` or the end, and
/// calls `done(keys, next)` (next: 0 at the end) or `fail(error)`.
struct walk {
  caf::event_based_actor* self;
  cache_actor cache;
  caf::timespan timeout;
  std::string bucket;
  uint32_t partitions = 0;
  uint32_t count = 0;
  std::vector<std::string> keys;
  std::function<bool(const std::vector<std::string>&)> enough;
  std::function<void(std::vector<std::string>&, uint32_t)> done;
  std::function<void(const error&)> fail;
};

void walk_from(const std::shared_ptr<walk>& w, uint32_t cursor) {
  if (cursor >= w->partitions) {
    w->done(w->keys, 0);
    return;
  }
  w->self
    ->request(w->cache, w->timeout, scan_atom::value, w->bucket, cursor,
              w->count)
    .then(
      [w, cursor](cache::proto::scan_reply& r) {
        if (r.status != errc::none) {
          w->fail(error{r.status});
          return;
        }
        for (auto& k : r.keys) {
          w->keys.push_back(std::move(k));
        }
        auto next = std::max(r.next, cursor + 1);
        if (next >= w->partitions) {
          w->done(w->keys, 0);
        } else if (w->enough(w->keys)) {
          w->done(w->keys, next);
        } else {
          walk_from(w, next);
        }
      },
      [w](caf::error& err) {
        auto e = from_caf_error(err);
        if (e == errc::unknown_bucket) {
          w->done(w->keys, 0); // dropped meanwhile: nothing more
          return;
        }
        w->fail(e);
      });
}

std::shared_ptr<walk> make_walk(const db_scope& d, uint32_t partitions,
                                uint32_t count) {
  auto w = std::make_shared<walk>();
  w->self = d.self;
  w->cache = d.cache;
  w->timeout = d.timeout;
  w->bucket = d.bucket;
  w->partitions = partitions;
  w->count = count;
  auto out = d.out;
  w->fail = [out](const error& e) {
    auto text = error_text(e);
    out.finish([&](reply_writer& wr) {
      wr.error(text);
    });
  };
  w->enough = [](const std::vector<std::string>&) {
    return false;
  };
  return w;
}

/// Redis's parseScanCursorOrReply: strtoul, no leading space, no junk.
bool parse_cursor(std::string_view text, uint64_t& out) {
  std::string buf{text};
  if (!buf.empty() && std::isspace(static_cast<unsigned char>(buf[0])) != 0) {
    return false;
  }
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoul(buf.c_str(), &end, 10);
  if (*end != '\0' || errno == ERANGE) {
    return false;
  }
  out = v;
  return true;
}

/// Drops and re-creates the buckets of `dbs` with the options they had,
/// one after the other, then replies OK.
void flush(const context& c, std::vector<uint32_t> dbs) {
  async_reply out{c};
  auto* self = c.env.self;
  auto cache = c.env.cache;
  auto timeout = c.env.timeout;
  auto fail = [out](const caf::error& err) {
    auto text = error_text(from_caf_error(err));
    out.finish([&](reply_writer& w) {
      w.error(text);
    });
  };
  self->request(cache, timeout, list_buckets_atom::value)
    .then(
      [self, cache, timeout, out, fail,
       dbs = std::move(dbs)](std::vector<bucket_info>& all) {
        auto todo = std::make_shared<std::vector<bucket_info>>();
        for (auto& b : all) {
          for (auto db : dbs) {
            if (b.name == fmt::format("db{}", db)) {
              todo->push_back(b);
            }
          }
        }
        auto next = std::make_shared<std::function<void()>>();
        *next = [self, cache, timeout, out, fail, todo, next] {
          if (todo->empty()) {
            // Resetting `next` ends the cycle through the capture and
            // destroys this very closure: only locals after it.
            auto done = out;
            auto keep = next;
            *keep = nullptr;
            done.finish([](reply_writer& w) {
              w.simple_string("OK");
            });
            return;
          }
          auto b = todo->back();
          todo->pop_back();
          self->request(cache, timeout, drop_bucket_atom::value, b.name)
            .then(
              [self, cache, timeout, b, next, fail](bool) {
                self
                  ->request(cache, timeout, create_bucket_atom::value, b.name,
                            b.options)
                  .then(
                    [next](bool) {
                      (*next)();
                    },
                    fail);
              },
              fail);
        };
        (*next)();
      },
      fail);
}

std::optional<bool> flush_mode(const context& c) {
  if (c.argc() > 2) {
    return std::nullopt;
  }
  if (c.argc() == 2 && !iequals(c.arg(1), "sync")
      && !iequals(c.arg(1), "async")) {
    return std::nullopt;
  }
  return true;
}

} // namespace

void cmd_scan(const context& c) {
  uint64_t cursor = 0;
  if (!parse_cursor(c.arg(1), cursor)) {
    c.error("ERR invalid cursor");
    return;
  }
  int64_t count = 10;
  std::string pattern;
  bool use_pattern = false;
  std::optional<std::string> type;
  for (size_t i = 2; i < c.argc(); i += 2) {
    bool has_arg = i + 1 < c.argc();
    if (iequals(c.arg(i), "count") && has_arg) {
      if (!parse_ll(c.arg(i + 1), count)) {
        c.error(not_an_integer);
        return;
      }
      if (count < 1) {
        c.error(syntax_error);
        return;
      }
    } else if (iequals(c.arg(i), "match") && has_arg) {
      pattern = std::string{c.arg(i + 1)};
      use_pattern = pattern != "*";
    } else if (iequals(c.arg(i), "type") && has_arg) {
      type = lower(c.arg(i + 1));
    } else {
      c.error(syntax_error);
      return;
    }
  }
  auto reply_keys = [](const async_reply& out, uint32_t next,
                       std::vector<std::string> keys) {
    out.finish([&](reply_writer& w) {
      w.array(2);
      w.bulk_string(std::to_string(next));
      w.array(keys.size());
      for (auto& k : keys) {
        w.bulk_string(k);
      }
    });
  };
  db_scope d{c};
  auto out = d.out;
  with_partitions(d, [d, out, cursor, count, pattern, use_pattern, type,
                      reply_keys](std::optional<uint32_t> partitions) {
    if (!partitions || cursor >= *partitions) {
      reply_keys(out, 0, {});
      return;
    }
    auto w
      = make_walk(d, *partitions,
                  static_cast<uint32_t>(std::min<int64_t>(count, walk_step)));
    w->enough = [count](const std::vector<std::string>& keys) {
      return static_cast<int64_t>(keys.size()) >= count;
    };
    w->done = [out, pattern, use_pattern, type,
               reply_keys](std::vector<std::string>& keys, uint32_t next) {
      std::vector<std::string> kept;
      for (auto& k : keys) {
        if ((!use_pattern || glob_match(pattern, k))
            && (!type || *type == "string")) {
          kept.push_back(std::move(k));
        }
      }
      reply_keys(out, next, std::move(kept));
    };
    walk_from(w, static_cast<uint32_t>(cursor));
  });
}

void cmd_keys(const context& c) {
  std::string pattern{c.arg(1)};
  db_scope d{c};
  auto out = d.out;
  with_partitions(d, [d, out, pattern](std::optional<uint32_t> partitions) {
    if (!partitions) {
      out.finish([](reply_writer& w) {
        w.array(0);
      });
      return;
    }
    auto w = make_walk(d, *partitions, walk_step);
    bool all = pattern == "*";
    w->done = [out, pattern, all](std::vector<std::string>& keys, uint32_t) {
      std::vector<std::string> kept;
      for (auto& k : keys) {
        if (all || glob_match(pattern, k)) {
          kept.push_back(std::move(k));
        }
      }
      out.finish([&](reply_writer& wr) {
        wr.array(kept.size());
        for (auto& k : kept) {
          wr.bulk_string(k);
        }
      });
    };
    walk_from(w, 0);
  });
}

void cmd_dbsize(const context& c) {
  db_scope d{c};
  auto out = d.out;
  with_partitions(d, [d, out](std::optional<uint32_t> partitions) {
    if (!partitions) {
      out.finish([](reply_writer& w) {
        w.integer(0);
      });
      return;
    }
    auto w = make_walk(d, *partitions, walk_step);
    w->done = [out](std::vector<std::string>& keys, uint32_t) {
      auto n = static_cast<int64_t>(keys.size());
      out.finish([n](reply_writer& wr) {
        wr.integer(n);
      });
    };
    walk_from(w, 0);
  });
}

void cmd_randomkey(const context& c) {
  db_scope d{c};
  auto out = d.out;
  with_partitions(d, [d, out](std::optional<uint32_t> partitions) {
    if (!partitions) {
      out.finish([](reply_writer& w) {
        w.null();
      });
      return;
    }
    thread_local std::minstd_rand rng{std::random_device{}()};
    auto start = static_cast<uint32_t>(rng() % *partitions);
    // From a random partition to the end, then from the start: the first
    // partitions that hold keys give the answer.
    auto pick = [out](std::vector<std::string>& keys) {
      out.finish([&](reply_writer& w) {
        if (keys.empty()) {
          w.null();
        } else {
          w.bulk_string(keys[rng() % keys.size()]);
        }
      });
    };
    auto w = make_walk(d, *partitions, 64);
    w->enough = [](const std::vector<std::string>& keys) {
      return !keys.empty();
    };
    auto again = make_walk(d, start, 64);
    again->enough = w->enough;
    again->done = [pick](std::vector<std::string>& keys, uint32_t) {
      pick(keys);
    };
    w->done = [pick, again](std::vector<std::string>& keys, uint32_t) {
      if (!keys.empty()) {
        pick(keys);
      } else {
        walk_from(again, 0);
      }
    };
    walk_from(w, start);
  });
}

void cmd_flushdb(const context& c) {
  if (!flush_mode(c)) {
    c.error(syntax_error);
    return;
  }
  flush(c, {c.s.db});
}

void cmd_flushall(const context& c) {
  if (!flush_mode(c)) {
    c.error(syntax_error);
    return;
  }
  std::vector<uint32_t> dbs;
  for (uint32_t i = 0; i < c.env.databases; ++i) {
    dbs.push_back(i);
  }
  flush(c, std::move(dbs));
}

} // namespace mycorrizal::resp::detail
