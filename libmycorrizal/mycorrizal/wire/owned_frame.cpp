// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/wire/owned_frame.hpp"

#include "mycorrizal/wire/encoder.hpp"

#include <cassert>
#include <tuple>
#include <type_traits>

namespace mycorrizal::wire {

namespace {

std::vector<std::byte> copy(bytes_view x) {
  return {x.begin(), x.end()};
}

/// `to_owned`, with `take(f.payload)` making a payload's storage.
template <class TakePayload>
owned_frame own(const frame& x, TakePayload&& take) {
  return std::visit(
    [&take](const auto& f) -> owned_frame {
      using T = std::decay_t<decltype(f)>;
      if constexpr (std::is_same_v<T, stream_init>) {
        return owned_stream_init{f.version, std::string{f.application},
                                 std::string{f.stream}};
      } else if constexpr (std::is_same_v<T, data>) {
        return owned_data{f.flags, take(f.payload)};
      } else if constexpr (std::is_same_v<T, request>) {
        return owned_request{f.id, f.timeout_ms, f.flags, take(f.payload)};
      } else if constexpr (std::is_same_v<T, response>) {
        return owned_response{f.id, f.status, f.flags, take(f.payload)};
      } else if constexpr (std::is_same_v<T, stream_error>) {
        return owned_stream_error{f.code, std::string{f.message}};
      } else if constexpr (std::is_same_v<T, hello>) {
        return owned_hello{f.version_min, f.version_max, f.incarnation,
                           f.capabilities, std::string{f.node_name}};
      } else {
        owned_apps out;
        out.applications.reserve(f.applications.size());
        for (auto a : f.applications) {
          out.applications.emplace_back(a);
        }
        return out;
      }
    },
    x);
}

} // namespace

owned_frame to_owned(const frame& x) {
  return own(x, [](bytes_view p) {
    return copy(p);
  });
}

owned_frame to_owned(const frame& x, std::vector<std::byte>&& payload) {
  return own(x, [&payload](bytes_view p) {
    assert(p.size() == payload.size());
    std::ignore = p;
    return std::move(payload);
  });
}

frame view(const owned_frame& x) {
  return std::visit(
    [](const auto& f) -> frame {
      using T = std::decay_t<decltype(f)>;
      if constexpr (std::is_same_v<T, owned_stream_init>) {
        return stream_init{f.version, f.application, f.stream};
      } else if constexpr (std::is_same_v<T, owned_data>) {
        return data{f.flags, f.payload};
      } else if constexpr (std::is_same_v<T, owned_request>) {
        return request{f.id, f.timeout_ms, f.flags, f.payload};
      } else if constexpr (std::is_same_v<T, owned_response>) {
        return response{f.id, f.status, f.flags, f.payload};
      } else if constexpr (std::is_same_v<T, owned_stream_error>) {
        return stream_error{f.code, f.message};
      } else if constexpr (std::is_same_v<T, owned_hello>) {
        return hello{f.version_min, f.version_max, f.incarnation,
                     f.capabilities, f.node_name};
      } else {
        apps out;
        out.applications.reserve(f.applications.size());
        for (const auto& a : f.applications) {
          out.applications.emplace_back(a);
        }
        return out;
      }
    },
    x);
}

frame_type type_of(const owned_frame& x) noexcept {
  // The alternatives are in `frame`'s order, so the index maps alike.
  static constexpr frame_type types[] = {
    frame_type::stream_init, frame_type::data,         frame_type::request,
    frame_type::response,    frame_type::stream_error, frame_type::hello,
    frame_type::apps,
  };
  return types[x.index()];
}

size_t wire_size(const owned_frame& x) noexcept {
  auto n = encoded_size(view(x));
  return n ? *n : 0;
}

} // namespace mycorrizal::wire
