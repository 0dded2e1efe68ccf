// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/gossip/fwd.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

/// The subset of msgpack that HashiCorp memberlist speaks, written the way
/// go-msgpack (`codec.MsgpackHandle{}` with zero options) writes it and read
/// the way it reads it (memberlist-wire.md §3).
///
/// Writing: strings and byte slices as old-spec raw (fixstr, `da` raw16,
/// `db` raw32; never str8 nor bin), unsigned integers in their smallest
/// unsigned form, maps with fixmap/map16/map32 headers.
///
/// Reading: every integer width, signed or unsigned, range-checked against
/// the target; fixstr, str8/16/32 and bin8/16/32 for strings and bytes; nil
/// for empty; maps and arrays. Every length is checked against the remaining
/// input before anything is allocated, and skipping unknown values recurses
/// at most `max_skip_depth` levels.
namespace mycorrizal::gossip::msgpack {

/// Nesting limit when skipping values of unknown keys.
inline constexpr int max_skip_depth = 8;

// -- writing ----------------------------------------------------------------

void write_nil(byte_buffer& out);

void write_bool(byte_buffer& out, bool x);

/// Writes `x` in the smallest unsigned form (fixint, `cc`, `cd`, `ce`, `cf`).
void write_uint(byte_buffer& out, uint64_t x);

/// Writes `x` as go-msgpack 0.5.5 writes an `int`: non-negative values like
/// `write_uint`, negative ones in the smallest signed form.
void write_int(byte_buffer& out, int64_t x);

/// Writes a raw string (fixstr, `da`, `db`).
/// @returns `errc::frame_too_large` above 2^32 - 1 bytes.
expected<void> write_raw(byte_buffer& out, bytes_view x);

/// Writes a raw string from characters.
expected<void> write_str(byte_buffer& out, std::string_view x);

/// Writes a map header (fixmap, `de`, `df`).
void write_map_header(byte_buffer& out, uint32_t n);

/// Writes an array header (fixarray, `dc`, `dd`).
void write_array_header(byte_buffer& out, uint32_t n);

// -- reading ----------------------------------------------------------------

/// What the next value is, judged by its first byte.
enum class value_kind : uint8_t {
  nil,
  boolean,
  integer,
  raw,
  array,
  map,
  other
};

/// A bounds-checked reader over msgpack input. Every read fails with
/// `errc::truncated_frame` when the input ends inside the value and with
/// `errc::malformed_frame` when the value has the wrong type or range.
/// A failed read leaves the position unspecified.
class reader {
public:
  explicit reader(bytes_view input) noexcept : input_(input) {
    // nop
  }

  /// The kind of the next value; `errc::truncated_frame` at the end.
  expected<value_kind> peek() const;

  /// Reads `nil`.
  expected<void> read_nil();

  /// Reads a bool, also accepting an integer (non-zero is true).
  expected<bool> read_bool();

  /// Reads any integer format and checks `0 <= x <= max`.
  expected<uint64_t> read_uint(uint64_t max = UINT64_MAX);

  /// Reads any integer format and checks it fits an `int64_t`.
  expected<int64_t> read_int();

  /// Reads a str or bin value of any width; `nil` yields `std::nullopt`.
  /// The view points into the input.
  expected<std::optional<bytes_view>> read_raw_or_nil();

  /// Like `read_raw_or_nil`, with `nil` read as empty.
  expected<bytes_view> read_raw();

  /// Reads a map header; the count is checked against the remaining input
  /// (each entry needs at least 2 bytes).
  expected<uint32_t> read_map_header();

  /// Reads an array header; the count is checked against the remaining
  /// input (each element needs at least 1 byte).
  expected<uint32_t> read_array_header();

  /// Skips one value of any type, nesting at most `max_skip_depth` deep.
  expected<void> skip();

  /// Bytes consumed so far.
  size_t position() const noexcept {
    return pos_;
  }

  /// Bytes not consumed yet.
  size_t remaining() const noexcept {
    return input_.size() - pos_;
  }

  /// The unconsumed input.
  bytes_view rest() const noexcept {
    return input_.subspan(pos_);
  }

  /// Consumes `n` raw bytes (not msgpack) and returns them.
  expected<bytes_view> take(size_t n);

private:
  expected<void> skip_impl(int depth);

  expected<uint8_t> next_byte();

  expected<uint64_t> fixed(size_t n);

  bytes_view input_;
  size_t pos_ = 0;
};

/// Visits a struct as go-msgpack decodes it: a map (by field name, exact
/// case; unknown keys skipped; later duplicates win), an array (positional,
/// in Go declaration order `decl`), or `nil` (all fields zero).
/// `on_field(std::string_view name, reader&)` returns `expected<bool>`:
/// true if it consumed the value, false to have it skipped.
template <class F>
expected<void>
read_struct(reader& r, std::span<const std::string_view> decl, F&& on_field) {
  auto kind = r.peek();
  if (!kind) {
    return unexpected{kind.error()};
  }
  auto visit = [&](std::string_view name) -> expected<void> {
    auto used = on_field(name, r);
    if (!used) {
      return unexpected{used.error()};
    }
    if (!*used) {
      return r.skip();
    }
    return {};
  };
  switch (*kind) {
    case value_kind::nil: return r.read_nil();
    case value_kind::map: {
      auto n = r.read_map_header();
      if (!n) {
        return unexpected{n.error()};
      }
      for (uint32_t i = 0; i < *n; ++i) {
        auto key = r.read_raw();
        if (!key) {
          return unexpected{key.error()};
        }
        std::string_view name{reinterpret_cast<const char*>(key->data()),
                              key->size()};
        if (auto res = visit(name); !res) {
          return res;
        }
      }
      return {};
    }
    case value_kind::array: {
      auto n = r.read_array_header();
      if (!n) {
        return unexpected{n.error()};
      }
      for (uint32_t i = 0; i < *n; ++i) {
        auto res = i < decl.size() ? visit(decl[i]) : r.skip();
        if (!res) {
          return res;
        }
      }
      return {};
    }
    default: return errc::malformed_frame;
  }
}

} // namespace mycorrizal::gossip::msgpack
