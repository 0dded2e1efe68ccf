// SPDX-License-Identifier: Apache-2.0
#include "support/gossip_sim.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <unordered_map>

namespace mycorrizal::test {

using gossip::join_completed;
using gossip::leave_completed;
using gossip::member;
using gossip::member_event;
using gossip::membership;
using gossip::node_state;

struct gossip_sim::node {
  std::unique_ptr<membership> core;
  ip_endpoint address;
  bool crashed = false;
  bool leave_pending = false;
  duration processing_delay = duration::zero();
  /// Stopped (SIGSTOP) until then: nothing runs, input waits.
  time_point paused_until{};
  /// The core deadline a queued timer event serves (never = none).
  time_point armed = never;
  uint64_t timer_gen = 0;
  std::optional<join_completed> last_join;
  /// What the node was started with (for `restart`).
  gossip::membership_config cfg;
};

struct gossip_sim::event {
  enum class kind : uint8_t { timer, datagram, stream_request, stream_reply };
  time_point at;
  uint64_t seq = 0;
  kind what = kind::timer;
  size_t to = 0;
  size_t from = 0;
  /// Set once a delayed node's input was moved to its processing time.
  bool delayed = false;
  gossip::byte_buffer bytes;
  uint64_t stream_id = 0;
  bool refused = false;
  uint64_t gen = 0;
};

bool gossip_sim::event_order::operator()(const event& a, const event& b) const {
  if (a.at != b.at) {
    return a.at > b.at;
  }
  return a.seq > b.seq;
}

gossip_sim::gossip_sim(options opts) : opts_(opts), rng_(opts.seed) {
  // nop
}

gossip_sim::~gossip_sim() = default;

size_t gossip_sim::add_node(gossip::membership_config cfg) {
  auto i = nodes_.size();
  auto n = std::make_unique<node>();
  n->address = ip_endpoint::v4(10, static_cast<uint8_t>(i >> 16),
                               static_cast<uint8_t>((i >> 8) & 0xff),
                               static_cast<uint8_t>(i & 0xff), 7946);
  cfg.name = name(i);
  cfg.advertise = n->address;
  cfg.seed = rng_();
  n->cfg = cfg;
  auto core = membership::make(std::move(cfg), now_);
  assert(core);
  n->core = std::move(*core);
  nodes_.push_back(std::move(n));
  partition_.emplace_back();
  drain(i);
  return i;
}

std::string gossip_sim::name(size_t i) const {
  return fmt::format("node-{}", i);
}

gossip::membership& gossip_sim::core(size_t i) {
  return *nodes_[i]->core;
}

bool gossip_sim::crashed(size_t i) const {
  return nodes_[i]->crashed;
}

void gossip_sim::join(size_t i, const std::vector<size_t>& seeds) {
  std::vector<ip_endpoint> eps;
  for (auto s : seeds) {
    eps.push_back(nodes_[s]->address);
  }
  nodes_[i]->core->join(eps, now_);
  drain(i);
}

void gossip_sim::add_nodes(size_t n, const gossip::membership_config& cfg,
                           uint64_t join_seed, duration spacing) {
  std::mt19937 rng{static_cast<std::mt19937::result_type>(join_seed)};
  for (size_t i = 0; i < n; ++i) {
    auto idx = add_node(cfg);
    if (idx > 0) {
      std::uniform_int_distribution<size_t> pick{0, idx - 1};
      join(idx, {pick(rng)});
    }
    run_for(spacing);
  }
}

void gossip_sim::crash(size_t i) {
  nodes_[i]->crashed = true;
}

void gossip_sim::restart(size_t i) {
  auto& n = *nodes_[i];
  n.cfg.seed = rng_();
  auto core = membership::make(n.cfg, now_);
  assert(core);
  n.core = std::move(*core);
  n.crashed = false;
  n.leave_pending = false;
  n.last_join.reset();
  // Timer events queued for the old core are stale.
  n.armed = never;
  ++n.timer_gen;
  drain(i);
}

void gossip_sim::leave(size_t i, duration t) {
  nodes_[i]->leave_pending = true;
  nodes_[i]->core->leave(t, now_);
  drain(i);
}

void gossip_sim::partition(const std::vector<size_t>& a,
                           const std::vector<size_t>& b) {
  for (auto x : a) {
    for (auto y : b) {
      partition_[x].insert(y);
      partition_[y].insert(x);
    }
  }
}

void gossip_sim::heal() {
  for (auto& p : partition_) {
    p.clear();
  }
}

bool gossip_sim::every_live_pair(
  const std::function<bool(const member*)>& ok) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i]->crashed) {
      continue;
    }
    for (size_t j = 0; j < nodes_.size(); ++j) {
      if (i != j && !nodes_[j]->crashed
          && !ok(nodes_[i]->core->find(name(j)))) {
        return false;
      }
    }
  }
  return true;
}

bool gossip_sim::all_alive() const {
  return every_live_pair([](const member* m) {
    return m != nullptr && m->state == node_state::alive;
  });
}

std::string gossip_sim::describe_all() const {
  std::string out;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    out += describe(i);
    out += '\n';
  }
  return out;
}

void gossip_sim::pause(size_t i, duration d) {
  nodes_[i]->paused_until = now_ + d;
}

void gossip_sim::set_processing_delay(size_t i, duration d) {
  nodes_[i]->processing_delay = d;
}

bool gossip_sim::blocked(size_t a, size_t b) const {
  return partition_[a].count(b) != 0;
}

duration gossip_sim::delay() {
  auto d = opts_.latency;
  if (opts_.jitter > duration::zero()) {
    std::uniform_int_distribution<int64_t> j{0, opts_.jitter.count()};
    d += duration{j(rng_)};
  }
  return d;
}

size_t gossip_sim::index_of(const ip_endpoint& ep) const {
  // Addresses are 10.a.b.c with the index in a.b.c.
  const auto& b = ep.bytes();
  auto i = std::to_integer<size_t>(b[13]) << 16
           | std::to_integer<size_t>(b[14]) << 8
           | std::to_integer<size_t>(b[15]);
  if (!ep.is_v4() || std::to_integer<int>(b[12]) != 10 || i >= nodes_.size()
      || nodes_[i]->address != ep) {
    return nodes_.size();
  }
  return i;
}

void gossip_sim::push(event e) {
  e.seq = seq_++;
  queue_.push(std::move(e));
}

void gossip_sim::rearm(size_t i) {
  auto& n = *nodes_[i];
  auto next = n.core->next_deadline();
  if (next == never || next >= n.armed) {
    return;
  }
  // `armed` is the core deadline the queued event serves (a starved node's
  // event may run later than that).
  n.armed = next;
  event e;
  e.at = std::max(next, now_);
  e.what = event::kind::timer;
  e.to = i;
  e.gen = ++n.timer_gen;
  push(std::move(e));
}

void gossip_sim::drain(size_t i) {
  auto& n = *nodes_[i];
  auto& core = *n.core;
  for (auto& d : core.outbox()) {
    ++datagrams_sent_;
    bytes_sent_ += d.bytes.size();
    auto to = index_of(d.to);
    if (to == nodes_.size() || blocked(i, to)) {
      ++datagrams_lost_;
      continue;
    }
    if (opts_.loss > 0.0) {
      std::uniform_real_distribution<double> u{0.0, 1.0};
      if (u(rng_) < opts_.loss) {
        ++datagrams_lost_;
        continue;
      }
    }
    event e;
    e.at = now_ + delay();
    e.what = event::kind::datagram;
    e.to = to;
    e.from = i;
    e.bytes = std::move(d.bytes);
    push(std::move(e));
  }
  core.outbox().clear();
  for (auto& r : core.stream_requests()) {
    auto to = index_of(r.to);
    event e;
    e.at = now_ + delay();
    e.from = i;
    e.stream_id = r.id;
    if (to == nodes_.size() || nodes_[to]->crashed) {
      // Connection refused comes back after one round trip.
      e.what = event::kind::stream_reply;
      e.to = i;
      e.refused = true;
      e.at += delay();
      push(std::move(e));
      continue;
    }
    if (blocked(i, to)) {
      // SYNs are lost: the core's deadline ends the exchange.
      continue;
    }
    e.what = event::kind::stream_request;
    e.to = to;
    stream_bytes_ += r.bytes.size();
    e.bytes = std::move(r.bytes);
    push(std::move(e));
  }
  core.stream_requests().clear();
  for (auto& ev : core.events()) {
    if (auto* m = std::get_if<member_event>(&ev)) {
      events_.push_back(observed{now_, i, std::move(*m)});
    } else if (auto* j = std::get_if<join_completed>(&ev)) {
      n.last_join = std::move(*j);
    } else if (std::holds_alternative<leave_completed>(ev)) {
      if (n.leave_pending) {
        n.crashed = true;
      }
    }
  }
  core.events().clear();
  rearm(i);
}

void gossip_sim::process(event& e) {
  auto& target = *nodes_[e.to];
  if (target.crashed) {
    return;
  }
  if (now_ < target.paused_until) {
    // A stopped process: at SIGCONT its overdue timers run first, then it
    // reads what queued up in its sockets meanwhile (the worst order).
    if (e.what == event::kind::timer) {
      e.at = target.paused_until;
    } else {
      e.at = target.paused_until + std::chrono::microseconds{1};
    }
    push(std::move(e));
    return;
  }
  if (e.what == event::kind::timer) {
    if (e.gen != target.timer_gen) {
      return;
    }
    target.armed = never;
    if (target.core->next_deadline() > now_) {
      rearm(e.to);
      return;
    }
    target.core->on_timeout(now_);
    drain(e.to);
    return;
  }
  if (target.processing_delay > duration::zero() && !e.delayed) {
    // A starved node reads its socket late; its clock and timers run on.
    e.delayed = true;
    e.at = now_ + target.processing_delay;
    push(std::move(e));
    return;
  }
  switch (e.what) {
    case event::kind::datagram:
      target.core->handle_datagram(nodes_[e.from]->address, e.bytes, now_);
      break;
    case event::kind::stream_request: {
      if (blocked(e.from, e.to)) {
        break;
      }
      auto step = target.core->handle_stream(nodes_[e.from]->address, e.bytes,
                                             now_);
      event reply;
      reply.at = now_ + delay();
      reply.what = event::kind::stream_reply;
      reply.to = e.from;
      reply.from = e.to;
      reply.stream_id = e.stream_id;
      stream_bytes_ += step.reply.size();
      reply.bytes = std::move(step.reply);
      push(std::move(reply));
      break;
    }
    case event::kind::stream_reply:
      if (e.refused) {
        target.core->stream_failed(
          e.stream_id, error{errc::connection_lost, "connection refused"},
          now_);
      } else if (!target.core->handle_stream_reply(e.stream_id, e.bytes,
                                                   now_)) {
        target.core->stream_failed(
          e.stream_id, error{errc::connection_lost, "closed before reply"},
          now_);
      }
      break;
    default: break;
  }
  drain(e.to);
}

void gossip_sim::run_for(duration d) {
  run_until(
    [] {
      return false;
    },
    d);
}

bool gossip_sim::run_until(const std::function<bool()>& done, duration limit,
                           duration check_every) {
  auto end = now_ + limit;
  if (done()) {
    return true;
  }
  auto next_check = now_ + check_every;
  while (!queue_.empty() && queue_.top().at <= end) {
    auto e = queue_.top();
    queue_.pop();
    now_ = std::max(now_, e.at);
    process(e);
    if (now_ >= next_check) {
      if (done()) {
        return true;
      }
      next_check = now_ + check_every;
    }
  }
  now_ = end;
  return done();
}

size_t gossip_sim::alive_view(size_t i) const {
  size_t n = 0;
  for (const auto& m : nodes_[i]->core->members()) {
    if (m.name != name(i)
        && (m.state == node_state::alive || m.state == node_state::suspect)) {
      ++n;
    }
  }
  return n;
}

bool gossip_sim::converged() const {
  size_t live = 0;
  for (const auto& n : nodes_) {
    live += n->crashed ? 0 : 1;
  }
  // Cheap test first: everyone sees as many others up as there are.
  for (const auto& n : nodes_) {
    if (!n->crashed && n->core->num_alive() < live - 1) {
      return false;
    }
  }
  return live > 0 && every_live_pair([](const member* m) {
           return m != nullptr
                  && (m->state == node_state::alive
                      || m->state == node_state::suspect);
         });
}

const join_completed* gossip_sim::join_result(size_t i) const {
  const auto& j = nodes_[i]->last_join;
  return j ? &*j : nullptr;
}

std::string gossip_sim::describe(size_t i) const {
  std::string out = fmt::format("{} (health {}):", name(i),
                                nodes_[i]->core->health_score());
  for (const auto& m : nodes_[i]->core->members()) {
    std::string_view st = "?";
    switch (m.state) {
      case node_state::alive: st = "alive"; break;
      case node_state::suspect: st = "suspect"; break;
      case node_state::dead: st = "dead"; break;
      case node_state::left: st = "left"; break;
    }
    out += fmt::format(" {}={}@{}", m.name, st, m.incarnation);
  }
  return out;
}

} // namespace mycorrizal::test
