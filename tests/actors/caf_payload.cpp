// SPDX-License-Identifier: Apache-2.0
// CAF messages as frame payloads: round trips, and bytes from a peer that
// are not one message (truncated, trailing bytes, garbage, unknown types)
// refused with not_serializable instead of becoming an empty message.
#include "mycorrizal/apps/internal/caf_payload.hpp"

#include "mycorrizal/errc.hpp"

#include <caf/all.hpp>
#include <caf/serializer_impl.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace mycorrizal;

namespace {

struct sample {
  int32_t x = 0;
  std::string label;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, sample& s) {
  return f(caf::meta::type_name("payload_sample"), s.x, s.label);
}

class caf_payload : public ::testing::Test {
protected:
  caf_payload() : sys_(config()) {
    // nop
  }

  static caf::actor_system_config& config() {
    static caf::actor_system_config cfg = [] {
      caf::actor_system_config c;
      c.add_message_type<sample>("payload_sample");
      c.set("scheduler.max-threads", 1);
      return c;
    }();
    return cfg;
  }

  std::vector<std::byte> encode(caf::message msg) {
    auto b = detail::encode_caf_message(sys_, msg);
    EXPECT_TRUE(b) << (b ? "" : to_string(b.error()));
    return b ? *b : std::vector<std::byte>{};
  }

  caf::actor_system sys_;
};

TEST_F(caf_payload, round_trips) {
  auto b = encode(caf::make_message(42, std::string{"hi"}, sample{7, "s"}));
  auto m = detail::decode_caf_message(sys_, b);
  ASSERT_TRUE(m) << to_string(m.error());
  ASSERT_TRUE((m->match_elements<int, std::string, sample>()));
  EXPECT_EQ(m->get_as<int>(0), 42);
  EXPECT_EQ(m->get_as<std::string>(1), "hi");
  EXPECT_EQ(m->get_as<sample>(2).label, "s");
  // The empty message (a void reply) is a message too.
  auto e = detail::decode_caf_message(sys_, encode(caf::message{}));
  ASSERT_TRUE(e) << to_string(e.error());
  EXPECT_TRUE(e->empty());
}

TEST_F(caf_payload, unregistered_types_are_refused_on_both_sides) {
  auto msg = caf::make_message(std::string{"x"}, sample{1, "y"});
  // The sender: a type it did not register.
  caf::actor_system_config plain_cfg;
  plain_cfg.set("scheduler.max-threads", 1);
  caf::actor_system plain{plain_cfg};
  auto out = detail::encode_caf_message(plain, msg);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), errc::not_serializable);
  // The receiver: a type only the sender registered.
  auto in = detail::decode_caf_message(plain, encode(msg));
  ASSERT_FALSE(in);
  EXPECT_EQ(in.error().code(), errc::not_serializable) << to_string(in.error());
}

TEST_F(caf_payload, malformed_bytes_are_refused) {
  auto good = encode(caf::make_message(42, std::string{"hello"}));
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<std::byte> cut(good.begin(),
                               good.begin() + static_cast<ptrdiff_t>(n));
    auto m = detail::decode_caf_message(sys_, cut);
    EXPECT_FALSE(m) << "a " << n << "-byte prefix decoded as "
                    << caf::to_string(*m);
  }
  auto longer = good;
  longer.push_back(std::byte{0});
  auto m = detail::decode_caf_message(sys_, longer);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code(), errc::not_serializable);
  std::vector<std::byte> junk(64, std::byte{0xff});
  EXPECT_FALSE(detail::decode_caf_message(sys_, junk));
}

TEST_F(caf_payload, mutated_payloads_never_crash_and_never_half_decode) {
  auto good
    = encode(caf::make_message(42, std::string{"hello"}, sample{3, "label"},
                               std::vector<std::string>{"a", "b"}));
  std::mt19937 rng{20261121};
  size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    auto b = good;
    auto flips = 1 + rng() % 4;
    for (size_t j = 0; j < flips; ++j) {
      b[rng() % b.size()] = static_cast<std::byte>(rng());
    }
    if (rng() % 4 == 0) {
      b.resize(rng() % (b.size() + 8), std::byte{0x5a});
    }
    auto m = detail::decode_caf_message(sys_, b);
    if (m) {
      // Whatever decodes is a whole message that encodes back to the same
      // bytes.
      ++accepted;
      EXPECT_EQ(encode(*m), b);
    } else {
      EXPECT_EQ(m.error().code(), errc::not_serializable);
    }
  }
  EXPECT_LT(accepted, 20000u);
}

} // namespace

TEST_F(caf_payload, nesting_is_bounded_before_caf_recurses) {
  // A few levels, as an application may nest, decode.
  caf::message m = caf::make_message(int32_t{1});
  for (size_t i = 0; i < 10; ++i) {
    m = caf::make_message(std::move(m), int32_t{0});
  }
  auto ten = encode(m);
  auto back = detail::decode_caf_message(sys_, ten);
  ASSERT_TRUE(back) << to_string(back.error());
  EXPECT_EQ(caf::to_string(*back), caf::to_string(m));
  // A peer's 100,000 levels (2.4 MB, crafted: CAF's own encoder overflows
  // the stack on them) are refused before CAF recurses into them. The
  // levels are cut out of CAF's encodings of depth 0 and 1.
  auto d0 = encode(caf::make_message(int32_t{1}));
  auto d1
    = encode(caf::make_message(caf::make_message(int32_t{1}), int32_t{0}));
  auto at = std::search(d1.begin(), d1.end(), d0.begin(), d0.end());
  ASSERT_NE(at, d1.end());
  std::vector<std::byte> prefix(d1.begin(), at);
  std::vector<std::byte> suffix(at + static_cast<std::ptrdiff_t>(d0.size()),
                                d1.end());
  auto nested = [&](size_t depth) {
    std::vector<std::byte> out;
    for (size_t i = 0; i < depth; ++i) {
      out.insert(out.end(), prefix.begin(), prefix.end());
    }
    out.insert(out.end(), d0.begin(), d0.end());
    for (size_t i = 0; i < depth; ++i) {
      out.insert(out.end(), suffix.begin(), suffix.end());
    }
    return out;
  };
  // The crafting is right: depth 10 gives CAF's own bytes.
  EXPECT_EQ(nested(10), ten);
  auto deep = detail::decode_caf_message(sys_, nested(100'000));
  ASSERT_FALSE(deep);
  EXPECT_EQ(deep.error().code(), errc::not_serializable);
  EXPECT_NE(deep.error().context().find("nested"), std::string::npos)
    << to_string(deep.error());
  // The bound: 64 messages in all, the outermost included.
  EXPECT_TRUE(detail::decode_caf_message(sys_, nested(63)));
  EXPECT_FALSE(detail::decode_caf_message(sys_, nested(64)));
}

TEST_F(caf_payload, actor_handles_and_system_types_cannot_cross_nodes) {
  caf::scoped_actor self{sys_};
  caf::actor me = caf::actor_cast<caf::actor>(self);
  // Our side refuses to send them, with the reason.
  auto msg = caf::make_message(me, int32_t{1});
  auto sent = detail::encode_caf_message(sys_, msg);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error().code(), errc::not_serializable);
  EXPECT_NE(sent.error().context().find("@actor"), std::string::npos)
    << to_string(sent.error());
  // A peer that sends them anyway (CAF's serializer writes them) is
  // refused before CAF builds a handle out of its bytes.
  for (auto m : {caf::make_message(me), caf::make_message(me.address()),
                 caf::make_message(caf::make_message(int32_t{2}),
                                   caf::down_msg{me.address(),
                                                 caf::exit_reason::normal}),
                 caf::make_message(caf::config_value{int64_t{3}})}) {
    std::vector<std::byte> bytes;
    caf::serializer_impl<std::vector<std::byte>> sink{sys_, bytes};
    ASSERT_FALSE(sink(m)) << caf::to_string(m);
    auto got = detail::decode_caf_message(sys_, bytes);
    ASSERT_FALSE(got) << caf::to_string(m) << " was decoded";
    EXPECT_EQ(got.error().code(), errc::not_serializable);
    EXPECT_NE(got.error().context().find("cannot cross nodes"),
              std::string::npos)
      << to_string(got.error());
  }
  // Text that merely contains the marker is data like any other.
  auto text = caf::make_message(std::string{"a @<>+@actor b"});
  auto back = detail::decode_caf_message(sys_, encode(text));
  ASSERT_TRUE(back) << to_string(back.error());
  EXPECT_EQ(caf::to_string(*back), caf::to_string(text));
}

namespace {

TEST_F(caf_payload, infinities_cross_and_nan_is_refused) {
  // CAF 0.17's own packing loops forever on an infinity; found by
  // caf_payload_fuzz (a peer's bytes decoded to +inf, and encoding the
  // message again hung).
  constexpr auto inf = std::numeric_limits<double>::infinity();
  constexpr auto finf = std::numeric_limits<float>::infinity();
  auto b = encode(caf::make_message(inf, -inf, finf, -finf, 1.5));
  auto m = detail::decode_caf_message(sys_, b);
  ASSERT_TRUE(m) << to_string(m.error());
  ASSERT_TRUE((m->match_elements<double, double, float, float, double>()));
  EXPECT_EQ(m->get_as<double>(0), inf);
  EXPECT_EQ(m->get_as<double>(1), -inf);
  EXPECT_EQ(m->get_as<float>(2), finf);
  EXPECT_EQ(m->get_as<float>(3), -finf);
  EXPECT_EQ(m->get_as<double>(4), 1.5);
  // A decoded infinity encodes again to the same bytes.
  auto again = detail::encode_caf_message(sys_, *m);
  ASSERT_TRUE(again) << to_string(again.error());
  EXPECT_EQ(*again, b);
  auto with_nan = caf::make_message(std::numeric_limits<double>::quiet_NaN());
  auto nan = detail::encode_caf_message(sys_, with_nan);
  ASSERT_FALSE(nan);
  EXPECT_EQ(nan.error().code(), errc::not_serializable);
  EXPECT_NE(nan.error().context().find("NaN"), std::string::npos)
    << nan.error().context();
}

} // namespace
