// SPDX-License-Identifier: Apache-2.0
// CAF messages as frame payloads: round trips, and bytes from a peer that
// are not one message (truncated, trailing bytes, garbage, unknown types)
// refused with not_serializable instead of becoming an empty message.
#include "mycorrizal/internal/caf_payload.hpp"

#include "mycorrizal/errc.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

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
