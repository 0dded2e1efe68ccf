// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/peering/dialer.hpp"

#include "mycorrizal/errc.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>
#include <utility>

namespace mycorrizal::peering {

std::string_view to_string(close_reason x) noexcept {
  switch (x) {
    case close_reason::self: return "connection to self";
    case close_reason::duplicate: return "duplicate connection";
    case close_reason::member_dead: return "member dead";
    case close_reason::member_left: return "member left";
    case close_reason::stale: return "stale connection";
  }
  return "?";
}

expected<void> dialer_config::validate() const {
  if (name.empty()) {
    return unexpected{error{errc::invalid_config, "peers.name: required"}};
  }
  if (backoff_min <= duration::zero() || backoff_max < backoff_min) {
    return unexpected{error{errc::invalid_config,
                            "peers.backoff_min/max: need 0 < min <= max"}};
  }
  if (dial_wait < duration::zero()) {
    return unexpected{
      error{errc::invalid_config, "peers.dial_wait: must not be negative"}};
  }
  return {};
}

dialer::dialer(dialer_config cfg) : cfg_(std::move(cfg)) {
  rng_.seed(static_cast<uint32_t>(cfg_.seed));
}

// -- inputs -------------------------------------------------------------------

void dialer::on_member(const member_update& m, time_point now) {
  if (m.name == cfg_.name) {
    if (m.change == member_change::left) {
      leaving_ = true;
    }
    return;
  }
  if (m.quic_port == 0) {
    return; // a membership-only member (e.g. a plain memberlist node)
  }
  auto i = peers_.try_emplace(m.name).first;
  auto& p = i->second;
  if (m.change == member_change::dead || m.change == member_change::left) {
    bool dead = m.change == member_change::dead;
    bool was_alive = p.alive;
    p.alive = false;
    p.unreachable = false; // gone, not unreachable
    p.redial_at.reset();
    stop_waiting(p);
    if (p.connection != no_connection) {
      auto id = std::exchange(p.connection, no_connection);
      commands_.emplace_back(close_connection{
        id, m.name,
        dead ? close_reason::member_dead : close_reason::member_left});
      ++stats_.downs;
    } else if (!was_alive) {
      return; // nothing changed for the subscribers
    }
    // Also without a connection: whoever waits for one to this member
    // (remote handles, queued messages) must learn that it will not come.
    commands_.emplace_back(publish_down{
      m.name, error{errc::node_down, m.name + (dead ? " is dead" : " left")}});
    return;
  }
  p.incarnation = m.incarnation;
  auto quic = m.address;
  quic.port(m.quic_port);
  if (p.stopped_at && m.incarnation <= *p.stopped_at) {
    return; // news from before it stopped
  }
  p.stopped_at.reset();
  p.alive = true;
  p.gossip = m.address;
  if (p.connection != no_connection && p.quic != quic
      && p.connection_remote != quic) {
    // It came back elsewhere (a restart): the old connection is stale.
    log(log_level::info,
        fmt::format("{} moved from {} to {}: reconnecting", m.name,
                    p.quic.to_string(), quic.to_string()));
    auto id = std::exchange(p.connection, no_connection);
    commands_.emplace_back(close_connection{id, m.name, close_reason::stale});
    ++stats_.downs;
    commands_.emplace_back(publish_down{
      m.name, error{errc::connection_lost, "replaced after a restart"}});
  }
  p.quic = quic;
  maybe_dial(i, now);
}

void dialer::on_dial_succeeded(std::string_view peer, time_point) {
  // on_connection_up adopts the connection.
  entry(peer).dialing = false;
}

void dialer::on_dial_failed(std::string_view peer, time_point now) {
  auto i = peers_.try_emplace(std::string{peer}).first;
  auto& p = i->second;
  p.dialing = false;
  ++p.failures;
  ++stats_.dial_failures;
  schedule_redial(i, now);
}

void dialer::on_connection_up(const connection_up& up, time_point) {
  if (up.peer == cfg_.name) {
    ++stats_.refused;
    commands_.emplace_back(
      close_connection{up.id, up.peer, close_reason::self});
    return;
  }
  auto& p = entry(up.peer);
  if (p.connection != no_connection) {
    // Both dialed: keep the connection the smaller name dialed.
    bool keep_new = up.incoming != dials_first(cfg_.name, up.peer);
    ++stats_.duplicates_closed;
    if (!keep_new) {
      commands_.emplace_back(
        close_connection{up.id, up.peer, close_reason::duplicate});
      return;
    }
    auto old = std::exchange(p.connection, no_connection);
    commands_.emplace_back(
      close_connection{old, up.peer, close_reason::duplicate});
  }
  p.connection = up.id;
  stop_waiting(p);
  p.incoming = up.incoming;
  p.connection_remote = up.remote;
  p.failures = 0;
  if (p.unreachable) {
    log(log_level::info, fmt::format("{} reachable again", up.peer));
    p.unreachable = false;
  }
  p.redial_at.reset();
  ++stats_.ups;
  if (!p.alive && p.quic == ip_endpoint{}) {
    // Not in our membership view yet: it will be soon; its address is where
    // the connection comes from.
    p.quic = up.remote;
  }
  commands_.emplace_back(
    publish_up{up.peer, up.id, p.gossip, p.quic, up.incoming});
}

void dialer::on_connection_down(connection_id id, const error& reason,
                                bool unreachable, time_point now) {
  if (id == no_connection) {
    return;
  }
  auto i = std::find_if(peers_.begin(), peers_.end(), [id](const auto& kv) {
    return kv.second.connection == id;
  });
  if (i == peers_.end()) {
    return;
  }
  const auto& name = i->first;
  auto& p = i->second;
  p.connection = no_connection;
  ++stats_.downs;
  if (reason == errc::node_down) {
    // It closed because it stops: gone, as if its leave had arrived (which
    // may still come, or not if it was lost). Its restart announces itself
    // as alive again, with a higher incarnation.
    p.alive = false;
    p.unreachable = false;
    p.stopped_at = p.incarnation;
    p.redial_at.reset();
    stop_waiting(p);
    commands_.emplace_back(publish_down{
      name, error{errc::node_down, name + " left: " + reason.context()}});
    return;
  }
  if (unreachable && p.alive) {
    // Membership says alive, the connection says otherwise: reachability is
    // reported on its own, once per connection.
    ++stats_.unreachable;
    p.unreachable = true;
    log(log_level::warn,
        fmt::format("{} unreachable: {}", name, reason.context()));
    commands_.emplace_back(publish_unreachable{name, reason});
  }
  commands_.emplace_back(
    publish_down{name, error{errc::connection_lost,
                             "connection lost: " + to_string(reason)}});
  if (p.alive) {
    // The dialer redials; the other side waits for that again. A peer that
    // closed because it saw *us* leave is not redialed at once: our own
    // leave is on its way to us too (the membership's event and the
    // peer's close race), and the backup redial finds `leaving_` set by
    // then. Had the peer seen stale news, the backup redial reconnects.
    schedule_redial(i, now);
    auto we_left = to_string(close_reason::member_left);
    if (reason.context().find(we_left) == std::string::npos) {
      maybe_dial(i, now);
    }
  }
}

void dialer::on_timeout(time_point now) {
  // Due timers, earliest first (a redial and a wait never run at once for
  // one peer: a redial needs the side that dials, a wait the other).
  enum class kind { redial, wait };
  std::vector<std::tuple<time_point, kind, std::string>> due;
  for (const auto& [name, p] : peers_) {
    if (p.redial_at && *p.redial_at <= now) {
      due.emplace_back(*p.redial_at, kind::redial, name);
    }
    if (p.wait_until && *p.wait_until <= now) {
      due.emplace_back(*p.wait_until, kind::wait, name);
    }
  }
  std::sort(due.begin(), due.end());
  for (const auto& [when, what, name] : due) {
    auto i = peers_.find(name);
    auto& p = i->second;
    if (what == kind::redial) {
      if (p.redial_at != when) {
        continue; // rescheduled or cancelled meanwhile
      }
      p.redial_at.reset();
      maybe_dial(i, now);
    } else {
      if (p.wait_until != when) {
        continue;
      }
      wait_over(i, now);
    }
  }
}

time_point dialer::next_deadline() const noexcept {
  auto next = never;
  for (const auto& [name, p] : peers_) {
    if (p.redial_at) {
      next = std::min(next, *p.redial_at);
    }
    if (p.wait_until) {
      next = std::min(next, *p.wait_until);
    }
  }
  return next;
}

// -- state --------------------------------------------------------------------

const peer* dialer::find(std::string_view name) const {
  auto i = peers_.find(name);
  return i != peers_.end() ? &i->second : nullptr;
}

const std::string* dialer::holder(connection_id id) const {
  if (id == no_connection) {
    return nullptr;
  }
  for (const auto& [name, p] : peers_) {
    if (p.connection == id) {
      return &name;
    }
  }
  return nullptr;
}

// -- policy -------------------------------------------------------------------

peer& dialer::entry(std::string_view name) {
  return peers_.try_emplace(std::string{name}).first->second;
}

bool dialer::should_dial(const std::string& name, const peer& p) const {
  // The pair's dialer, or the other side once it waited `dial_wait` in vain
  // (its gossip may not know us yet; a duplicate is resolved on arrival).
  return dials_first(cfg_.name, name) || p.fallback;
}

void dialer::stop_waiting(peer& p) {
  p.fallback = false;
  p.wait_until.reset();
}

void dialer::maybe_dial(peer_iter i, time_point now) {
  const auto& name = i->first;
  auto& p = i->second;
  if (leaving_ || !p.alive || p.connection != no_connection || p.dialing) {
    return;
  }
  if (!should_dial(name, p)) {
    if (!p.wait_until) {
      auto wait = std::chrono::duration_cast<duration>(
        std::chrono::duration<double, std::nano>(
          static_cast<double>(cfg_.dial_wait.count()) * jitter(1.0, 1.5)));
      p.wait_until = now + wait;
    }
    return;
  }
  p.dialing = true;
  ++stats_.dials;
  commands_.emplace_back(dial{name, p.quic});
}

void dialer::schedule_redial(peer_iter i, time_point now) {
  const auto& name = i->first;
  auto& p = i->second;
  if (!p.alive || !should_dial(name, p) || p.connection != no_connection
      || p.dialing) {
    return;
  }
  auto base
    = std::min(cfg_.backoff_max,
               cfg_.backoff_min * (int64_t{1} << std::min(p.failures, 20)));
  // ±25 % jitter, so that a cluster does not redial in lock step.
  auto wait = std::chrono::duration_cast<duration>(
    std::chrono::duration<double, std::nano>(static_cast<double>(base.count())
                                             * jitter(0.75, 1.25)));
  p.redial_at = now + wait;
}

void dialer::wait_over(peer_iter i, time_point now) {
  const auto& name = i->first;
  auto& p = i->second;
  p.wait_until.reset();
  if (p.alive && p.connection == no_connection) {
    log(log_level::info,
        fmt::format(
          "{} did not dial us within {} ms: dialing it", name,
          std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.dial_wait)
            .count()));
    p.fallback = true;
    maybe_dial(i, now);
  }
}

double dialer::jitter(double lo, double hi) {
  double u = cfg_.random ? cfg_.random()
                         : std::uniform_real_distribution<double>{}(rng_);
  return u * (hi - lo) + lo;
}

void dialer::log(log_level level, std::string_view text) const {
  if (cfg_.log) {
    cfg_.log(level, text);
  }
}

} // namespace mycorrizal::peering
