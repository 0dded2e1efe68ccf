// SPDX-License-Identifier: Apache-2.0
// More commands of the Redis front door: RENAME, RENAMENX, COPY and MOVE,
// which read a key and write it under another name or in another database
// (its owners are other nodes: several steps, never one atomic one).
#include "mycorrizal/errc.hpp"
#include "mycorrizal/serve/resp_internal.hpp"

#include <fmt/format.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mycorrizal::resp::detail {

namespace flags = cache::proto;

namespace {

// -- RENAME, RENAMENX, COPY, MOVE ---------------------------------------------

/// What RENAME, RENAMENX, COPY and MOVE do: read `from` (value, expiry,
/// version) in `from_bucket`, write it as `to` in `to_bucket` with the same
/// expiry, then (`remove_source`) delete `from` if it still holds the
/// version read. A write to the source in between keeps it (the rename
/// counts as done before that write): nothing is lost, at worst both keys
/// exist for a moment.
struct key_transfer {
  std::string from_bucket;
  std::string from;
  std::string to_bucket;
  std::string to;
  /// RENAMENX, MOVE, COPY without REPLACE.
  bool only_if_absent = false;
  /// RENAME, RENAMENX, MOVE.
  bool remove_source = false;
  /// RENAME and RENAMENX: a missing source is `ERR no such key` (COPY and
  /// MOVE answer 0).
  bool missing_is_error = false;
  /// RENAME: `+OK` where the others answer 1.
  bool answers_ok = false;
};

void reply_done(reply_writer& w, const key_transfer& t) {
  if (t.answers_ok) {
    w.simple_string("OK");
  } else {
    w.integer(1);
  }
}

void finish_error(const async_reply& out, const error& e) {
  auto text = error_text(e);
  out.finish([&](reply_writer& w) {
    w.error(text);
  });
}

void finish_zero(const async_reply& out) {
  out.finish([](reply_writer& w) {
    w.integer(0);
  });
}

void run_transfer(const context& c, key_transfer transfer) {
  async_reply out{c};
  auto* self = c.env.self;
  auto access = c.env.access;
  auto timeout = c.env.timeout;
  auto t = std::make_shared<const key_transfer>(std::move(transfer));
  exec_ops(self, access, timeout, t->from_bucket, {make(op_code::get, t->from)},
           [out, self, access, timeout, t](op_results& rs) {
             if (!rs[0]) {
               finish_error(out, rs[0].error());
               return;
             }
             auto& src = *rs[0];
             if (!src.found) {
               out.finish([&](reply_writer& w) {
                 if (t->missing_is_error) {
                   w.error("ERR no such key");
                 } else {
                   w.integer(0);
                 }
               });
               return;
             }
             if (t->from_bucket == t->to_bucket && t->from == t->to) {
               // RENAME onto itself (COPY and MOVE refused it before): nothing
               // to do once the key is known to exist.
               out.finish([&](reply_writer& w) {
                 if (t->answers_ok) {
                   w.simple_string("OK");
                 } else {
                   w.integer(0);
                 }
               });
               return;
             }
             auto put = make(op_code::put, t->to);
             put.value = std::move(src.value);
             // The source's expiry, or none (no_expiry: a bucket with a default
             // TTL gives the destination that one, as to any put without one).
             put.expires_ms = src.expires_ms;
             put.flags = t->only_if_absent ? flags::only_if_absent : 0;
             auto read_version = src.ver;
             exec_ops(
               self, access, timeout, t->to_bucket, {std::move(put)},
               [out, self, access, timeout, t, read_version](op_results& ws) {
                 if (!ws[0]) {
                   finish_error(out, ws[0].error());
                   return;
                 }
                 if (ws[0]->number != 1) {
                   finish_zero(out); // the destination exists
                   return;
                 }
                 if (!t->remove_source) {
                   out.finish([&](reply_writer& w) {
                     reply_done(w, *t);
                   });
                   return;
                 }
                 auto del = make(op_code::del, t->from);
                 del.flags = flags::only_if_version;
                 del.expected = read_version;
                 exec_ops(self, access, timeout, t->from_bucket,
                          {std::move(del)}, [out, t](op_results& ds) {
                            // A version mismatch: the source was written after
                            // our read, and that write stays.
                            if (!ds[0]
                                && ds[0].error() != errc::version_mismatch) {
                              finish_error(out, ds[0].error());
                              return;
                            }
                            out.finish([&](reply_writer& w) {
                              reply_done(w, *t);
                            });
                          });
               });
           });
}

/// A database index as COPY's DB and MOVE take it (Redis's
/// getIntFromObjectOrReply, then selectDb): its bucket, or the error text.
std::optional<std::string> db_bucket(const context& c, std::string_view text,
                                     std::string& out) {
  int64_t db = 0;
  if (!parse_ll(text, db)) {
    return std::string{not_an_integer};
  }
  if (db < INT32_MIN || db > INT32_MAX) {
    return "ERR value is out of range, value must between -2147483648 and "
           "2147483647";
  }
  if (db < 0 || db >= static_cast<int64_t>(c.env.databases)) {
    return "ERR DB index is out of range";
  }
  out = fmt::format("db{}", db);
  return std::nullopt;
}

constexpr std::string_view same_object
  = "ERR source and destination objects are the same";

void rename_like(const context& c, bool nx) {
  key_transfer t;
  t.from_bucket = c.bucket();
  t.from = std::string{c.arg(1)};
  t.to_bucket = t.from_bucket;
  t.to = std::string{c.arg(2)};
  t.only_if_absent = nx;
  t.remove_source = true;
  t.missing_is_error = true;
  t.answers_ok = !nx;
  run_transfer(c, std::move(t));
}

} // namespace

void cmd_rename(const context& c) {
  rename_like(c, false);
}

void cmd_renamenx(const context& c) {
  rename_like(c, true);
}

void cmd_copy(const context& c) {
  key_transfer t;
  t.from_bucket = c.bucket();
  t.from = std::string{c.arg(1)};
  t.to_bucket = t.from_bucket;
  t.to = std::string{c.arg(2)};
  t.only_if_absent = true;
  // Options in order, each checked as it is read (Redis answers the first
  // bad one).
  for (size_t j = 3; j < c.argc(); ++j) {
    if (iequals(c.arg(j), "replace")) {
      t.only_if_absent = false;
    } else if (iequals(c.arg(j), "db") && j + 1 < c.argc()) {
      if (auto err = db_bucket(c, c.arg(j + 1), t.to_bucket)) {
        c.error(*err);
        return;
      }
      ++j;
    } else {
      c.error(syntax_error);
      return;
    }
  }
  if (t.from_bucket == t.to_bucket && t.from == t.to) {
    c.error(same_object);
    return;
  }
  run_transfer(c, std::move(t));
}

void cmd_move(const context& c) {
  key_transfer t;
  t.from_bucket = c.bucket();
  t.from = std::string{c.arg(1)};
  t.to = t.from;
  if (auto err = db_bucket(c, c.arg(2), t.to_bucket)) {
    c.error(*err);
    return;
  }
  if (t.from_bucket == t.to_bucket) {
    c.error(same_object);
    return;
  }
  t.only_if_absent = true;
  t.remove_source = true;
  run_transfer(c, std::move(t));
}

} // namespace mycorrizal::resp::detail
