// SPDX-License-Identifier: Apache-2.0
// Tests for mycorrizal/runtime/caf_error.hpp: errc as a CAF error category.
#include "mycorrizal/runtime/caf_error.hpp"

#include <caf/all.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

using mycorrizal::errc;

namespace mycorrizal {

// Lets GoogleTest print our errors in failure messages.
void PrintTo(const error& x, std::ostream* os) {
  *os << to_string(x);
}

} // namespace mycorrizal

namespace {

using ask_atom = caf::atom_constant<caf::atom("ask")>;

/// Answers every request with `node_down`.
caf::behavior failing_server(caf::event_based_actor*) {
  return {
    [](ask_atom) -> caf::result<int> {
      return caf::make_error(errc::node_down, "n2 died");
    },
  };
}

/// Never answers: drops the response promise.
caf::behavior silent_server(caf::event_based_actor* self) {
  return {
    [self](ask_atom) {
      return self->make_response_promise();
    },
  };
}

/// Forwards `ask` to `server` with an event-based request and answers with
/// the server's error, converted through mycorrizal::error and back.
caf::behavior forwarding_client(caf::event_based_actor* self,
                                caf::actor server) {
  return {
    [self, server](ask_atom) {
      auto rp = self->make_response_promise();
      self->request(server, 10s, ask_atom::value)
        .then(
          [rp](int x) mutable {
            rp.deliver(x);
          },
          [rp](caf::error& err) mutable {
            auto e = mycorrizal::from_caf_error(err);
            rp.deliver(mycorrizal::make_caf_error(
              {e.code(), "via client: " + e.context()}));
          });
      return rp;
    },
  };
}

/// Every errc value, found through errc_from_code.
std::vector<errc> all_errcs() {
  std::vector<errc> result;
  for (int i = 0; i < 256; ++i) {
    if (auto x = mycorrizal::errc_from_code(static_cast<uint8_t>(i))) {
      result.push_back(*x);
    }
  }
  return result;
}

} // namespace

// -- conversions --------------------------------------------------------------

TEST(actors_caf_error, errc_is_an_error_code_enum_of_category_mycorrizal) {
  static_assert(caf::detail::error_factory<errc>::specialized);
  static_assert(mycorrizal::errc_category == caf::atom("mycorrizal"));
  EXPECT_EQ(caf::to_string(mycorrizal::errc_category), "mycorrizal");
  caf::error err = caf::make_error(errc::node_down, "n2 died");
  EXPECT_EQ(err.category(), caf::atom("mycorrizal"));
  EXPECT_EQ(err.code(), 65);
  EXPECT_TRUE(err.context().match_elements<std::string>());
  caf::error assigned = errc::queue_full;
  EXPECT_EQ(assigned.code(), 71);
  EXPECT_TRUE(assigned.context().empty());
  EXPECT_TRUE(err == errc::node_down);
  EXPECT_FALSE(err == errc::connection_lost);
  EXPECT_FALSE(err == caf::sec::request_timeout);
}

TEST(actors_caf_error, every_errc_round_trips) {
  auto codes = all_errcs();
  ASSERT_EQ(codes.size(), 31u);
  for (auto code : codes) {
    if (code == errc::none) {
      continue;
    }
    mycorrizal::error with{code, "context of " + std::string{to_string(code)}};
    auto x = mycorrizal::make_caf_error(with);
    EXPECT_EQ(x.category(), mycorrizal::errc_category);
    EXPECT_EQ(x.code(), static_cast<uint8_t>(code));
    EXPECT_EQ(mycorrizal::from_caf_error(x), with) << to_string(code);
    mycorrizal::error without{code};
    auto y = mycorrizal::make_caf_error(without);
    EXPECT_TRUE(y.context().empty());
    EXPECT_EQ(mycorrizal::from_caf_error(y), without) << to_string(code);
  }
}

TEST(actors_caf_error, none_maps_to_caf_none) {
  EXPECT_FALSE(mycorrizal::make_caf_error(errc::none));
  EXPECT_EQ(mycorrizal::from_caf_error(caf::error{}), mycorrizal::error{});
  EXPECT_EQ(mycorrizal::from_caf_error(caf::none).code(), errc::none);
}

TEST(actors_caf_error, non_string_context_is_rendered) {
  auto x = caf::make_error(errc::too_large, 42, "x");
  EXPECT_EQ(mycorrizal::from_caf_error(x),
            (mycorrizal::error{errc::too_large, R"((42, "x"))"}));
}

TEST(actors_caf_error, unknown_codes_of_our_category) {
  caf::error x{uint8_t{200}, mycorrizal::errc_category};
  EXPECT_EQ(mycorrizal::from_caf_error(x),
            (mycorrizal::error{errc::remote_error,
                               "unknown mycorrizal error code 200"}));
  caf::error y{uint8_t{201}, mycorrizal::errc_category,
               caf::make_message(std::string{"newer peer"})};
  EXPECT_EQ(mycorrizal::from_caf_error(y),
            (mycorrizal::error{errc::remote_error,
                               "unknown mycorrizal error code 201: "
                               "newer peer"}));
  // CAF itself turns code 0 into `none`.
  caf::error zero{uint8_t{0}, mycorrizal::errc_category};
  EXPECT_FALSE(zero);
  EXPECT_EQ(mycorrizal::from_caf_error(zero).code(), errc::none);
}

TEST(actors_caf_error, other_categories) {
  EXPECT_EQ(mycorrizal::from_caf_error(caf::sec::request_timeout),
            mycorrizal::error{errc::timeout});
  EXPECT_EQ(
    mycorrizal::from_caf_error(caf::sec::unexpected_message),
    (mycorrizal::error{errc::no_handler, "system_error(unexpected_message)"}));
  // A remote handle that quit with its node before it took the request.
  EXPECT_EQ(mycorrizal::from_caf_error(caf::sec::request_receiver_down),
            (mycorrizal::error{errc::node_down, "the receiver had ended"}));
  EXPECT_EQ(mycorrizal::from_caf_error(caf::sec::invalid_argument).code(),
            errc::remote_error);
  EXPECT_EQ(mycorrizal::from_caf_error(caf::exit_reason::kill),
            (mycorrizal::error{errc::remote_error, "exit_reason(kill)"}));
  caf::error foreign{uint8_t{3}, caf::atom("other")};
  EXPECT_EQ(mycorrizal::from_caf_error(foreign).code(), errc::remote_error);
}

TEST(actors_caf_error, render_names_the_enumerator) {
  EXPECT_EQ(
    mycorrizal::render_caf_error(65, caf::make_message(std::string{"n2 died"})),
    R"(mycorrizal::node_down("n2 died"))");
  EXPECT_EQ(mycorrizal::render_caf_error(64, caf::message{}),
            "mycorrizal::timeout");
  EXPECT_EQ(mycorrizal::render_caf_error(200, caf::message{}),
            "mycorrizal::code_200");
}

// -- through a real actor system ----------------------------------------------

class actors_caf_error_system : public testing::Test {
protected:
  actors_caf_error_system() {
    cfg_.set("scheduler.max-threads", 2);
    mycorrizal::add_error_category(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    self_ = std::make_unique<caf::scoped_actor>(*sys_);
  }

  ~actors_caf_error_system() override {
    // An event-based actor with a pending request timeout stays alive until
    // the timeout fires, even after the response arrived, and
    // ~actor_system waits for it: end the actors explicitly.
    for (auto& x : spawned_) {
      (*self_)->send_exit(x, caf::exit_reason::user_shutdown);
    }
    self_.reset(); // the scoped_actor must go before the system
    sys_.reset();
  }

  template <class... Ts>
  caf::actor spawn(Ts&&... xs) {
    auto result = sys_->spawn(std::forward<Ts>(xs)...);
    spawned_.push_back(result);
    return result;
  }

  /// Requests `ask` from `dest` and returns the error it answers with, or
  /// `std::nullopt` if it answered with a value.
  std::optional<caf::error> ask(const caf::actor& dest,
                                caf::duration timeout = caf::duration{10s}) {
    std::optional<caf::error> result;
    (*self_)
      ->request(dest, timeout, ask_atom::value)
      .receive([](int) { /* unexpected success */ },
               [&result](caf::error& err) {
                 result = std::move(err);
               });
    return result;
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<caf::scoped_actor> self_;
  std::vector<caf::actor> spawned_;
};

TEST_F(actors_caf_error_system, handler_error_reaches_the_requester) {
  auto server = spawn(failing_server);
  auto err = ask(server);
  ASSERT_TRUE(err.has_value()) << "the server answered with a value";
  EXPECT_EQ(err->category(), caf::atom("mycorrizal"));
  EXPECT_EQ(mycorrizal::from_caf_error(*err),
            (mycorrizal::error{errc::node_down, "n2 died"}));
  EXPECT_EQ(sys_->render(*err), R"(mycorrizal::node_down("n2 died"))");
}

TEST_F(actors_caf_error_system, error_survives_an_event_based_hop) {
  auto server = spawn(failing_server);
  auto client = spawn(forwarding_client, server);
  auto err = ask(client);
  ASSERT_TRUE(err.has_value()) << "the client answered with a value";
  EXPECT_EQ(mycorrizal::from_caf_error(*err),
            (mycorrizal::error{errc::node_down, "via client: n2 died"}));
  EXPECT_EQ(sys_->render(*err),
            R"(mycorrizal::node_down("via client: n2 died"))");
}

TEST_F(actors_caf_error_system, request_timeout_maps_to_timeout) {
  auto server = spawn(silent_server);
  auto err = ask(server, caf::duration{50ms});
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(*err, caf::sec::request_timeout);
  EXPECT_EQ(mycorrizal::from_caf_error(*err).code(), errc::timeout);
}

TEST_F(actors_caf_error_system, other_categories_still_render) {
  EXPECT_EQ(sys_->render(caf::make_error(caf::sec::request_timeout)),
            "system_error(request_timeout)");
  EXPECT_EQ(sys_->render(caf::make_error(errc::shutting_down)),
            "mycorrizal::shutting_down");
}
