// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/membership.hpp"

#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/packet.hpp"
#include "mycorrizal/gossip/stream.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>

namespace mycorrizal::gossip {

// memberlist's compound framing costs: type + count, then 2 bytes per part.
namespace {

constexpr size_t compound_header_overhead = 2;
constexpr size_t compound_part_overhead = 2;
// Debian's memberlist mis-parses compounds of 128 parts and more.
constexpr size_t max_compound_parts = 127;
// Broadcasts kept at most (memberlist's HandoffQueueDepth-sized bound on
// what one node may owe the cluster).
constexpr size_t max_queued_broadcasts = 4096;

std::optional<byte_buffer> meta_field(const byte_buffer& meta) {
  if (meta.empty()) {
    return std::nullopt;
  }
  return meta;
}

std::array<uint8_t, 6> vsn_array(const std::vector<uint8_t>& vsn) {
  std::array<uint8_t, 6> out{};
  if (vsn.size() >= out.size()) {
    std::copy_n(vsn.begin(), out.size(), out.begin());
  }
  return out;
}

std::string_view state_name(node_state x) {
  switch (x) {
    case node_state::alive: return "alive";
    case node_state::suspect: return "suspect";
    case node_state::dead: return "dead";
    case node_state::left: return "left";
  }
  return "unknown";
}

} // namespace

std::string_view to_string(member_event_kind x) noexcept {
  switch (x) {
    case member_event_kind::joined: return "joined";
    case member_event_kind::updated: return "updated";
    case member_event_kind::suspect: return "suspect";
    case member_event_kind::alive_again: return "alive_again";
    case member_event_kind::dead: return "dead";
    case member_event_kind::left: return "left";
  }
  return "unknown";
}

// -- private types ------------------------------------------------------------

/// How long a late verdict timer waits for input (see `membership::fire`).
constexpr duration late_timer_grace = std::chrono::milliseconds{50};

/// Lifeguard's suspicion of one member (memberlist-wire.md §9.7).
struct membership::suspicion {
  int k = 0;
  duration min{};
  duration max{};
  time_point start{};
  int confirmations = 0;
  /// Nodes whose suspect messages counted (the creator included).
  std::vector<std::string> confirmed;
  uint64_t generation = 0;
};

struct membership::node_entry {
  member m;
  std::unique_ptr<suspicion> suspect_timer;

  bool dead_or_left() const noexcept {
    return m.state == node_state::dead || m.state == node_state::left;
  }

  uint8_t pmax() const noexcept {
    return m.vsn[1];
  }
};

struct membership::probe_state {
  std::string target;
  /// The target's incarnation when the probe began (what we suspect).
  uint32_t incarnation = 0;
  uint32_t seq = 0;
  time_point start{};
  time_point deadline{};
  int expected_nacks = 0;
  int nacks = 0;
  bool tcp_ok = false;
};

// -- construction -------------------------------------------------------------

expected<std::unique_ptr<membership>> membership::make(membership_config cfg,
                                                       time_point now) {
  if (auto ok = cfg.validate(); !ok) {
    return unexpected{ok.error()};
  }
  return std::unique_ptr<membership>{new membership(std::move(cfg), now)};
}

membership::membership(membership_config cfg, time_point now)
    : cfg_(std::move(cfg)), rng_(cfg_.seed),
      awareness_(cfg_.awareness_max_multiplier) {
  // Each loop starts after a random delay shorter than its interval, so
  // that nodes started together do not probe and gossip in lockstep.
  auto stagger = [this](duration interval) {
    std::uniform_int_distribution<int64_t> dist{0, interval.count() - 1};
    return duration{dist(rng_)};
  };
  next_probe_tick_ = now + stagger(cfg_.probe_interval);
  if (cfg_.gossip_nodes > 0) {
    next_gossip_tick_ = now + stagger(cfg_.gossip_interval);
  }
  // Our own alive message is the first thing to gossip.
  alive_node(self_alive(next_incarnation(1)), true, now);
  arm(next_probe_tick_, timer{timer::kind::probe});
  if (cfg_.push_pull_interval > duration::zero()) {
    arm(now + stagger(cfg_.push_pull_interval), timer{timer::kind::push_pull});
  }
  if (cfg_.reconnect_interval > duration::zero()) {
    arm(now + stagger(cfg_.reconnect_interval), timer{timer::kind::reconnect});
  }
}

membership::~membership() = default;

// -- node table ---------------------------------------------------------------

membership::node_entry* membership::lookup(std::string_view name) const {
  auto i = by_name_.find(name);
  return i == by_name_.end() ? nullptr : i->second;
}

size_t membership::num_alive() const noexcept {
  assert(up_
         == static_cast<size_t>(
           std::count_if(nodes_.begin(), nodes_.end(), [](const auto& e) {
             return !e->dead_or_left();
           })));
  // We are in the table too, up unless we left.
  return leaving_ ? up_ : up_ - 1;
}

membership::node_entry& membership::self_entry() const {
  auto* e = lookup(cfg_.name);
  assert(e != nullptr);
  return *e;
}

const member& membership::self() const noexcept {
  return self_entry().m;
}

const member* membership::find(std::string_view name) const {
  auto* e = lookup(name);
  return e == nullptr ? nullptr : &e->m;
}

std::vector<member> membership::members() const {
  std::vector<member> out;
  out.reserve(nodes_.size());
  for (const auto& e : nodes_) {
    out.push_back(e->m);
  }
  return out;
}

std::vector<member> membership::failed_members() const {
  std::vector<member> out;
  for (const auto& [name, m] : remembered_) {
    if (m.state == node_state::dead) {
      out.push_back(m);
    }
  }
  return out;
}

void membership::remember(const member& m, time_point now) {
  if (m.name == cfg_.name) {
    return;
  }
  if (m.state == node_state::dead || m.state == node_state::left) {
    auto& r = remembered_[m.name];
    r = m;
    r.state_change = now;
  } else if (auto i = remembered_.find(m.name); i != remembered_.end()) {
    remembered_.erase(i);
  }
}

std::array<uint8_t, 6> membership::own_vsn() const noexcept {
  return {
    protocol_version_min, protocol_version_max, cfg_.protocol_version, 0, 0, 0};
}

alive membership::self_alive(uint32_t incarnation) const {
  alive a;
  a.incarnation = incarnation;
  a.node = cfg_.name;
  auto wire = cfg_.advertise.wire_bytes();
  a.addr.assign(wire.begin(), wire.end());
  a.port = cfg_.advertise.port();
  a.meta = meta_field(cfg_.meta);
  auto v = own_vsn();
  a.vsn.assign(v.begin(), v.end());
  return a;
}

ping membership::make_ping(uint32_t seq, const std::string& node) const {
  ping msg;
  msg.seq_no = seq;
  msg.node = node;
  auto wire = cfg_.advertise.wire_bytes();
  msg.source_addr.assign(wire.begin(), wire.end());
  msg.source_port = cfg_.advertise.port();
  msg.source_node = cfg_.name;
  return msg;
}

namespace {

// packet_options and stream_options share these fields.
template <class Options>
Options receive_options(const membership_config& cfg) {
  Options opts;
  if (!cfg.keys.empty()) {
    opts.keys = &cfg.keys;
    opts.verify_incoming = cfg.gossip_verify_incoming;
  }
  opts.label = cfg.label;
  opts.skip_inbound_label_check = cfg.skip_inbound_label_check;
  return opts;
}

} // namespace

packet_options membership::packet_opts() const {
  return receive_options<packet_options>(cfg_);
}

stream_options membership::stream_opts() const {
  return receive_options<stream_options>(cfg_);
}

uint32_t membership::next_incarnation(uint32_t at_least) {
  incarnation_ = std::max(incarnation_ + 1, at_least);
  return incarnation_;
}

void membership::emit(member_event_kind kind, const node_entry& e) {
  if (e.m.name != cfg_.name) {
    if (kind == member_event_kind::left) {
      peak_ = peak_ > 0 ? peak_ - 1 : 0;
    }
    peak_ = std::max(peak_, num_alive());
  }
  events_.emplace_back(member_event{kind, e.m});
}

bool membership::any_alive() const {
  return std::any_of(nodes_.begin(), nodes_.end(), [this](const auto& e) {
    return e->m.name != cfg_.name && !e->dead_or_left();
  });
}

std::vector<membership::node_entry*>
membership::k_random_nodes(size_t k, auto&& exclude) {
  std::vector<node_entry*> out;
  if (k == 0 || nodes_.empty()) {
    return out;
  }
  auto n = nodes_.size();
  auto taken = [&out](node_entry* e) {
    return std::find(out.begin(), out.end(), e) != out.end();
  };
  // Random draws first (cheap when many qualify), then an exhaustive scan
  // in random order, so a lone eligible node is always found (Debian's
  // memberlist can miss it, memberlist-wire.md §12).
  std::uniform_int_distribution<size_t> dist{0, n - 1};
  for (size_t tries = 0; tries < 4 * k && out.size() < k; ++tries) {
    auto* e = nodes_[dist(rng_)].get();
    if (!exclude(*e) && !taken(e)) {
      out.push_back(e);
    }
  }
  if (out.size() < k) {
    std::vector<size_t> order(n);
    for (size_t i = 0; i < n; ++i) {
      order[i] = i;
    }
    for (size_t i = 0; i < n && out.size() < k; ++i) {
      std::uniform_int_distribution<size_t> pick{i, n - 1};
      std::swap(order[i], order[pick(rng_)]);
      auto* e = nodes_[order[i]].get();
      if (!exclude(*e) && !taken(e)) {
        out.push_back(e);
      }
    }
  }
  return out;
}

void membership::alive_node(const alive& a, bool bootstrap, time_point now) {
  auto* e = lookup(a.node);
  bool is_self = a.node == cfg_.name;
  // A queued alive about us must not undo a leave.
  if (leaving_ && is_self) {
    return;
  }
  if (a.vsn.size() >= 3) {
    auto pmin = a.vsn[0];
    auto pmax = a.vsn[1];
    if (pmin == 0 || pmax == 0 || pmin > pmax) {
      log(log_level::warn,
          fmt::format("ignoring alive for '{}': protocol range [{}, {}]",
                      a.node, pmin, pmax));
      ++stats_.messages_dropped;
      return;
    }
  }
  auto addr = ip_endpoint::from_bytes(a.addr, a.port);
  if (!addr) {
    log(log_level::warn, fmt::format("ignoring alive for '{}': {}", a.node,
                                     addr.error().context()));
    ++stats_.messages_dropped;
    return;
  }
  bool updates_address = false;
  if (e == nullptr) {
    // A new member enters as a dead placeholder at a random position; only
    // an incarnation above 0 makes it alive below.
    auto entry = std::make_unique<node_entry>();
    entry->m.name = a.node;
    entry->m.address = *addr;
    entry->m.meta = a.meta.value_or(byte_buffer{});
    entry->m.state = node_state::dead;
    entry->m.state_change = now;
    if (a.vsn.size() >= 6) {
      entry->m.vsn = vsn_array(a.vsn);
    }
    e = entry.get();
    by_name_.emplace(a.node, e);
    nodes_.push_back(std::move(entry));
    std::uniform_int_distribution<size_t> dist{0, nodes_.size() - 1};
    std::swap(nodes_[dist(rng_)], nodes_.back());
  } else if (e->m.address != *addr) {
    bool can_reclaim = cfg_.dead_node_reclaim_time > duration::zero()
                       && now - e->m.state_change > cfg_.dead_node_reclaim_time;
    if (e->m.state == node_state::left
        || (e->m.state == node_state::dead && can_reclaim)) {
      log(log_level::info,
          fmt::format("'{}' moves from {} to {}", a.node,
                      e->m.address.to_string(), addr->to_string()));
      updates_address = true;
    } else {
      log(log_level::error,
          fmt::format("conflicting address for '{}': ours {}, theirs {} "
                      "(state {})",
                      a.node, e->m.address.to_string(), addr->to_string(),
                      state_name(e->m.state)));
      ++stats_.messages_dropped;
      return;
    }
  }
  if (!is_self && !updates_address && a.incarnation <= e->m.incarnation) {
    return;
  }
  if (is_self && a.incarnation < e->m.incarnation) {
    return;
  }
  e->suspect_timer.reset();
  auto old_state = e->m.state;
  auto old_meta = e->m.meta;
  if (!bootstrap && is_self) {
    // Someone gossips about us. The same incarnation with the same meta and
    // versions is our own news coming back; anything else is refuted.
    auto v = own_vsn();
    if (a.incarnation == e->m.incarnation
        && a.meta.value_or(byte_buffer{}) == e->m.meta
        && std::equal(a.vsn.begin(), a.vsn.end(), v.begin(), v.end())) {
      return;
    }
    refute(*e, a.incarnation);
    log(log_level::warn,
        fmt::format("refuting an alive about us at incarnation {}",
                    a.incarnation));
  } else {
    broadcast(a.node, a);
    if (a.vsn.size() >= 6) {
      e->m.vsn = vsn_array(a.vsn);
    }
    e->m.incarnation = a.incarnation;
    e->m.meta = a.meta.value_or(byte_buffer{});
    e->m.address = *addr;
    if (e->m.state != node_state::alive) {
      if (e->dead_or_left()) {
        ++up_;
      }
      e->m.state = node_state::alive;
      e->m.state_change = now;
    }
    // A failed member is back, or a name is reused by a new incarnation:
    // it is no longer retried.
    remember(e->m, now);
  }
  if (old_state == node_state::dead || old_state == node_state::left) {
    emit(member_event_kind::joined, *e);
  } else {
    if (old_state == node_state::suspect && e->m.state == node_state::alive) {
      emit(member_event_kind::alive_again, *e);
    }
    if (old_meta != e->m.meta) {
      emit(member_event_kind::updated, *e);
    }
  }
}

void membership::suspect_node(const suspect& s, time_point now) {
  auto* e = lookup(s.node);
  if (e == nullptr || s.incarnation < e->m.incarnation) {
    return;
  }
  if (auto* t = e->suspect_timer.get(); t != nullptr) {
    // A confirmation from a node we have not heard yet shortens the
    // suspicion (Lifeguard) and is gossiped on.
    if (t->confirmations >= t->k
        || std::find(t->confirmed.begin(), t->confirmed.end(), s.from)
             != t->confirmed.end()) {
      return;
    }
    t->confirmed.push_back(s.from);
    ++t->confirmations;
    broadcast(s.node, s);
    auto left = suspicion_remaining(t->confirmations, t->k, t->min, t->max,
                                    now - t->start);
    t->generation = ++suspicion_generation_;
    if (left <= duration::zero()) {
      arm(now, timer{timer::kind::suspicion, t->generation, s.node});
    } else {
      arm(now + left, timer{timer::kind::suspicion, t->generation, s.node});
    }
    return;
  }
  if (e->m.state != node_state::alive) {
    return;
  }
  if (e->m.name == cfg_.name) {
    // A suspicion merged from a peer's state (push-pull) carries our own
    // name as its sender, as memberlist's mergeState does.
    log(log_level::warn,
        s.from == cfg_.name
          ? fmt::format("refuting a suspicion of us at incarnation {} found "
                        "in a peer's state exchange",
                        s.incarnation)
          : fmt::format("refuting a suspicion from '{}' at incarnation {}",
                        s.from, s.incarnation));
    refute(*e, s.incarnation);
    return;
  }
  broadcast(s.node, s);
  ++stats_.suspicions;
  e->m.incarnation = s.incarnation;
  e->m.state = node_state::suspect;
  e->m.state_change = now;
  // Lifeguard: expect k = suspicion_mult - 2 independent confirmations,
  // fewer when the cluster cannot provide them.
  auto n = nodes_.size();
  auto k = cfg_.suspicion_mult - 2;
  if (static_cast<int64_t>(n) - 2 < k) {
    k = 0;
  }
  auto t = std::make_unique<suspicion>();
  t->k = k;
  t->min = suspicion_timeout(cfg_.suspicion_mult, n, cfg_.probe_interval);
  t->max = t->min * cfg_.suspicion_max_timeout_mult;
  t->start = now;
  t->confirmed.push_back(s.from);
  t->generation = ++suspicion_generation_;
  auto first = k < 1 ? t->min : t->max;
  arm(now + first, timer{timer::kind::suspicion, t->generation, s.node});
  e->suspect_timer = std::move(t);
  emit(member_event_kind::suspect, *e);
}

void membership::dead_node(const dead& d, time_point now) {
  auto* e = lookup(d.node);
  if (e == nullptr) {
    learn_leave(nullptr, d, now);
    return;
  }
  if (d.incarnation < e->m.incarnation) {
    return;
  }
  e->suspect_timer.reset();
  if (e->dead_or_left()) {
    learn_leave(e, d, now);
    return;
  }
  if (e->m.name == cfg_.name) {
    if (!leaving_) {
      log(log_level::warn,
          fmt::format("refuting a death notice from '{}'", d.from));
      refute(*e, d.incarnation);
      return;
    }
    broadcast(d.node, d, [this](bool) {
      report_leave(false);
    });
  } else {
    broadcast(d.node, d);
  }
  e->m.incarnation = d.incarnation;
  --up_;
  e->m.state = d.node == d.from ? node_state::left : node_state::dead;
  e->m.state_change = now;
  remember(e->m, now);
  emit(e->m.state == node_state::left ? member_event_kind::left
                                      : member_event_kind::dead,
       *e);
}

void membership::learn_leave(node_entry* e, const dead& d, time_point now) {
  // memberlist ignores news about a member it holds as dead; but a member
  // that failed on one side of a partition and left on the other must end
  // as left everywhere, or the failed side retries it for a day.
  if (d.node != d.from || d.node == cfg_.name) {
    return;
  }
  if (e != nullptr) {
    if (e->m.state != node_state::dead) {
      return;
    }
    e->m.incarnation = d.incarnation;
    e->m.state = node_state::left;
    e->m.state_change = now;
    remember(e->m, now);
    broadcast(d.node, d);
    log(log_level::info,
        fmt::format("'{}' failed here but left the cluster", d.node));
    emit(member_event_kind::left, *e);
    return;
  }
  auto i = remembered_.find(d.node);
  if (i == remembered_.end() || i->second.state != node_state::dead
      || d.incarnation < i->second.incarnation) {
    return;
  }
  i->second.incarnation = d.incarnation;
  i->second.state = node_state::left;
  i->second.state_change = now;
  peak_ = peak_ > 0 ? peak_ - 1 : 0;
  broadcast(d.node, d);
  log(log_level::info,
      fmt::format("'{}' (failed, forgotten) left the cluster", d.node));
}

void membership::refute(node_entry& me, uint32_t accused) {
  ++stats_.refutations;
  me.m.incarnation = next_incarnation(accused + 1);
  awareness_.apply_delta(1);
  broadcast(me.m.name, self_alive(me.m.incarnation));
}

void membership::reap_and_shuffle(time_point now) {
  // Dead and left members are reaped once they had their gossip-to-the-
  // dead time (memberlist upstream also reaps left ones; Debian's keeps
  // them forever, which inflates n and the suspicion timeouts).
  auto reap = [&](const std::unique_ptr<node_entry>& e) {
    return e->m.name != cfg_.name && e->dead_or_left()
           && now - e->m.state_change > cfg_.gossip_to_the_dead_time;
  };
  for (const auto& e : nodes_) {
    if (reap(e)) {
      by_name_.erase(e->m.name);
    }
  }
  std::erase_if(nodes_, reap);
  std::shuffle(nodes_.begin(), nodes_.end(), rng_);
}

// -- probing ------------------------------------------------------------------

void membership::probe(time_point now) {
  size_t checked = 0;
  while (checked < nodes_.size()) {
    if (probe_index_ >= nodes_.size()) {
      reap_and_shuffle(now);
      probe_index_ = 0;
      ++checked;
      continue;
    }
    auto* e = nodes_[probe_index_].get();
    ++probe_index_;
    if (e->m.name == cfg_.name || e->dead_or_left()) {
      ++checked;
      continue;
    }
    probe_node(*e, now);
    return;
  }
  schedule_next_probe(now);
}

void membership::probe_node(node_entry& target, time_point now) {
  ++stats_.probes;
  auto p = std::make_unique<probe_state>();
  p->target = target.m.name;
  p->incarnation = target.m.incarnation;
  p->seq = ++seq_no_;
  p->start = now;
  // Lifeguard: a node in poor health gives its probes longer.
  p->deadline = now + awareness_.scale(cfg_.probe_interval);
  ack_handlers_[p->seq] = ack_handler{};
  auto msg = make_ping(p->seq, target.m.name);
  if (target.m.state == node_state::alive) {
    send_msg(target.m.address, &target, msg);
  } else {
    // A suspect gets the accusation along with the ping, so it can refute
    // at once; no piggybacking (memberlist-wire.md §9.3).
    suspect s{target.m.incarnation, target.m.name, cfg_.name};
    auto m1 = encode_message(msg);
    auto m2 = encode_message(s);
    if (m1 && m2) {
      std::array<byte_buffer, 2> parts{std::move(*m1), std::move(*m2)};
      if (auto c = make_compound(parts)) {
        raw_send(target.m.address, &target, std::move(*c));
      }
    }
  }
  arm(now + cfg_.probe_timeout, timer{timer::kind::probe_timeout, p->seq});
  arm(p->deadline, timer{timer::kind::probe_deadline, p->seq});
  probe_ = std::move(p);
}

void membership::probe_timed_out(uint32_t seq, time_point now) {
  if (!probe_ || probe_->seq != seq) {
    return;
  }
  auto* target = lookup(probe_->target);
  if (target == nullptr) {
    return;
  }
  ++stats_.indirect_probes;
  auto relays = k_random_nodes(static_cast<size_t>(cfg_.indirect_checks),
                               [this, target](const node_entry& e) {
                                 return e.m.name == cfg_.name || &e == target
                                        || e.m.state != node_state::alive;
                               });
  indirect_ping ind;
  ind.seq_no = seq;
  auto tw = target->m.address.wire_bytes();
  ind.target.assign(tw.begin(), tw.end());
  ind.port = target->m.address.port();
  ind.node = target->m.name;
  auto sw = cfg_.advertise.wire_bytes();
  ind.source_addr.assign(sw.begin(), sw.end());
  ind.source_port = cfg_.advertise.port();
  ind.source_node = cfg_.name;
  for (auto* relay : relays) {
    // Only protocol 4+ relays send nacks.
    ind.nack = relay->pmax() >= 4;
    if (ind.nack) {
      ++probe_->expected_nacks;
    }
    send_msg(relay->m.address, relay, ind);
  }
  // And a TCP ping, in case only UDP is broken between us.
  if (!cfg_.disable_tcp_pings && target->pmax() >= 3) {
    if (auto bytes = encode_message(make_ping(seq, target->m.name))) {
      auto id = start_stream(target->m.address, frame_out(*bytes),
                             probe_->deadline - now, now);
      streams_[id].what = pending_stream::purpose::ping;
      streams_[id].seq = seq;
    }
  }
}

void membership::probe_deadline(uint32_t seq, time_point now) {
  if (!probe_ || probe_->seq != seq) {
    return;
  }
  if (probe_->tcp_ok) {
    ++stats_.tcp_fallback_ok;
    log(log_level::warn,
        fmt::format("reached '{}' over TCP but not over UDP: network may be "
                    "misconfigured",
                    probe_->target));
    finish_probe(true, now);
    return;
  }
  ++stats_.probes_failed;
  // Lifeguard: missing nacks mean we are the slow one, not the target.
  int delta = 1;
  if (probe_->expected_nacks > 0) {
    delta = std::max(0, probe_->expected_nacks - probe_->nacks);
  }
  awareness_.apply_delta(delta);
  suspect s{probe_->incarnation, probe_->target, cfg_.name};
  log(log_level::info,
      fmt::format("suspect '{}' has failed, no acks received", s.node));
  finish_probe(false, now);
  suspect_node(s, now);
}

void membership::finish_probe(bool ok, time_point now) {
  if (ok) {
    awareness_.apply_delta(-1);
  }
  ack_handlers_.erase(probe_->seq);
  probe_.reset();
  schedule_next_probe(now);
}

void membership::schedule_next_probe(time_point now) {
  // memberlist probes on a ticker and drops missed ticks: a probe that
  // overran one tick starts the next at once, otherwise at the next tick.
  auto tick = next_probe_tick_;
  while (tick <= now) {
    tick += cfg_.probe_interval;
  }
  bool missed = tick - cfg_.probe_interval > next_probe_tick_;
  next_probe_tick_ = tick;
  arm(missed ? now : tick, timer{timer::kind::probe});
}

// -- receiving ----------------------------------------------------------------

void membership_stats::count_message(bytes_view msg, bool in) noexcept {
  if (msg.empty()) {
    return;
  }
  auto type = static_cast<size_t>(msg[0]);
  if (type >= message_types) {
    return;
  }
  (in ? messages_in : messages_out)[type] += 1;
  (in ? message_bytes_in : message_bytes_out)[type] += msg.size();
}

void membership::handle_datagram(const ip_endpoint& from, bytes_view bytes,
                                 time_point now) {
  ++stats_.packets_in;
  stats_.bytes_in += bytes.size();
  auto packet = unwrap_packet(bytes, packet_opts());
  if (!packet) {
    ++stats_.packets_dropped;
    log(log_level::debug,
        fmt::format("dropped datagram from {}: {}", from.to_string(),
                    to_string(packet.error())));
    return;
  }
  stats_.messages_dropped += packet->dropped;
  for (const auto& msg : packet->messages) {
    handle_message(from, msg, now);
  }
}

void membership::handle_message(const ip_endpoint& from, bytes_view bytes,
                                time_point now) {
  auto msg = decode_packet_message(bytes);
  if (!msg) {
    ++stats_.messages_dropped;
    log(log_level::debug,
        fmt::format("dropped message from {}: {}", from.to_string(),
                    to_string(msg.error())));
    return;
  }
  stats_.count_message(bytes, true);
  std::visit(
    [&](const auto& x) {
      using T = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<T, ping>) {
        on_ping(from, x);
      } else if constexpr (std::is_same_v<T, indirect_ping>) {
        on_indirect_ping(from, x, now);
      } else if constexpr (std::is_same_v<T, ack>) {
        on_ack(x, now);
      } else if constexpr (std::is_same_v<T, nack>) {
        on_nack(x);
      } else if constexpr (std::is_same_v<T, alive>) {
        alive_node(x, false, now);
      } else if constexpr (std::is_same_v<T, suspect>) {
        suspect_node(x, now);
      } else if constexpr (std::is_same_v<T, dead>) {
        dead_node(x, now);
      } else {
        // User messages: Mycorrizal carries application data over QUIC.
        ++stats_.messages_dropped;
      }
    },
    *msg);
}

void membership::on_ping(const ip_endpoint& from, const ping& p) {
  if (!p.node.empty() && p.node != cfg_.name) {
    ++stats_.messages_dropped;
    log(log_level::warn,
        fmt::format("got ping for unexpected node '{}' from {}", p.node,
                    from.to_string()));
    return;
  }
  auto to = from;
  if (!p.source_addr.empty() && p.source_port != 0) {
    if (auto src = ip_endpoint::from_bytes(p.source_addr, p.source_port)) {
      to = *src;
    }
  }
  send_msg(to, nullptr, ack{p.seq_no, std::nullopt});
}

void membership::on_indirect_ping(const ip_endpoint& from,
                                  const indirect_ping& p, time_point now) {
  auto target = ip_endpoint::from_bytes(p.target, p.port);
  if (!target) {
    ++stats_.messages_dropped;
    return;
  }
  ack_handler h;
  h.relay = true;
  h.requester = from;
  if (!p.source_addr.empty() && p.source_port != 0) {
    if (auto src = ip_endpoint::from_bytes(p.source_addr, p.source_port)) {
      h.requester = *src;
    }
  }
  h.requester_seq = p.seq_no;
  h.nack = p.nack;
  auto seq = ++seq_no_;
  ack_handlers_[seq] = h;
  send_msg(*target, lookup(p.node), make_ping(seq, p.node));
  arm(now + cfg_.probe_timeout, timer{timer::kind::relay_expiry, seq});
}

void membership::on_ack(const ack& a, time_point now) {
  auto i = ack_handlers_.find(a.seq_no);
  if (i == ack_handlers_.end()) {
    return;
  }
  auto h = i->second;
  ack_handlers_.erase(i);
  if (h.relay) {
    send_msg(h.requester, nullptr, ack{h.requester_seq, std::nullopt});
    return;
  }
  if (probe_ && probe_->seq == a.seq_no) {
    finish_probe(true, now);
  }
}

void membership::on_nack(const nack& n) {
  if (probe_ && probe_->seq == n.seq_no) {
    ++probe_->nacks;
  }
}

void membership::relay_expired(uint32_t seq) {
  auto i = ack_handlers_.find(seq);
  if (i == ack_handlers_.end() || !i->second.relay) {
    return;
  }
  auto h = i->second;
  ack_handlers_.erase(i);
  if (h.nack) {
    send_msg(h.requester, nullptr, nack{h.requester_seq});
  }
}

// -- sending ------------------------------------------------------------------

size_t membership::encryption_overhead() const noexcept {
  if (cfg_.keys.empty() || !cfg_.gossip_verify_outgoing) {
    return 0;
  }
  return encrypted_size(1, 0);
}

gcm_nonce membership::make_nonce() {
  if (cfg_.make_nonce) {
    return cfg_.make_nonce();
  }
  gcm_nonce out{};
  for (size_t i = 0; i < out.size(); i += 8) {
    auto r = rng_();
    for (size_t j = 0; j < 8 && i + j < out.size(); ++j) {
      out[i + j] = static_cast<std::byte>(r >> (8 * j));
    }
  }
  return out;
}

template <class T>
void membership::send_msg(const ip_endpoint& to, const node_entry* node,
                          const T& msg) {
  auto bytes = encode_message(msg);
  if (!bytes) {
    log(log_level::error,
        fmt::format("cannot encode message: {}", to_string(bytes.error())));
    return;
  }
  send_packet(to, node, std::move(*bytes), true);
}

void membership::send_packet(const ip_endpoint& to, const node_entry* node,
                             byte_buffer msg, bool piggyback) {
  if (piggyback) {
    auto budget = cfg_.udp_buffer_size;
    auto used = msg.size() + compound_header_overhead + compound_part_overhead
                + encryption_overhead();
    if (used < budget) {
      auto extra = broadcasts_.take(compound_part_overhead, budget - used,
                                    retransmit_limit(cfg_.retransmit_mult,
                                                     nodes_.size()));
      if (!extra.empty()) {
        if (extra.size() > max_compound_parts - 1) {
          extra.resize(max_compound_parts - 1);
        }
        extra.insert(extra.begin(), std::move(msg));
        auto c = make_compound(extra);
        if (!c) {
          log(log_level::error,
              fmt::format("cannot build compound: {}", to_string(c.error())));
          return;
        }
        msg = std::move(*c);
      }
    }
  }
  raw_send(to, node, std::move(msg));
}

void membership::raw_send(const ip_endpoint& to, const node_entry* node,
                          byte_buffer msg) {
  // Our compounds hold leaf messages only (send_packet, gossip, probe).
  if (!msg.empty()
      && msg[0] == static_cast<std::byte>(message_type::compound)) {
    if (auto c = split_compound(msg)) {
      for (auto part : c->parts) {
        stats_.count_message(part, false);
      }
    }
  } else {
    stats_.count_message(msg, false);
  }
  if (cfg_.enable_compression) {
    // Only when it helps, as memberlist does for UDP.
    if (auto c = compress_message(msg); c && c->size() < msg.size()) {
      msg = std::move(*c);
    }
  }
  if (node != nullptr && node->pmax() >= 5) {
    msg = add_crc(msg);
  }
  if (!cfg_.keys.empty() && cfg_.gossip_verify_outgoing) {
    auto enc = encrypt_packet(msg, cfg_.keys, 1, make_nonce(), cfg_.label);
    if (!enc) {
      log(log_level::error,
          fmt::format("cannot encrypt: {}", to_string(enc.error())));
      return;
    }
    msg = std::move(*enc);
  }
  if (!cfg_.label.empty()) {
    if (auto labelled = add_label(cfg_.label, msg)) {
      msg = std::move(*labelled);
    }
  }
  ++stats_.packets_out;
  stats_.bytes_out += msg.size();
  outbox_.push_back(outgoing_datagram{to, std::move(msg)});
}

template <class T>
void membership::broadcast(const std::string& name, const T& msg,
                           broadcast_queue::finished_fn on_finish) {
  auto bytes = encode_message(msg);
  if (!bytes) {
    log(log_level::error,
        fmt::format("cannot encode broadcast: {}", to_string(bytes.error())));
    return;
  }
  broadcasts_.queue(name, std::move(*bytes), std::move(on_finish));
  broadcasts_.prune(max_queued_broadcasts);
  wake_gossip();
}

void membership::wake_gossip() {
  if (gossip_armed_ || cfg_.gossip_nodes <= 0 || broadcasts_.empty()) {
    return;
  }
  // On the loop's own schedule: no earlier than one interval after the
  // last round (a time in the past fires at the next timer check).
  gossip_armed_ = true;
  arm(next_gossip_tick_, timer{timer::kind::gossip});
}

void membership::gossip(time_point now) {
  auto targets = k_random_nodes(
    static_cast<size_t>(cfg_.gossip_nodes), [this, now](const node_entry& e) {
      if (e.m.name == cfg_.name) {
        return true;
      }
      switch (e.m.state) {
        case node_state::alive:
        case node_state::suspect: return false;
        case node_state::dead:
          return now - e.m.state_change > cfg_.gossip_to_the_dead_time;
        default: return true;
      }
    });
  auto limit = retransmit_limit(cfg_.retransmit_mult, nodes_.size());
  auto budget = cfg_.udp_buffer_size - compound_header_overhead
                - encryption_overhead();
  for (auto* e : targets) {
    auto msgs = broadcasts_.take(compound_part_overhead, budget, limit);
    if (msgs.empty()) {
      return;
    }
    if (msgs.size() > max_compound_parts) {
      msgs.resize(max_compound_parts);
    }
    if (msgs.size() == 1) {
      raw_send(e->m.address, e, std::move(msgs.front()));
    } else if (auto c = make_compound(msgs)) {
      raw_send(e->m.address, e, std::move(*c));
    }
  }
}

// -- streams ------------------------------------------------------------------

byte_buffer membership::local_state(bool join) const {
  push_pull pp;
  pp.join = join;
  pp.nodes.reserve(nodes_.size());
  for (const auto& e : nodes_) {
    push_node_state s;
    s.name = e->m.name;
    auto wire = e->m.address.wire_bytes();
    s.addr.assign(wire.begin(), wire.end());
    s.port = e->m.address.port();
    s.meta = meta_field(e->m.meta);
    s.incarnation = e->m.incarnation;
    s.state = e->m.state;
    s.vsn.assign(e->m.vsn.begin(), e->m.vsn.end());
    pp.nodes.push_back(std::move(s));
  }
  // Members that left and were reaped still travel as left, so that a side
  // of a partition that missed the leave stops retrying them.
  for (const auto& [name, m] : remembered_) {
    if (m.state != node_state::left || lookup(name) != nullptr) {
      continue;
    }
    push_node_state s;
    s.name = name;
    auto wire = m.address.wire_bytes();
    s.addr.assign(wire.begin(), wire.end());
    s.port = m.address.port();
    s.meta = meta_field(m.meta);
    s.incarnation = m.incarnation;
    s.state = node_state::left;
    s.vsn.assign(m.vsn.begin(), m.vsn.end());
    pp.nodes.push_back(std::move(s));
  }
  byte_buffer out;
  if (auto ok = append_message(out, pp); !ok) {
    return {};
  }
  return out;
}

byte_buffer membership::frame_out(const byte_buffer& message) {
  stream_send_options opts;
  opts.compress = cfg_.enable_compression;
  opts.label = cfg_.label;
  if (!cfg_.keys.empty() && cfg_.gossip_verify_outgoing) {
    opts.keys = &cfg_.keys;
    opts.nonce = make_nonce();
  }
  auto framed = frame_stream(message, opts);
  if (!framed) {
    log(log_level::error,
        fmt::format("cannot frame stream: {}", to_string(framed.error())));
    return {};
  }
  return std::move(*framed);
}

expected<void> membership::verify_protocol(const push_pull& pp) const {
  // Every alive node's current protocol version must lie in the range all
  // alive nodes (theirs and ours) support (memberlist verifyProtocol).
  uint8_t max_pmin = 0;
  uint8_t min_pmax = 255;
  uint8_t max_dmin = 0;
  uint8_t min_dmax = 255;
  auto widen = [&](const std::array<uint8_t, 6>& v) {
    max_pmin = std::max(max_pmin, v[0]);
    min_pmax = std::min(min_pmax, v[1]);
    max_dmin = std::max(max_dmin, v[3]);
    min_dmax = std::min(min_dmax, v[4]);
  };
  for (const auto& r : pp.nodes) {
    if (r.state == node_state::alive && r.vsn.size() >= 6) {
      widen(vsn_array(r.vsn));
    }
  }
  for (const auto& e : nodes_) {
    if (e->m.state == node_state::alive) {
      widen(e->m.vsn);
    }
  }
  auto check = [&](std::string_view name,
                   const std::array<uint8_t, 6>& v) -> expected<void> {
    if (v[2] < max_pmin || v[2] > min_pmax) {
      return unexpected{error{
        errc::unsupported_version,
        fmt::format("node '{}' protocol version {} is incompatible: [{}, {}]",
                    name, v[2], max_pmin, min_pmax)}};
    }
    if (v[5] < max_dmin || v[5] > min_dmax) {
      return unexpected{
        error{errc::unsupported_version,
              fmt::format("node '{}' delegate protocol version {} is "
                          "incompatible: [{}, {}]",
                          name, v[5], max_dmin, min_dmax)}};
    }
    return {};
  };
  for (const auto& r : pp.nodes) {
    if (r.state == node_state::alive && r.vsn.size() >= 6) {
      if (auto ok = check(r.name, vsn_array(r.vsn)); !ok) {
        return ok;
      }
    }
  }
  for (const auto& e : nodes_) {
    if (e->m.state == node_state::alive) {
      if (auto ok = check(e->m.name, e->m.vsn); !ok) {
        return ok;
      }
    }
  }
  return {};
}

expected<void> membership::merge_remote(const push_pull& pp, time_point now) {
  if (auto ok = verify_protocol(pp); !ok) {
    return ok;
  }
  ++stats_.push_pulls;
  for (const auto& r : pp.nodes) {
    switch (r.state) {
      case node_state::alive: {
        alive a;
        a.incarnation = r.incarnation;
        a.node = r.name;
        a.addr = r.addr;
        a.port = r.port;
        a.meta = r.meta;
        a.vsn = r.vsn;
        alive_node(a, false, now);
        break;
      }
      case node_state::left:
        dead_node(dead{r.incarnation, r.name, r.name}, now);
        break;
      case node_state::dead:
      case node_state::suspect:
        // Another node's verdict is only a suspicion here: the member gets
        // its chance to refute.
        suspect_node(suspect{r.incarnation, r.name, cfg_.name}, now);
        break;
      default: break;
    }
  }
  return {};
}

stream_step membership::handle_stream(const ip_endpoint& from,
                                      bytes_view received, time_point now) {
  auto opts = stream_opts();
  auto decoded = decode_stream(received, opts);
  auto fail = [&](const error& why) {
    ++stats_.streams_failed;
    log(log_level::warn, fmt::format("bad stream from {}: {}", from.to_string(),
                                     to_string(why)));
    stream_step step{true, {}};
    if (auto bytes = encode_stream_message(err_resp{to_string(why)})) {
      step.reply = frame_out(*bytes);
    }
    return step;
  };
  if (!decoded) {
    return fail(decoded.error());
  }
  if (!decoded->has_value()) {
    return stream_step{false, {}};
  }
  ++stats_.streams_in;
  auto& msg = (*decoded)->message;
  if (auto* p = std::get_if<ping>(&msg)) {
    if (!p->node.empty() && p->node != cfg_.name) {
      return fail(error{errc::malformed_frame,
                        fmt::format("ping for unexpected node '{}'", p->node)});
    }
    auto bytes = encode_message(ack{p->seq_no, std::nullopt});
    return stream_step{true, bytes ? frame_out(*bytes) : byte_buffer{}};
  }
  if (auto* pp = std::get_if<push_pull>(&msg)) {
    // Answer with our state first, then merge theirs (as memberlist does).
    stream_step step{true, frame_out(local_state(false))};
    if (auto ok = merge_remote(*pp, now); !ok) {
      log(log_level::error,
          fmt::format("push/pull from {} refused: {}", from.to_string(),
                      to_string(ok.error())));
    }
    return step;
  }
  // User messages are not used by Mycorrizal; err_resp needs no answer.
  return stream_step{true, {}};
}

uint64_t membership::start_stream(const ip_endpoint& to, byte_buffer bytes,
                                  duration timeout, time_point now) {
  auto id = next_stream_id_++;
  pending_stream s;
  s.to = to;
  streams_.emplace(id, s);
  stream_requests_.push_back(
    stream_request{id, to, std::move(bytes), now + timeout});
  arm(now + timeout, timer{timer::kind::stream_deadline, id});
  return id;
}

void membership::push_pull_with(const ip_endpoint& to,
                                std::optional<uint64_t> join_id, time_point now,
                                pending_stream::purpose what) {
  bool join = join_id.has_value() || what == pending_stream::purpose::reconnect;
  auto id = start_stream(to, frame_out(local_state(join)), cfg_.tcp_timeout,
                         now);
  auto& s = streams_[id];
  s.what = what;
  s.join_id = join_id.value_or(0);
}

bool membership::handle_stream_reply(uint64_t id, bytes_view received,
                                     time_point now) {
  auto i = streams_.find(id);
  if (i == streams_.end()) {
    return true;
  }
  auto opts = stream_opts();
  auto decoded = decode_stream(received, opts);
  if (!decoded) {
    finish_stream(id, &decoded.error());
    return true;
  }
  if (!decoded->has_value()) {
    return false;
  }
  auto& msg = (*decoded)->message;
  auto s = i->second;
  if (auto* e = std::get_if<err_resp>(&msg)) {
    error why{errc::remote_error,
              fmt::format("{} answered: {}", s.to.to_string(), e->error)};
    finish_stream(id, &why);
    return true;
  }
  if (s.what == pending_stream::purpose::ping) {
    auto* a = std::get_if<ack>(&msg);
    if (a != nullptr && a->seq_no == s.seq && probe_ && probe_->seq == s.seq) {
      probe_->tcp_ok = true;
    }
    finish_stream(id, nullptr);
    return true;
  }
  auto* pp = std::get_if<push_pull>(&msg);
  if (pp == nullptr) {
    error why{errc::malformed_frame,
              fmt::format("{} answered a push/pull with another message",
                          s.to.to_string())};
    finish_stream(id, &why);
    return true;
  }
  if (auto ok = merge_remote(*pp, now); !ok) {
    finish_stream(id, &ok.error());
    return true;
  }
  finish_stream(id, nullptr);
  return true;
}

void membership::stream_failed(uint64_t id, const error& why,
                               time_point /*now*/) {
  finish_stream(id, &why);
}

void membership::finish_stream(uint64_t id, const error* failure) {
  auto i = streams_.find(id);
  if (i == streams_.end()) {
    return;
  }
  auto s = i->second;
  streams_.erase(i);
  if (failure != nullptr) {
    ++stats_.streams_failed;
    log(log_level::debug, fmt::format("TCP exchange with {} failed: {}",
                                      s.to.to_string(), to_string(*failure)));
  } else if (s.what == pending_stream::purpose::reconnect) {
    ++stats_.reconnects_ok;
    log(log_level::info,
        fmt::format("reconnected: exchanged state with {}", s.to.to_string()));
  }
  if (s.join_id != 0) {
    if (failure == nullptr) {
      join_step(s.join_id, nullptr);
    } else {
      error named{failure->code(),
                  fmt::format("{}: {}", s.to.to_string(), failure->context())};
      join_step(s.join_id, &named);
    }
  }
}

void membership::join_step(uint64_t join_id, const error* failure) {
  auto i = joins_.find(join_id);
  if (i == joins_.end()) {
    return;
  }
  auto& j = i->second;
  if (failure == nullptr) {
    ++j.contacted;
  } else {
    j.errors.push_back(*failure);
  }
  if (--j.remaining == 0) {
    events_.emplace_back(
      join_completed{join_id, j.contacted, std::move(j.errors)});
    joins_.erase(i);
  }
}

uint64_t membership::join(std::span<const ip_endpoint> seeds, time_point now) {
  auto id = next_join_id_++;
  if (seeds.empty()) {
    events_.emplace_back(join_completed{id, 0, {}});
    return id;
  }
  joins_[id] = pending_join{seeds.size(), 0, {}};
  for (const auto& seed : seeds) {
    if (std::find(seeds_.begin(), seeds_.end(), seed) == seeds_.end()) {
      seeds_.push_back(seed);
    }
    push_pull_with(seed, id, now);
  }
  return id;
}

void membership::reconnect(time_point now) {
  std::erase_if(remembered_, [&](const auto& x) {
    return now - x.second.state_change > cfg_.reconnect_timeout;
  });
  if (leaving_) {
    return;
  }
  std::vector<const member*> failed;
  for (const auto& [name, m] : remembered_) {
    if (m.state == node_state::dead) {
      failed.push_back(&m);
    }
  }
  // The cluster is smaller than the members known alive before: retry one
  // failed member (Serf's reconnect) and every seed (its retry_join), so a
  // partition of any shape heals once the network does.
  std::optional<ip_endpoint> to;
  if (!failed.empty()) {
    std::uniform_int_distribution<size_t> pick{0, failed.size() - 1};
    const auto& target = *failed[pick(rng_)];
    to = target.address;
    log(log_level::debug,
        fmt::format("reconnect: trying failed member '{}' at {} ({} failed)",
                    target.name, to->to_string(), failed.size()));
    ++stats_.reconnects;
    push_pull_with(*to, std::nullopt, now, pending_stream::purpose::reconnect);
  } else if (num_alive() >= peak_) {
    return;
  }
  for (const auto& seed : seeds_) {
    bool known_alive
      = std::any_of(nodes_.begin(), nodes_.end(), [&seed](const auto& e) {
          return e->m.address == seed && !e->dead_or_left();
        });
    if (seed == to || seed == cfg_.advertise || known_alive) {
      continue;
    }
    ++stats_.reconnects;
    push_pull_with(seed, std::nullopt, now, pending_stream::purpose::reconnect);
  }
}

void membership::periodic_push_pull(time_point now) {
  auto peers = k_random_nodes(1, [this](const node_entry& e) {
    return e.m.name == cfg_.name || e.m.state != node_state::alive;
  });
  if (!peers.empty()) {
    push_pull_with(peers.front()->m.address, std::nullopt, now);
  }
}

// -- commands -----------------------------------------------------------------

void membership::report_leave(bool timed_out) {
  if (!leave_reported_) {
    leave_reported_ = true;
    events_.emplace_back(leave_completed{timed_out});
  }
}

void membership::leave(duration timeout, time_point now) {
  if (leaving_) {
    return;
  }
  // Set first: dead_node refutes a death notice about us unless we leave.
  leaving_ = true;
  auto& me = self_entry();
  dead d{me.m.incarnation, me.m.name, me.m.name};
  dead_node(d, now);
  // Also tell every live member directly. Gossip alone spends the leave's
  // few transmissions on random targets, dead ones included (gossip to the
  // dead): during a partition they may all go to the other side, and the
  // members beside us would declare us failed instead.
  if (auto bytes = encode_message(d)) {
    for (const auto& e : nodes_) {
      if (e->m.name != cfg_.name && !e->dead_or_left()) {
        send_packet(e->m.address, e.get(), *bytes, false);
      }
    }
  }
  if (!any_alive()) {
    report_leave(false);
    return;
  }
  arm(now + timeout, timer{timer::kind::leave_deadline});
}

expected<void> membership::update_meta(byte_buffer meta, time_point now) {
  if (meta.size() > meta_max_size) {
    return unexpected{
      error{errc::too_large, fmt::format("node meta of {} bytes (at most {})",
                                         meta.size(), meta_max_size)}};
  }
  if (leaving_) {
    return unexpected{error{errc::shutting_down, "node has left"}};
  }
  auto& me = self_entry();
  cfg_.meta = std::move(meta);
  alive_node(self_alive(next_incarnation(me.m.incarnation + 1)), true, now);
  return {};
}

// -- timers -------------------------------------------------------------------

void membership::arm(time_point when, timer t) {
  timers_.emplace(when, std::move(t));
}

time_point membership::next_deadline() const noexcept {
  return timers_.empty() ? never : timers_.begin()->first;
}

void membership::on_timeout(time_point now) {
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto due = timers_.begin()->first;
    auto t = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    fire(std::move(t), due, now);
  }
}

void membership::fire(timer t, time_point due, time_point now) {
  // A timer that fires long after it was due means this process did not
  // run meanwhile (stopped, swapped out, starved): what others sent then
  // (the ack we wait for, a refutation) sits unread in our socket, and its
  // owner may hand us the timer before those datagrams. A verdict on a
  // member waits one short grace for them, once.
  bool verdict = t.what == timer::kind::probe_deadline
                 || t.what == timer::kind::suspicion;
  if (verdict && !t.deferred && now - due > cfg_.probe_timeout / 2) {
    log(log_level::debug,
        fmt::format(
          "a timer fired {} ms late: reading input first",
          std::chrono::duration_cast<std::chrono::milliseconds>(now - due)
            .count()));
    t.deferred = true;
    arm(now + late_timer_grace, std::move(t));
    return;
  }
  switch (t.what) {
    case timer::kind::probe:
      if (!probe_) {
        probe(now);
      }
      break;
    case timer::kind::gossip:
      // An idle cluster has nothing to gossip: the loop sleeps until a
      // broadcast is queued instead of waking its host every interval
      // (issue 18: an idle node costs nothing).
      gossip_armed_ = false;
      gossip(now);
      next_gossip_tick_ = now + cfg_.gossip_interval;
      wake_gossip();
      break;
    case timer::kind::push_pull:
      periodic_push_pull(now);
      arm(now + push_pull_scale(cfg_.push_pull_interval, nodes_.size()),
          timer{timer::kind::push_pull});
      break;
    case timer::kind::probe_timeout:
      probe_timed_out(static_cast<uint32_t>(t.arg), now);
      break;
    case timer::kind::probe_deadline:
      probe_deadline(static_cast<uint32_t>(t.arg), now);
      break;
    case timer::kind::relay_expiry:
      relay_expired(static_cast<uint32_t>(t.arg));
      break;
    case timer::kind::suspicion: {
      auto* e = lookup(t.name);
      if (e == nullptr || !e->suspect_timer
          || e->suspect_timer->generation != t.arg
          || e->m.state != node_state::suspect) {
        break;
      }
      log(log_level::info,
          fmt::format("marking '{}' as failed, suspect timeout reached ({} "
                      "peer confirmations)",
                      t.name, e->suspect_timer->confirmations));
      ++stats_.deaths_declared;
      dead_node(dead{e->m.incarnation, e->m.name, cfg_.name}, now);
      break;
    }
    case timer::kind::stream_deadline:
      if (streams_.count(t.arg) != 0) {
        error why{errc::timeout, "TCP exchange deadline passed"};
        finish_stream(t.arg, &why);
      }
      break;
    case timer::kind::leave_deadline: report_leave(true); break;
    case timer::kind::reconnect:
      reconnect(now);
      arm(now + cfg_.reconnect_interval, timer{timer::kind::reconnect});
      break;
  }
}

void membership::log(log_level level, std::string_view text) const {
  if (cfg_.log) {
    cfg_.log(level, fmt::format("{}: {}", cfg_.name, text));
  }
}

} // namespace mycorrizal::gossip
