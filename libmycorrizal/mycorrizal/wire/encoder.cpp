// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/wire/encoder.hpp"

#include "mycorrizal/wire/detail/bytes.hpp"
#include "mycorrizal/wire/identifier.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace mycorrizal::wire {

namespace {

using namespace detail;

constexpr uint8_t payload_flags_mask = flag_caf_message;

// -- sizes ------------------------------------------------------------------

size_t body_size(const stream_init& x) noexcept {
  return 3 + x.application.size() + x.stream.size();
}

size_t body_size(const data& x) noexcept {
  return x.payload.size();
}

size_t body_size(const request& x) noexcept {
  return 12 + x.payload.size();
}

size_t body_size(const response& x) noexcept {
  return 9 + x.payload.size();
}

size_t body_size(const stream_error& x) noexcept {
  return 1 + x.message.size();
}

size_t body_size(const hello& x) noexcept {
  return 19 + x.node_name.size();
}

size_t body_size(const apps& x) noexcept {
  size_t n = 2;
  for (auto id : x.applications) {
    n += 1 + id.size();
  }
  return n;
}

// -- validation -------------------------------------------------------------

errc check_id(std::string_view id, bool allow_empty) noexcept {
  return check_identifier(id, identifier_size_limit, allow_empty);
}

errc check(const stream_init& x) noexcept {
  if (x.version == 0) {
    return errc::unsupported_version;
  }
  if (auto ec = check_id(x.application, false); ec != errc::none) {
    return ec;
  }
  return check_id(x.stream, true);
}

errc check(const data& x) noexcept {
  return (x.flags & ~payload_flags_mask) ? errc::malformed_frame : errc::none;
}

errc check(const request& x) noexcept {
  return (x.flags & ~payload_flags_mask) ? errc::malformed_frame : errc::none;
}

errc check(const response& x) noexcept {
  if ((x.flags & ~payload_flags_mask)
      || (x.status != errc::none && (x.flags & flag_caf_message))) {
    return errc::malformed_frame;
  }
  return errc::none;
}

errc check(const stream_error& x) noexcept {
  return x.code == errc::none ? errc::malformed_frame : errc::none;
}

errc check(const hello& x) noexcept {
  if (x.version_min == 0 || x.version_min > x.version_max) {
    return errc::unsupported_version;
  }
  return check_id(x.node_name, false);
}

errc check(const apps& x) noexcept {
  if (x.applications.size() > std::numeric_limits<uint16_t>::max()) {
    return errc::too_many_entries;
  }
  for (auto id : x.applications) {
    if (auto ec = check_id(id, false); ec != errc::none) {
      return ec;
    }
  }
  auto sorted = x.applications;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return errc::malformed_frame;
  }
  return errc::none;
}

// -- writing ----------------------------------------------------------------

std::byte* put(std::byte* p, std::string_view str) noexcept {
  if (!str.empty()) {
    std::memcpy(p, str.data(), str.size());
  }
  return p + str.size();
}

std::byte* put_id(std::byte* p, std::string_view id) noexcept {
  p = store_u8(p, static_cast<uint8_t>(id.size()));
  return put(p, id);
}

// Writes the fields between the header and the trailing payload (or the
// whole body for frames without payload).
std::byte* put_fields(std::byte* p, const stream_init& x) noexcept {
  p = store_u8(p, x.version);
  p = put_id(p, x.application);
  return put_id(p, x.stream);
}

std::byte* put_fields(std::byte* p, const data&) noexcept {
  return p;
}

std::byte* put_fields(std::byte* p, const request& x) noexcept {
  p = store_u64(p, x.id);
  return store_u32(p, x.timeout_ms);
}

std::byte* put_fields(std::byte* p, const response& x) noexcept {
  p = store_u64(p, x.id);
  return store_u8(p, static_cast<uint8_t>(x.status));
}

std::byte* put_fields(std::byte* p, const stream_error& x) noexcept {
  p = store_u8(p, static_cast<uint8_t>(x.code));
  return put(p, x.message);
}

std::byte* put_fields(std::byte* p, const hello& x) noexcept {
  p = store_u8(p, x.version_min);
  p = store_u8(p, x.version_max);
  p = store_u64(p, x.incarnation);
  p = store_u64(p, x.capabilities);
  return put_id(p, x.node_name);
}

std::byte* put_fields(std::byte* p, const apps& x) noexcept {
  p = store_u16(p, static_cast<uint16_t>(x.applications.size()));
  for (auto id : x.applications) {
    p = put_id(p, id);
  }
  return p;
}

uint8_t flags_of(const frame& x) noexcept {
  return std::visit(
    [](const auto& f) -> uint8_t {
      if constexpr (requires { f.flags; }) {
        return f.flags;
      } else {
        return 0;
      }
    },
    x);
}

// Validates `x`, then writes header and fields (not the payload).
// Returns the prefix size.
expected<size_t> write_prefix(const frame& x, std::span<std::byte> out,
                              size_t needed) noexcept {
  auto ec = std::visit(
    [](const auto& f) {
      return check(f);
    },
    x);
  if (ec != errc::none) {
    return ec;
  }
  auto body = std::visit(
    [](const auto& f) {
      return body_size(f);
    },
    x);
  if (body > std::numeric_limits<uint32_t>::max()) {
    return errc::frame_too_large;
  }
  auto prefix = header_size + body - payload_of(x).size();
  if (out.size() < prefix + needed) {
    return errc::buffer_too_small;
  }
  auto* p = out.data();
  p = store_u8(p, static_cast<uint8_t>(type_of(x)));
  p = store_u8(p, flags_of(x));
  p = store_u32(p, static_cast<uint32_t>(body));
  std::visit(
    [p](const auto& f) {
      put_fields(p, f);
    },
    x);
  return prefix;
}

} // namespace

expected<size_t> encoded_size(const frame& x) noexcept {
  auto body = std::visit(
    [](const auto& f) {
      return body_size(f);
    },
    x);
  if (body > std::numeric_limits<uint32_t>::max()) {
    return errc::frame_too_large;
  }
  return header_size + body;
}

expected<size_t> encode(const frame& x, std::span<std::byte> out) noexcept {
  auto payload = payload_of(x);
  auto prefix = write_prefix(x, out, payload.size());
  if (!prefix) {
    return prefix;
  }
  if (!payload.empty()) {
    std::memcpy(out.data() + *prefix, payload.data(), payload.size());
  }
  return *prefix + payload.size();
}

expected<size_t> encode_prefix(const frame& x,
                               std::span<std::byte> out) noexcept {
  switch (type_of(x)) {
    case frame_type::data:
    case frame_type::request:
    case frame_type::response: return write_prefix(x, out, 0);
    default: return errc::unexpected_frame;
  }
}

expected<void> append(std::vector<std::byte>& out, const frame& x) {
  auto size = encoded_size(x);
  if (!size) {
    return unexpected{std::move(size).error()};
  }
  auto old_size = out.size();
  out.resize(old_size + *size);
  auto res = encode(x, std::span{out}.subspan(old_size));
  if (!res) {
    out.resize(old_size);
    return unexpected{std::move(res).error()};
  }
  return {};
}

} // namespace mycorrizal::wire
