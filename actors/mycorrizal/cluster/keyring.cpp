// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/cluster/keyring.hpp"

#include "mycorrizal/apps/application.hpp"
#include "mycorrizal/errc.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

namespace mycorrizal {

namespace {

/// How long the handler waits for its own membership actor.
constexpr auto local_wait = std::chrono::seconds{5};

caf::behavior keyring_handler_impl(caf::event_based_actor* self,
                                   const membership_actor& m) {
  return {
    [=](const app_request& r) -> caf::result<raw_bytes> {
      auto code = r.payload.empty() ? 0xff
                                    : std::to_integer<unsigned>(r.payload[0]);
      if (code > 3 || (code == 0 && r.payload.size() != 1)) {
        return make_caf_error(
          error{errc::malformed_frame, "bad keyring request from " + r.node});
      }
      auto rp = self->make_response_promise<raw_bytes>();
      if (code == 0) {
        self->request(m, local_wait, keys_atom::value)
          .then(
            [rp](std::vector<std::string>& keys) mutable {
              raw_bytes out;
              for (const auto& k : keys) {
                out.data.push_back(static_cast<std::byte>(k.size()));
                for (auto c : k) {
                  out.data.push_back(static_cast<std::byte>(c));
                }
              }
              rp.deliver(std::move(out));
            },
            [rp](caf::error& e) mutable {
              rp.deliver(std::move(e));
            });
        return rp;
      }
      auto op = code == 1   ? key_op::install
                : code == 2 ? key_op::use
                            : key_op::remove;
      std::string key(r.payload.size() - 1, '\0');
      std::memcpy(key.data(), r.payload.data() + 1, key.size());
      self->request(m, local_wait, keyop_atom::value, op, std::move(key))
        .then(
          [rp]() mutable {
            rp.deliver(raw_bytes{});
          },
          [rp](caf::error& e) mutable {
            rp.deliver(std::move(e));
          });
      return rp;
    },
    [](const app_message&) {
      // nop: the keyring takes requests only
    },
  };
}

} // namespace

size_t keyring_report::failed() const noexcept {
  size_t n = 0;
  for (const auto& r : replies) {
    n += r.failure ? 1 : 0;
  }
  return n;
}

caf::actor spawn_keyring_handler(caf::actor_system& sys, membership_actor m) {
  return sys.spawn(keyring_handler_impl, std::move(m));
}

namespace detail {

std::vector<std::byte>
encode_keyring_request(std::optional<key_op> op,
                       const std::vector<std::byte>& key) {
  if (!op) {
    return std::vector<std::byte>(1, std::byte{0});
  }
  std::vector<std::byte> out(key.size() + 1);
  switch (*op) {
    case key_op::install: out[0] = std::byte{1}; break;
    case key_op::use: out[0] = std::byte{2}; break;
    case key_op::remove: out[0] = std::byte{3}; break;
  }
  std::copy(key.begin(), key.end(), out.begin() + 1);
  return out;
}

expected<std::vector<std::vector<std::byte>>>
decode_keyring_list(const std::vector<std::byte>& reply) {
  std::vector<std::vector<std::byte>> out;
  size_t i = 0;
  while (i < reply.size()) {
    auto len = std::to_integer<size_t>(reply[i++]);
    if (len > reply.size() - i) {
      return unexpected{
        error{errc::malformed_frame, "keyring list reply cut short"}};
    }
    auto first = reply.begin() + static_cast<std::ptrdiff_t>(i);
    out.emplace_back(first, first + static_cast<std::ptrdiff_t>(len));
    i += len;
  }
  return out;
}

} // namespace detail

} // namespace mycorrizal
