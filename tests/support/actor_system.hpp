// SPDX-License-Identifier: Apache-2.0
// The actor system of a test: CAF's work-stealing scheduler, or CAF's test
// coordinator, which runs actors one message at a time in virtual time.
#pragma once

#include "mycorrizal/errc.hpp"
#include "mycorrizal/expected.hpp"
#include "mycorrizal/runtime/caf_error.hpp"

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

namespace mycorrizal::test {

enum class clock_mode {
  /// The default scheduler and the steady clock.
  real,
  /// `caf::scheduler::test_coordinator`: nothing runs until the test says
  /// so (`run`), and time moves only when the test moves it (`advance`).
  virtual_time,
};

/// Owns a configured `caf::actor_system` and a scoped actor to talk to it.
/// Spawned actors handed to `keep` get an exit message at the end.
class actor_system {
public:
  explicit actor_system(clock_mode mode = clock_mode::real, int threads = 2)
      : mode_(mode) {
    if (mode == clock_mode::virtual_time) {
      cfg_.set("scheduler.policy", caf::atom("testing"));
    } else {
      cfg_.set("scheduler.max-threads", threads);
    }
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    add_error_category(cfg_);
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    self_ = std::make_unique<caf::scoped_actor>(*sys_);
  }

  ~actor_system() {
    for (auto& a : kept_) {
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    }
    if (mode_ == clock_mode::virtual_time) {
      sched().run();
    }
    self_.reset();
  }

  actor_system(const actor_system&) = delete;
  actor_system& operator=(const actor_system&) = delete;

  caf::actor_system& sys() noexcept {
    return *sys_;
  }

  caf::scoped_actor& self() noexcept {
    return *self_;
  }

  /// Stops `a` (any actor handle, typed or not) when the test ends.
  template <class Handle>
  Handle keep(Handle a) {
    kept_.push_back(caf::actor_cast<caf::actor>(a));
    return a;
  }

  // -- virtual time -----------------------------------------------------------

  caf::scheduler::test_coordinator& sched() {
    if (mode_ != clock_mode::virtual_time) {
      throw std::logic_error("sched(): the system runs in real time");
    }
    return dynamic_cast<caf::scheduler::test_coordinator&>(sys_->scheduler());
  }

  /// Runs every actor until no message is left (timers do not fire).
  size_t run() {
    size_t n = 0;
    while (sched().try_run_once()) {
      ++n;
    }
    return n;
  }

  /// Asks `dest` (any handle) from a helper actor, runs until nothing is
  /// left (virtual time) and returns the answer of type `T`; the request's
  /// error, or `errc::timeout` "no answer" when none came.
  template <class T, class Handle, class... Ts>
  expected<T> ask(const Handle& dest, Ts... xs) {
    auto out = std::make_shared<std::optional<expected<T>>>();
    keep(sys_->spawn([=](caf::event_based_actor* self) {
      self->request(dest, caf::infinite, xs...)
        .then(
          [=](T& v) {
            out->emplace(std::move(v));
          },
          [=](caf::error& e) {
            out->emplace(unexpected{from_caf_error(e)});
          });
      return caf::behavior{[](const caf::unit_t&) {}};
    }));
    run();
    if (!out->has_value()) {
      return unexpected{error{errc::timeout, "no answer"}};
    }
    return std::move(**out);
  }

  /// Moves the clock by `d`, fires the timers due by then and runs.
  size_t advance(caf::timespan d) {
    auto fired = sched().advance_time(d);
    run();
    return fired;
  }

private:
  clock_mode mode_;
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::unique_ptr<caf::scoped_actor> self_;
  std::vector<caf::actor> kept_;
};

} // namespace mycorrizal::test
