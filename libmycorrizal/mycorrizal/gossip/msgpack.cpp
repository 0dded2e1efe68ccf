// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/msgpack.hpp"

namespace mycorrizal::gossip::msgpack {

namespace {

void put(byte_buffer& out, uint8_t x) {
  out.push_back(static_cast<std::byte>(x));
}

void put_be(byte_buffer& out, uint64_t x, size_t n) {
  for (size_t i = n; i > 0; --i) {
    put(out, static_cast<uint8_t>(x >> (8 * (i - 1))));
  }
}

} // namespace

// -- writing ----------------------------------------------------------------

void write_nil(byte_buffer& out) {
  put(out, 0xc0);
}

void write_bool(byte_buffer& out, bool x) {
  put(out, x ? 0xc3 : 0xc2);
}

void write_uint(byte_buffer& out, uint64_t x) {
  if (x <= 0x7f) {
    put(out, static_cast<uint8_t>(x));
  } else if (x <= UINT8_MAX) {
    put(out, 0xcc);
    put_be(out, x, 1);
  } else if (x <= UINT16_MAX) {
    put(out, 0xcd);
    put_be(out, x, 2);
  } else if (x <= UINT32_MAX) {
    put(out, 0xce);
    put_be(out, x, 4);
  } else {
    put(out, 0xcf);
    put_be(out, x, 8);
  }
}

void write_int(byte_buffer& out, int64_t x) {
  if (x >= 0) {
    write_uint(out, static_cast<uint64_t>(x));
  } else if (x >= -32) {
    put(out, static_cast<uint8_t>(x));
  } else if (x >= INT8_MIN) {
    put(out, 0xd0);
    put_be(out, static_cast<uint64_t>(x), 1);
  } else if (x >= INT16_MIN) {
    put(out, 0xd1);
    put_be(out, static_cast<uint64_t>(x), 2);
  } else if (x >= INT32_MIN) {
    put(out, 0xd2);
    put_be(out, static_cast<uint64_t>(x), 4);
  } else {
    put(out, 0xd3);
    put_be(out, static_cast<uint64_t>(x), 8);
  }
}

expected<void> write_raw(byte_buffer& out, bytes_view x) {
  auto n = x.size();
  if (n < 32) {
    put(out, static_cast<uint8_t>(0xa0 | n));
  } else if (n <= UINT16_MAX) {
    put(out, 0xda);
    put_be(out, n, 2);
  } else if (n <= UINT32_MAX) {
    put(out, 0xdb);
    put_be(out, n, 4);
  } else {
    return errc::frame_too_large;
  }
  out.insert(out.end(), x.begin(), x.end());
  return {};
}

expected<void> write_str(byte_buffer& out, std::string_view x) {
  return write_raw(out,
                   {reinterpret_cast<const std::byte*>(x.data()), x.size()});
}

void write_map_header(byte_buffer& out, uint32_t n) {
  if (n < 16) {
    put(out, static_cast<uint8_t>(0x80 | n));
  } else if (n <= UINT16_MAX) {
    put(out, 0xde);
    put_be(out, n, 2);
  } else {
    put(out, 0xdf);
    put_be(out, n, 4);
  }
}

void write_array_header(byte_buffer& out, uint32_t n) {
  if (n < 16) {
    put(out, static_cast<uint8_t>(0x90 | n));
  } else if (n <= UINT16_MAX) {
    put(out, 0xdc);
    put_be(out, n, 2);
  } else {
    put(out, 0xdd);
    put_be(out, n, 4);
  }
}

// -- reading ----------------------------------------------------------------

expected<value_kind> reader::peek() const {
  if (remaining() == 0) {
    return errc::truncated_frame;
  }
  auto b = static_cast<uint8_t>(input_[pos_]);
  if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
    return value_kind::integer;
  }
  if ((b & 0xf0) == 0x80 || b == 0xde || b == 0xdf) {
    return value_kind::map;
  }
  if ((b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd) {
    return value_kind::array;
  }
  if ((b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb)
      || (b >= 0xc4 && b <= 0xc6)) {
    return value_kind::raw;
  }
  switch (b) {
    case 0xc0: return value_kind::nil;
    case 0xc2:
    case 0xc3: return value_kind::boolean;
    default: return value_kind::other;
  }
}

expected<uint8_t> reader::next_byte() {
  if (remaining() == 0) {
    return errc::truncated_frame;
  }
  return static_cast<uint8_t>(input_[pos_++]);
}

expected<uint64_t> reader::fixed(size_t n) {
  if (remaining() < n) {
    return errc::truncated_frame;
  }
  uint64_t x = 0;
  for (size_t i = 0; i < n; ++i) {
    x = (x << 8) | static_cast<uint8_t>(input_[pos_ + i]);
  }
  pos_ += n;
  return x;
}

expected<bytes_view> reader::take(size_t n) {
  if (remaining() < n) {
    return errc::truncated_frame;
  }
  auto result = input_.subspan(pos_, n);
  pos_ += n;
  return result;
}

expected<void> reader::read_nil() {
  auto b = next_byte();
  if (!b) {
    return unexpected{b.error()};
  }
  if (*b != 0xc0) {
    return errc::malformed_frame;
  }
  return {};
}

expected<uint64_t> reader::read_uint(uint64_t max) {
  auto b = next_byte();
  if (!b) {
    return unexpected{b.error()};
  }
  uint64_t x = 0;
  bool negative = false;
  if (*b <= 0x7f) {
    x = *b;
  } else if (*b >= 0xe0) {
    negative = true;
  } else if (*b >= 0xcc && *b <= 0xcf) {
    auto v = fixed(size_t{1} << (*b - 0xcc));
    if (!v) {
      return unexpected{v.error()};
    }
    x = *v;
  } else if (*b >= 0xd0 && *b <= 0xd3) {
    auto n = size_t{1} << (*b - 0xd0);
    auto v = fixed(n);
    if (!v) {
      return unexpected{v.error()};
    }
    // Sign bit of the n-byte value.
    negative = (*v >> (8 * n - 1)) & 1;
    x = *v;
  } else {
    return errc::malformed_frame;
  }
  if (negative || x > max) {
    return errc::malformed_frame;
  }
  return x;
}

expected<int64_t> reader::read_int() {
  auto b = next_byte();
  if (!b) {
    return unexpected{b.error()};
  }
  if (*b <= 0x7f) {
    return int64_t{*b};
  }
  if (*b >= 0xe0) {
    return static_cast<int64_t>(static_cast<int8_t>(*b));
  }
  if (*b >= 0xcc && *b <= 0xcf) {
    auto v = fixed(size_t{1} << (*b - 0xcc));
    if (!v) {
      return unexpected{v.error()};
    }
    if (*v > static_cast<uint64_t>(INT64_MAX)) {
      return errc::malformed_frame;
    }
    return static_cast<int64_t>(*v);
  }
  if (*b >= 0xd0 && *b <= 0xd3) {
    auto n = size_t{1} << (*b - 0xd0);
    auto v = fixed(n);
    if (!v) {
      return unexpected{v.error()};
    }
    switch (n) {
      case 1: return int64_t{static_cast<int8_t>(*v)};
      case 2: return int64_t{static_cast<int16_t>(*v)};
      case 4: return int64_t{static_cast<int32_t>(*v)};
      default: return static_cast<int64_t>(*v);
    }
  }
  return errc::malformed_frame;
}

expected<bool> reader::read_bool() {
  auto k = peek();
  if (!k) {
    return unexpected{k.error()};
  }
  if (*k == value_kind::integer) {
    auto x = read_int();
    if (!x) {
      return unexpected{x.error()};
    }
    return *x != 0;
  }
  auto b = next_byte();
  if (!b) {
    return unexpected{b.error()};
  }
  switch (*b) {
    case 0xc2: return false;
    case 0xc3: return true;
    default: return errc::malformed_frame;
  }
}

expected<std::optional<bytes_view>> reader::read_raw_or_nil() {
  auto b = next_byte();
  if (!b) {
    return unexpected{b.error()};
  }
  size_t n = 0;
  if ((*b & 0xe0) == 0xa0) {
    n = *b & 0x1f;
  } else if (*b == 0xc0) {
    return std::optional<bytes_view>{};
  } else if (*b == 0xd9 || *b == 0xc4) {
    auto v = fixed(1);
    if (!v) {
      return unexpected{v.error()};
    }
    n = *v;
  } else if (*b == 0xda || *b == 0xc5) {
    auto v = fixed(2);
    if (!v) {
      return unexpected{v.error()};
    }
    n = *v;
  } else if (*b == 0xdb || *b == 0xc6) {
    auto v = fixed(4);
    if (!v) {
      return unexpected{v.error()};
    }
    n = *v;
  } else {
    return errc::malformed_frame;
  }
  auto x = take(n);
  if (!x) {
    return unexpected{x.error()};
  }
  return std::optional<bytes_view>{*x};
}

expected<bytes_view> reader::read_raw() {
  auto x = read_raw_or_nil();
  if (!x) {
    return unexpected{x.error()};
  }
  return x->value_or(bytes_view{});
}

expected<uint32_t> reader::read_map_header() {
  auto b = next_byte();
  if (!b) {
    return unexpected{b.error()};
  }
  uint64_t n = 0;
  if ((*b & 0xf0) == 0x80) {
    n = *b & 0x0f;
  } else if (*b == 0xde || *b == 0xdf) {
    auto v = fixed(*b == 0xde ? 2 : 4);
    if (!v) {
      return unexpected{v.error()};
    }
    n = *v;
  } else {
    return errc::malformed_frame;
  }
  if (n * 2 > remaining()) {
    return errc::truncated_frame;
  }
  return static_cast<uint32_t>(n);
}

expected<uint32_t> reader::read_array_header() {
  auto b = next_byte();
  if (!b) {
    return unexpected{b.error()};
  }
  uint64_t n = 0;
  if ((*b & 0xf0) == 0x90) {
    n = *b & 0x0f;
  } else if (*b == 0xdc || *b == 0xdd) {
    auto v = fixed(*b == 0xdc ? 2 : 4);
    if (!v) {
      return unexpected{v.error()};
    }
    n = *v;
  } else {
    return errc::malformed_frame;
  }
  if (n > remaining()) {
    return errc::truncated_frame;
  }
  return static_cast<uint32_t>(n);
}

expected<void> reader::skip() {
  return skip_impl(0);
}

expected<void> reader::skip_impl(int depth) {
  if (depth >= max_skip_depth) {
    return errc::malformed_frame;
  }
  auto k = peek();
  if (!k) {
    return unexpected{k.error()};
  }
  switch (*k) {
    case value_kind::nil: return read_nil();
    case value_kind::boolean: {
      auto x = read_bool();
      return x ? expected<void>{} : expected<void>{unexpected{x.error()}};
    }
    case value_kind::integer: {
      auto b = static_cast<uint8_t>(input_[pos_]);
      if (b >= 0xcc && b <= 0xcf) {
        auto x = read_uint();
        return x ? expected<void>{} : expected<void>{unexpected{x.error()}};
      }
      auto x = read_int();
      return x ? expected<void>{} : expected<void>{unexpected{x.error()}};
    }
    case value_kind::raw: {
      auto x = read_raw();
      return x ? expected<void>{} : expected<void>{unexpected{x.error()}};
    }
    case value_kind::array: {
      auto n = read_array_header();
      if (!n) {
        return unexpected{n.error()};
      }
      for (uint32_t i = 0; i < *n; ++i) {
        if (auto res = skip_impl(depth + 1); !res) {
          return res;
        }
      }
      return {};
    }
    case value_kind::map: {
      auto n = read_map_header();
      if (!n) {
        return unexpected{n.error()};
      }
      for (uint32_t i = 0; i < 2 * *n; ++i) {
        if (auto res = skip_impl(depth + 1); !res) {
          return res;
        }
      }
      return {};
    }
    case value_kind::other: break;
  }
  // Floats and extension types: fixed sizes, skipped by length.
  auto b = static_cast<uint8_t>(input_[pos_++]);
  size_t n = 0;
  switch (b) {
    case 0xca: n = 4; break;
    case 0xcb: n = 8; break;
    case 0xd4: n = 2; break;
    case 0xd5: n = 3; break;
    case 0xd6: n = 5; break;
    case 0xd7: n = 9; break;
    case 0xd8: n = 17; break;
    case 0xc7:
    case 0xc8:
    case 0xc9: {
      auto len = fixed(size_t{1} << (b - 0xc7));
      if (!len) {
        return unexpected{len.error()};
      }
      if (*len > remaining()) {
        return errc::truncated_frame;
      }
      n = static_cast<size_t>(*len) + 1;
      break;
    }
    default: return errc::malformed_frame; // 0xc1 is never used
  }
  auto x = take(n);
  return x ? expected<void>{} : expected<void>{unexpected{x.error()}};
}

} // namespace mycorrizal::gossip::msgpack
