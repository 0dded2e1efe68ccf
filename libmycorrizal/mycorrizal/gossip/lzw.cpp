// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/lzw.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>

namespace mycorrizal::gossip {

namespace {

constexpr uint32_t lit_width = 8;
constexpr uint32_t clear_code = 1u << lit_width; // 256
constexpr uint32_t eof_code = clear_code + 1;    // 257
constexpr uint32_t max_code = (1u << 12) - 1;    // 4095
constexpr uint32_t max_width = 12;

// LSB-first bit packer.
class bit_writer {
public:
  explicit bit_writer(byte_buffer& out) : out_(out) {
    // nop
  }

  void write(uint32_t code, uint32_t width) {
    bits_ |= uint64_t{code} << nbits_;
    nbits_ += width;
    while (nbits_ >= 8) {
      out_.push_back(static_cast<std::byte>(bits_ & 0xff));
      bits_ >>= 8;
      nbits_ -= 8;
    }
  }

  void flush() {
    if (nbits_ > 0) {
      out_.push_back(static_cast<std::byte>(bits_ & 0xff));
      bits_ = 0;
      nbits_ = 0;
    }
  }

private:
  byte_buffer& out_;
  uint64_t bits_ = 0;
  uint32_t nbits_ = 0;
};

// The compressor's dictionary: (prefix code, next byte) -> code, as an
// open-addressing hash table of 4 * 4096 slots (never more than 3/4 full).
class dictionary {
public:
  static constexpr uint32_t size = 4 * 4096;
  static constexpr uint32_t mask = size - 1;

  dictionary() : slots_(std::make_unique<uint32_t[]>(size)) {
    // nop
  }

  void clear() {
    std::fill_n(slots_.get(), size, 0u);
  }

  // Returns the code for `key` or 0 (no code is 0: codes start at 258).
  uint32_t find(uint32_t key) const {
    for (auto h = hash(key);; h = (h + 1) & mask) {
      auto slot = slots_[h];
      if (slot == 0) {
        return 0;
      }
      if ((slot >> 12) == key) {
        return slot & max_code;
      }
    }
  }

  void insert(uint32_t key, uint32_t code) {
    for (auto h = hash(key);; h = (h + 1) & mask) {
      if (slots_[h] == 0) {
        slots_[h] = (key << 12) | code;
        return;
      }
    }
  }

private:
  static uint32_t hash(uint32_t key) {
    return ((key >> 12) ^ key) & mask;
  }

  std::unique_ptr<uint32_t[]> slots_;
};

} // namespace

byte_buffer lzw_compress(bytes_view input) {
  byte_buffer out;
  out.reserve(input.size() / 2 + 8);
  bit_writer bits{out};
  uint32_t width = lit_width + 1;
  uint32_t hi = eof_code;          // the last assigned code
  uint32_t overflow = 1u << width; // hi at which width grows
  bits.write(clear_code, width);
  if (input.empty()) {
    bits.write(eof_code, width);
    bits.flush();
    return out;
  }
  dictionary dict;
  // Advances `hi` after a code was written; true if the table was reset.
  auto inc_hi = [&]() {
    ++hi;
    if (hi == overflow) {
      ++width;
      overflow <<= 1;
    }
    if (hi == max_code) {
      bits.write(clear_code, width);
      width = lit_width + 1;
      hi = eof_code;
      overflow = 1u << width;
      dict.clear();
      return true;
    }
    return false;
  };
  uint32_t code = static_cast<uint8_t>(input[0]);
  for (size_t i = 1; i < input.size(); ++i) {
    auto literal = static_cast<uint32_t>(static_cast<uint8_t>(input[i]));
    auto key = (code << 8) | literal;
    if (auto found = dict.find(key); found != 0) {
      code = found;
      continue;
    }
    bits.write(code, width);
    code = literal;
    if (inc_hi()) {
      continue;
    }
    dict.insert(key, hi);
  }
  bits.write(code, width);
  inc_hi();
  bits.write(eof_code, width);
  bits.flush();
  return out;
}

expected<byte_buffer> lzw_decompress(bytes_view input, size_t max_size) {
  constexpr uint32_t invalid = UINT32_MAX;
  // prefix/suffix of every code >= 258; first byte of each expansion.
  auto prefix = std::make_unique<uint16_t[]>(max_code + 1);
  auto suffix = std::make_unique<uint8_t[]>(max_code + 1);
  std::array<uint8_t, max_code + 1> scratch{};
  byte_buffer out;
  uint32_t width = lit_width + 1;
  uint32_t hi = eof_code; // the next code to assign (after a literal)
  uint32_t overflow = 1u << width;
  uint32_t last = invalid;
  uint64_t bits = 0;
  uint32_t nbits = 0;
  size_t pos = 0;
  for (;;) {
    while (nbits < width) {
      if (pos == input.size()) {
        return errc::decompress_failed; // no end-of-data code
      }
      bits |= uint64_t{static_cast<uint8_t>(input[pos++])} << nbits;
      nbits += 8;
    }
    auto code = static_cast<uint32_t>(bits & ((1u << width) - 1));
    bits >>= width;
    nbits -= width;
    if (code == clear_code) {
      width = lit_width + 1;
      hi = eof_code;
      overflow = 1u << width;
      last = invalid;
      continue;
    }
    if (code == eof_code) {
      return out;
    }
    // Expand `code` into scratch[i..], back to front.
    size_t i = scratch.size();
    uint32_t first = 0;
    if (code < clear_code) {
      scratch[--i] = static_cast<uint8_t>(code);
      first = code;
    } else if (code <= hi) {
      uint32_t c = code;
      if (code == hi && last != invalid) {
        // KwKwK: the last expansion followed by its own first byte.
        c = last;
        while (c >= clear_code) {
          c = prefix[c];
        }
        scratch[--i] = static_cast<uint8_t>(c);
        c = last;
      }
      while (c >= clear_code) {
        scratch[--i] = suffix[c];
        c = prefix[c];
      }
      scratch[--i] = static_cast<uint8_t>(c);
      first = c;
    } else {
      return errc::decompress_failed; // a code not assigned yet
    }
    auto n = scratch.size() - i;
    if (out.size() + n > max_size) {
      return errc::frame_too_large;
    }
    for (; i < scratch.size(); ++i) {
      out.push_back(static_cast<std::byte>(scratch[i]));
    }
    if (last != invalid && hi <= max_code) {
      suffix[hi] = static_cast<uint8_t>(first);
      prefix[hi] = static_cast<uint16_t>(last);
    }
    last = code;
    ++hi;
    if (hi >= overflow) {
      if (width == max_width) {
        // Table full and no clear code: stop adding entries.
        last = invalid;
        --hi;
      } else {
        ++width;
        overflow <<= 1;
      }
    }
  }
}

} // namespace mycorrizal::gossip
