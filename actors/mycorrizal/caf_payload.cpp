// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/internal/caf_payload.hpp"

#include "mycorrizal/errc.hpp"

#include <caf/binary_deserializer.hpp>
#include <caf/serializer_impl.hpp>
#include <caf/uniform_type_info_map.hpp>

namespace mycorrizal::detail {

std::string describe_message(const caf::message& msg) {
  auto text = caf::to_string(msg);
  if (text.size() > 80) {
    text.resize(77);
    text += "...";
  }
  return text;
}

expected<std::vector<std::byte>> encode_caf_message(caf::actor_system& sys,
                                                    caf::message& msg) {
  // CAF 0.17's serializer skips (and only logs) a type that is not in the
  // type list: check first, so that nothing half-written leaves.
  for (size_t i = 0; i < msg.size(); ++i) {
    if (sys.types().portable_name(msg.type(i)) == "???") {
      return unexpected{
        error{errc::not_serializable,
              "element " + std::to_string(i) + " of " + describe_message(msg)
                + " has a type not registered with add_message_type"}};
    }
  }
  // The serializer writes straight into the payload: one copy.
  std::vector<std::byte> out;
  caf::serializer_impl<std::vector<std::byte>> sink{sys, out};
  if (auto err = sink(msg)) {
    return unexpected{error{errc::not_serializable,
                            "cannot serialize " + describe_message(msg) + ": "
                              + sys.render(err)
                              + " (register its types with add_message_type)"}};
  }
  return out;
}

expected<caf::message> decode_caf_message(caf::actor_system& sys,
                                          const std::vector<std::byte>& bytes) {
  caf::binary_deserializer src{sys, reinterpret_cast<const char*>(bytes.data()),
                               bytes.size()};
  caf::message msg;
  auto err = src(msg);
  auto fail = [&](const std::string& why) {
    return unexpected{
      error{errc::not_serializable, "cannot deserialize a CAF message of "
                                      + std::to_string(bytes.size())
                                      + " bytes: " + why}};
  };
  if (err) {
    return fail(sys.render(err));
  }
  if (src.remaining() != 0) {
    return fail(std::to_string(src.remaining()) + " bytes left over");
  }
  if (msg.empty()) {
    // CAF 0.17 turns any failure into an empty message: only the exact
    // encoding of the empty message is one.
    static const auto empty = [&] {
      caf::message none;
      return encode_caf_message(sys, none);
    }();
    if (!empty || *empty != bytes) {
      return fail("malformed, or a type not registered with add_message_type "
                  "here");
    }
  }
  return msg;
}

} // namespace mycorrizal::detail
