// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: CAF message payloads (flag_caf_message) as a peer may
// send them, through detail::decode_caf_message.

#include "mycorrizal/apps/internal/caf_payload.hpp"

#include "fuzz_check.hpp"

#include <caf/all.hpp>
#include <caf/serializer_impl.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

/// Input layout:
///
///   byte 0   bit 7 clear: a template message (`byte 0 % templates`) is
///            encoded, then mutated by the operations that follow; bit 7
///            set: the rest of the input is the payload as it is.
///   byte 1   number of operations (at most 64), each 4 bytes:
///            kind (0 overwrite, 1 insert, 2 erase, 3 truncate), position
///            (2 bytes, little endian, modulo the payload's size), value.
///
/// CAF itself is not instrumented (Debian's library), so libFuzzer sees
/// little coverage inside the deserializer; the templates and operations
/// give the mutations the message structure instead. Checked for every
/// run: decoding returns a message or `not_serializable` and never crashes
/// or throws; a message it accepts encodes again, and that encoding decodes
/// to the same message (same rendering).
namespace fuzz {

struct record {
  std::string name;
  std::vector<int32_t> values;
  std::map<std::string, double> attrs;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record& x) {
  return f(caf::meta::type_name("fuzz_record"), x.name, x.values, x.attrs);
}

} // namespace fuzz

namespace {

using namespace mycorrizal;

struct fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::vector<std::vector<std::byte>> templates;

  fixture() {
    cfg.set("scheduler.max-threads", 1);
    cfg.add_message_type<fuzz::record>("fuzz_record");
    cfg.add_message_type<std::vector<std::string>>("std::vector<std::string>");
    sys = std::make_unique<caf::actor_system>(cfg);
    std::vector<caf::message> msgs{
      caf::make_message(std::string{"hello"}, int32_t{42}),
      caf::make_message(fuzz::record{"r", {1, -2, 3}, {{"a", 0.5}, {"b", 2}}}),
      caf::make_message(std::vector<std::string>{"x", "yz"}, uint64_t{7}),
      caf::make_message(caf::make_message(std::string{"inner"}, int32_t{1}),
                        int32_t{2}),
      caf::make_message(caf::atom("get"), std::string{"key"}),
      caf::make_message(caf::make_error(caf::sec::request_timeout)),
      caf::message{},
    };
    for (auto& m : msgs) {
      auto bytes = detail::encode_caf_message(*sys, m);
      FUZZ_CHECK(bytes.has_value());
      auto back = detail::decode_caf_message(*sys, *bytes);
      FUZZ_CHECK(back.has_value());
      FUZZ_CHECK(caf::to_string(*back) == caf::to_string(m));
      templates.push_back(std::move(*bytes));
    }
    // What a peer may send although we never do: types that cannot cross
    // nodes, written by CAF's own serializer. Refused, also when mutated
    // into something else that must then decode cleanly or be refused.
    std::vector<caf::message> foreign{
      caf::make_message(caf::actor_addr{}, caf::exit_reason::user_shutdown),
      caf::make_message(caf::down_msg{}, int32_t{3}),
      caf::make_message(caf::config_value{int64_t{3}}),
    };
    for (auto& m : foreign) {
      std::vector<std::byte> bytes;
      caf::serializer_impl<std::vector<std::byte>> sink{*sys, bytes};
      FUZZ_CHECK(!sink(m));
      FUZZ_CHECK(!detail::decode_caf_message(*sys, bytes).has_value());
      templates.push_back(std::move(bytes));
    }
  }
};

fixture& the_fixture() {
  // Never destroyed: CAF's own statics are gone by the time a static
  // actor_system would shut down at exit.
  static auto* f = new fixture;
  return *f;
}

std::vector<std::byte> payload_of(const uint8_t* data, size_t size,
                                  const fixture& f) {
  std::vector<std::byte> out;
  if (size == 0) {
    return out;
  }
  if ((data[0] & 0x80) != 0) {
    out.resize(size - 1);
    for (size_t i = 1; i < size; ++i) {
      out[i - 1] = static_cast<std::byte>(data[i]);
    }
    return out;
  }
  out = f.templates[data[0] % f.templates.size()];
  size_t ops = size > 1 ? std::min<size_t>(data[1], 64) : 0;
  for (size_t i = 0; i < ops && 2 + 4 * i + 3 < size; ++i) {
    const auto* op = data + 2 + 4 * i;
    auto pos = static_cast<size_t>(op[1]) | (static_cast<size_t>(op[2]) << 8);
    auto value = static_cast<std::byte>(op[3]);
    switch (op[0] & 3) {
      case 0:
        if (!out.empty()) {
          out[pos % out.size()] = value;
        }
        break;
      case 1:
        out.insert(out.begin()
                     + static_cast<std::ptrdiff_t>(pos % (out.size() + 1)),
                   value);
        break;
      case 2:
        if (!out.empty()) {
          out.erase(out.begin()
                    + static_cast<std::ptrdiff_t>(pos % out.size()));
        }
        break;
      default: out.resize(pos % (out.size() + 1)); break;
    }
  }
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& f = the_fixture();
  auto payload = payload_of(data, size, f);
  auto msg = detail::decode_caf_message(*f.sys, payload);
  if (!msg) {
    FUZZ_CHECK(msg.error().code() == errc::not_serializable);
    FUZZ_CHECK(!msg.error().context().empty());
    return 0;
  }
  auto again = detail::encode_caf_message(*f.sys, *msg);
  FUZZ_CHECK(again.has_value());
  auto back = detail::decode_caf_message(*f.sys, *again);
  FUZZ_CHECK(back.has_value());
  FUZZ_CHECK(caf::to_string(*back) == caf::to_string(*msg));
  return 0;
}
