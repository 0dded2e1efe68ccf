// SPDX-License-Identifier: Apache-2.0
// More commands of the Redis front door: RENAME, RENAMENX, COPY and MOVE,
// which read a key and write it under another name or in another database
// (its owners are other nodes: several steps, never one atomic one), and
// the bitmap commands GETBIT, SETBIT, BITCOUNT and BITPOS on string values.
#include "mycorrizal/cache/store.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/serve/resp_internal.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// -- bitmaps ------------------------------------------------------------------

namespace {

constexpr std::string_view bad_offset
  = "ERR bit offset is not an integer or out of range";

/// A bit offset as Redis takes it: not negative, its byte within
/// proto-max-bulk-len (so at most 2^32 - 1).
bool parse_bit_offset(std::string_view text, uint64_t& out) {
  int64_t v = 0;
  if (!parse_ll(text, v) || v < 0 || (v >> 3) >= max_string) {
    return false;
  }
  out = static_cast<uint64_t>(v);
  return true;
}

/// Bit `offset` of `value` (bit 0 is the first byte's most significant),
/// 0 past its end.
int bit_at(std::string_view value, uint64_t offset) {
  auto byte = offset >> 3;
  if (byte >= value.size()) {
    return 0;
  }
  auto mask = 1U << (7 - (offset & 7));
  return (static_cast<unsigned char>(value[byte]) & mask) != 0 ? 1 : 0;
}

/// Byte `i` of `p` with the bits outside bits [first, last] of the whole
/// string set to `fill` (0 or 1).
unsigned masked_byte(std::string_view p, int64_t i, int64_t first, int64_t last,
                     unsigned fill) {
  unsigned byte = static_cast<unsigned char>(p[static_cast<size_t>(i)]);
  unsigned keep = 0xFFU;
  if (i == first >> 3) {
    keep &= 0xFFU >> (first & 7);
  }
  if (i == last >> 3) {
    keep &= (0xFFU << (7 - (last & 7))) & 0xFFU;
  }
  return (byte & keep) | (fill != 0 ? ~keep & 0xFFU : 0U);
}

/// The set bits among bits [first, last] of `p` (inclusive, within it).
int64_t count_bits(std::string_view p, int64_t first, int64_t last) {
  auto fb = first >> 3;
  auto lb = last >> 3;
  int64_t n = std::popcount(masked_byte(p, fb, first, last, 0));
  if (lb == fb) {
    return n;
  }
  n += std::popcount(masked_byte(p, lb, first, last, 0));
  // The whole bytes between, eight at a time.
  auto i = fb + 1;
  for (; i + 8 <= lb; i += 8) {
    uint64_t word = 0;
    std::memcpy(&word, p.data() + i, sizeof word);
    n += std::popcount(word);
  }
  for (; i < lb; ++i) {
    n += std::popcount(static_cast<unsigned>(
      static_cast<unsigned char>(p[static_cast<size_t>(i)])));
  }
  return n;
}

/// The first bit equal to `bit` among bits [first, last] of `p`, or -1.
int64_t find_bit(std::string_view p, int64_t first, int64_t last, int bit) {
  auto fb = first >> 3;
  auto lb = last >> 3;
  // Bytes that hold no such bit: what is skipped.
  auto skip = static_cast<char>(bit != 0 ? 0x00 : 0xFF);
  auto look = [&](int64_t i) -> int64_t {
    auto byte = masked_byte(p, i, first, last, bit != 0 ? 0 : 1);
    auto wanted = (bit != 0 ? byte : ~byte) & 0xFFU;
    if (wanted == 0) {
      return -1;
    }
    return i * 8 + std::countl_zero(static_cast<uint8_t>(wanted));
  };
  if (auto pos = look(fb); pos >= 0 || lb == fb) {
    return pos;
  }
  const auto* begin = p.data() + fb + 1;
  const auto* end = p.data() + lb;
  const auto* hit = std::find_if(begin, end, [skip](char x) {
    return x != skip;
  });
  if (hit != end) {
    return look(hit - p.data());
  }
  return look(lb);
}

/// A range argument's unit: BYTE (the default) or BIT; false if neither.
bool parse_unit(std::string_view text, bool& bits) {
  if (iequals(text, "bit")) {
    bits = true;
  } else if (iequals(text, "byte")) {
    bits = false;
  } else {
    return false;
  }
  return true;
}

} // namespace

void cmd_getbit(const context& c) {
  uint64_t offset = 0;
  if (!parse_bit_offset(c.arg(2), offset)) {
    c.error(bad_offset);
    return;
  }
  run_one(c, make(c, op_code::get, c.arg(1)),
          [offset](reply_writer& w, const op_reply& r) {
            w.integer(r.found ? bit_at(as_view(r.value), offset) : 0);
          });
}

void cmd_setbit(const context& c) {
  uint64_t offset = 0;
  if (!parse_bit_offset(c.arg(2), offset)) {
    c.error(bad_offset);
    return;
  }
  int64_t on = 0;
  if (!parse_ll(c.arg(3), on) || (on & ~int64_t{1}) != 0) {
    c.error("ERR bit is not an integer or out of range");
    return;
  }
  read_modify_write(
    c, std::string{c.arg(1)}, op_code::get, [offset, on](const op_reply& cur) {
      rmw_plan plan;
      auto old = bit_at(as_view(cur.value), offset);
      plan.reply = [old](reply_writer& w, const op_reply&) {
        w.integer(old);
      };
      auto need = static_cast<size_t>(offset >> 3) + 1;
      bool grows = !cur.found || cur.value.size() < need;
      if (!grows && old == on) {
        return plan; // as Redis: nothing changes, nothing is written
      }
      if (need > cache::max_value_size) {
        // Redis grows a string up to 512 MB; Mycel's values stop at its
        // limit (refused before the value is built, as SETRANGE does).
        plan.error = too_large_for_mycel(static_cast<int64_t>(need));
        return plan;
      }
      auto op = make(op_code::put, "");
      op.value = cur.value;
      if (op.value.size() < need) {
        op.value.resize(need, std::byte{0});
      }
      auto mask = static_cast<std::byte>(1U << (7 - (offset & 7)));
      auto& byte = op.value[need - 1];
      byte = on != 0 ? (byte | mask) : (byte & ~mask);
      op.flags = flags::keep_ttl;
      plan.write = std::move(op);
      return plan;
    });
}

void cmd_bitcount(const context& c) {
  // Redis looks the key up first: a missing key answers 0 whatever the
  // other arguments say. So they are checked against what the read finds.
  std::vector<std::string> args;
  for (size_t i = 2; i < c.argc(); ++i) {
    args.emplace_back(c.arg(i));
  }
  run_one(c, make(c, op_code::get, c.arg(1)),
          [args = std::move(args)](reply_writer& w, const op_reply& r) {
            if (!r.found) {
              w.integer(0);
              return;
            }
            auto p = as_view(r.value);
            auto len = static_cast<int64_t>(p.size());
            int64_t start = 0;
            int64_t end = len - 1;
            bool bits = false;
            if (args.size() == 2 || args.size() == 3) {
              if (!parse_ll(args[0], start) || !parse_ll(args[1], end)) {
                w.error(not_an_integer);
                return;
              }
              if (start < 0 && end < 0 && start > end) {
                w.integer(0); // before the unit is looked at, as Redis does
                return;
              }
              if (args.size() == 3 && !parse_unit(args[2], bits)) {
                w.error(syntax_error);
                return;
              }
              clamp_range(bits ? len * 8 : len, start, end);
            } else if (!args.empty()) {
              w.error(syntax_error);
              return;
            }
            if (start > end) {
              w.integer(0);
              return;
            }
            w.integer(bits ? count_bits(p, start, end)
                           : count_bits(p, start * 8, end * 8 + 7));
          });
}

void cmd_bitpos(const context& c) {
  int64_t bit = 0;
  if (!parse_ll(c.arg(2), bit)) {
    c.error(not_an_integer);
    return;
  }
  if (bit != 0 && bit != 1) {
    c.error("ERR The bit argument must be 1 or 0.");
    return;
  }
  std::vector<std::string> args;
  for (size_t i = 3; i < c.argc(); ++i) {
    args.emplace_back(c.arg(i));
  }
  run_one(c, make(c, op_code::get, c.arg(1)),
          [bit, args = std::move(args)](reply_writer& w, const op_reply& r) {
            if (!r.found) {
              // A missing key is zero bits without end.
              w.integer(bit != 0 ? -1 : 0);
              return;
            }
            auto p = as_view(r.value);
            auto len = static_cast<int64_t>(p.size());
            int64_t start = 0;
            int64_t end = len - 1;
            bool bits = false;
            bool end_given = false;
            if (!args.empty() && args.size() <= 3) {
              if (!parse_ll(args[0], start)) {
                w.error(not_an_integer);
                return;
              }
              // Redis looks at the unit before the end.
              if (args.size() == 3 && !parse_unit(args[2], bits)) {
                w.error(syntax_error);
                return;
              }
              if (args.size() >= 2) {
                if (!parse_ll(args[1], end)) {
                  w.error(not_an_integer);
                  return;
                }
                end_given = true;
              }
              clamp_range(bits ? len * 8 : len, start, end);
            } else if (!args.empty()) {
              w.error(syntax_error);
              return;
            }
            if (start > end) {
              w.integer(-1); // an empty range holds neither bit
              return;
            }
            auto first = bits ? start : start * 8;
            auto last = bits ? end : end * 8 + 7;
            auto pos = find_bit(p, first, last, static_cast<int>(bit));
            if (pos < 0 && bit == 0 && !end_given) {
              // Without an end the string counts as padded with zeros on the
              // right: the first clear bit is the one after it.
              pos = last + 1;
            }
            w.integer(pos);
          });
}

} // namespace mycorrizal::resp::detail
