// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/apps/internal/caf_payload.hpp"

#include "mycorrizal/errc.hpp"

#include <caf/binary_deserializer.hpp>
#include <caf/serializer_impl.hpp>
#include <caf/uniform_type_info_map.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string_view>

namespace mycorrizal::detail {

namespace {

/// CAF's binary serializer, minus two faults of CAF 0.17's IEEE 754
/// packing (`detail::pack754`): it loops forever on an infinity (halving
/// it never gets below 2) and converts NaN to an integer (undefined). An
/// infinity is written as its IEEE bit pattern, which CAF's unpacking reads
/// back as the same infinity; NaN has no encoding there and is refused.
/// (`serializer_impl` is final: this wraps one and forwards to it.)
class payload_serializer final : public caf::serializer {
public:
  payload_serializer(caf::actor_system& sys, std::vector<std::byte>& out)
      : caf::serializer(sys), inner_(sys, out) {}

  /// Why the last refusal happened (empty: none).
  std::string refusal;

  caf::error begin_object(uint16_t& typenr, std::string& name) override {
    return inner_.begin_object(typenr, name);
  }
  caf::error end_object() override {
    return inner_.end_object();
  }
  caf::error begin_sequence(size_t& num) override {
    return inner_.begin_sequence(num);
  }
  caf::error end_sequence() override {
    return inner_.end_sequence();
  }
  caf::error apply_raw(size_t num_bytes, void* data) override {
    return inner_.apply_raw(num_bytes, data);
  }

protected:
  caf::error apply_impl(int8_t& x) override {
    return inner_(x);
  }
  caf::error apply_impl(uint8_t& x) override {
    return inner_(x);
  }
  caf::error apply_impl(int16_t& x) override {
    return inner_(x);
  }
  caf::error apply_impl(uint16_t& x) override {
    return inner_(x);
  }
  caf::error apply_impl(int32_t& x) override {
    return inner_(x);
  }
  caf::error apply_impl(uint32_t& x) override {
    return inner_(x);
  }
  caf::error apply_impl(int64_t& x) override {
    return inner_(x);
  }
  caf::error apply_impl(uint64_t& x) override {
    return inner_(x);
  }
  caf::error apply_impl(long double& x) override {
    return inner_(x); // CAF writes it as text
  }
  caf::error apply_impl(std::string& x) override {
    return inner_(x);
  }
  caf::error apply_impl(std::u16string& x) override {
    return inner_(x);
  }
  caf::error apply_impl(std::u32string& x) override {
    return inner_(x);
  }

  caf::error apply_impl(float& x) override {
    return apply_float(x, uint32_t{0x7f80'0000u});
  }

  caf::error apply_impl(double& x) override {
    return apply_float(x, uint64_t{0x7ff0'0000'0000'0000u});
  }

private:
  /// `infinity`: the IEEE bit pattern of +infinity, `Bits` as wide as `F`.
  template <class F, class Bits>
  caf::error apply_float(F& x, Bits infinity) {
    if (std::isfinite(x)) {
      return inner_(x);
    }
    if (std::isnan(x)) {
      return refuse_nan();
    }
    constexpr Bits sign = Bits{1} << (sizeof(Bits) * 8 - 1);
    Bits bits = infinity | (std::signbit(x) ? sign : Bits{0});
    return inner_(bits);
  }

  caf::error refuse_nan() {
    refusal = "a NaN floating-point value (CAF 0.17's binary format has no "
              "encoding for NaN)";
    return caf::make_error(caf::sec::invalid_argument);
  }

  caf::serializer_impl<std::vector<std::byte>> inner_;
};

/// CAF's built-in types that mean nothing on another node (actor handles,
/// node ids, groups, stream and system messages) or nest without bound
/// (config_value): a peer may not send them, and we do not send them.
/// Remote actors are reached through remote handles (node::handle).
constexpr std::array<std::string_view, 17> refused_types{
  "@actor",
  "@actorvec",
  "@addr",
  "@addrvec",
  "@config_value",
  "@down",
  "@downstream_msg",
  "@exit",
  "@group",
  "@group_down",
  "@message_id",
  "@node",
  "@open_stream_msg",
  "@strong_actor_ptr",
  "@timeout",
  "@upstream_msg",
  "@weak_actor_ptr",
};

bool refused(std::string_view type_name) {
  return std::find(refused_types.begin(), refused_types.end(), type_name)
         != refused_types.end();
}

/// Messages inside a message (elements of type `@message`, error
/// contexts...) are decoded recursively by CAF: a peer could nest them
/// until the stack overflows (24 bytes per level).
constexpr size_t max_messages = 64;

/// Finds every message header CAF would read: a type list "@<>+T1+T2..."
/// after a zero type number and its varbyte length. Refuses more than
/// `max_messages` of them and any refused element type. Text inside
/// strings that looks like a header counts too: such payloads are refused,
/// never decoded wrongly.
expected<void> check_headers(const std::vector<std::byte>& bytes) {
  std::string_view text{reinterpret_cast<const char*>(bytes.data()),
                        bytes.size()};
  size_t count = 0;
  for (auto pos = text.find("@<>"); pos != std::string_view::npos;
       pos = text.find("@<>", pos + 3)) {
    if (++count > max_messages) {
      return unexpected{
        error{errc::not_serializable,
              fmt::format("more than {} messages nested in one payload",
                          max_messages)}};
    }
    // The varbyte length before the name: one byte, or two when the one
    // before has the continuation bit (longer lists are not plausible).
    if (pos == 0) {
      continue;
    }
    auto last = static_cast<uint8_t>(text[pos - 1]);
    size_t len = last;
    if (pos >= 2 && (static_cast<uint8_t>(text[pos - 2]) & 0x80) != 0) {
      len = (static_cast<uint8_t>(text[pos - 2]) & 0x7f) | (size_t{last} << 7);
    }
    auto list = text.substr(pos, len);
    if (!list.starts_with("@<>+")) {
      continue;
    }
    list.remove_prefix(4);
    while (!list.empty()) {
      auto end = list.find('+');
      auto name = list.substr(0, end);
      if (refused(name)) {
        return unexpected{
          error{errc::not_serializable,
                fmt::format("element type {} cannot cross nodes", name)}};
      }
      list.remove_prefix(end == std::string_view::npos ? list.size() : end + 1);
    }
  }
  return {};
}

} // namespace

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
    auto name = sys.types().portable_name(msg.type(i));
    if (name == "???") {
      return unexpected{
        error{errc::not_serializable,
              "element " + std::to_string(i) + " of " + describe_message(msg)
                + " has a type not registered with add_message_type"}};
    }
    if (refused(name)) {
      return unexpected{
        error{errc::not_serializable,
              "element " + std::to_string(i) + " of " + describe_message(msg)
                + " has type " + name
                + ", which cannot cross nodes (use remote handles for "
                  "actors)"}};
    }
  }
  // The serializer writes straight into the payload: one copy.
  std::vector<std::byte> out;
  payload_serializer sink{sys, out};
  auto err = sink(msg);
  // Checked apart from `err`: CAF 0.17 drops the errors of a message's
  // elements (`serialize(proc, type_erased_tuple&)` ignores `save`'s).
  if (!sink.refusal.empty()) {
    return unexpected{
      error{errc::not_serializable, "cannot serialize " + describe_message(msg)
                                      + ": it holds " + sink.refusal}};
  }
  if (err) {
    return unexpected{error{errc::not_serializable,
                            "cannot serialize " + describe_message(msg) + ": "
                              + sys.render(err)
                              + " (register its types with add_message_type)"}};
  }
  return out;
}

expected<caf::message> decode_caf_message(caf::actor_system& sys,
                                          const std::vector<std::byte>& bytes) {
  if (auto ok = check_headers(bytes); !ok) {
    return unexpected{
      error{errc::not_serializable, "cannot deserialize a CAF message of "
                                      + std::to_string(bytes.size())
                                      + " bytes: " + ok.error().context()}};
  }
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
