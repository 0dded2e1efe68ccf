// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/wire/frame.hpp"

#include "mycorrizal/config_check.hpp"
#include "mycorrizal/wire/limits.hpp"

#include <algorithm>

namespace mycorrizal::wire {

std::string_view to_string(frame_type x) noexcept {
  switch (x) {
    case frame_type::stream_init: return "STREAM_INIT";
    case frame_type::data: return "DATA";
    case frame_type::request: return "REQUEST";
    case frame_type::response: return "RESPONSE";
    case frame_type::stream_error: return "STREAM_ERROR";
    case frame_type::hello: return "HELLO";
    case frame_type::apps: return "APPS";
  }
  return "UNKNOWN";
}

frame_type type_of(const frame& x) noexcept {
  static constexpr frame_type types[] = {
    frame_type::stream_init, frame_type::data,         frame_type::request,
    frame_type::response,    frame_type::stream_error, frame_type::hello,
    frame_type::apps,
  };
  static_assert(std::size(types) == std::variant_size_v<frame>);
  return types[x.index()];
}

bytes_view payload_of(const frame& x) noexcept {
  return std::visit(
    [](const auto& f) -> bytes_view {
      if constexpr (requires { f.payload; }) {
        return f.payload;
      } else {
        return {};
      }
    },
    x);
}

uint8_t negotiate_version(uint8_t our_min, uint8_t our_max, uint8_t their_min,
                          uint8_t their_max) noexcept {
  auto lo = std::max(our_min, their_min);
  auto hi = std::min(our_max, their_max);
  return lo <= hi ? hi : 0;
}

expected<void> limits::validate() const {
  config_check check{"wire"};
  check.in_range("max_frame_size", max_frame_size, 64u, 1u << 30);
  check.in_range("max_identifier_size", max_identifier_size, 1u,
                 static_cast<uint32_t>(identifier_size_limit));
  check.in_range("max_applications", max_applications, 1u, 65535u);
  check.in_range<unsigned>("version_min", version_min, protocol_version_min,
                           protocol_version_max);
  check.in_range<unsigned>("version_max", version_max, version_min,
                           protocol_version_max);
  return std::move(check).result();
}

} // namespace mycorrizal::wire
