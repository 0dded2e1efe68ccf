// SPDX-License-Identifier: Apache-2.0
// One test per state transition of the membership core, driven by hand:
// crafted messages in, decoded datagrams out, literal virtual times.
#include "mycorrizal/errc.hpp"
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/gossip/packet.hpp"
#include "mycorrizal/gossip/stream.hpp"

#include "support/bytes.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <set>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using namespace std::chrono_literals;

namespace {

const ip_endpoint me_addr = ip_endpoint::v4(10, 0, 0, 1, 7946);

ip_endpoint addr_of(int i) {
  return ip_endpoint::v4(10, 0, 0, static_cast<uint8_t>(i), 7946);
}

alive alive_msg(const std::string& name, int host, uint32_t inc,
                std::optional<byte_buffer> meta = std::nullopt) {
  alive a;
  a.incarnation = inc;
  a.node = name;
  auto w_ep = addr_of(host);
  auto w = w_ep.wire_bytes();
  a.addr.assign(w.begin(), w.end());
  a.port = 7946;
  a.meta = std::move(meta);
  a.vsn = default_vsn();
  return a;
}

using mycorrizal::test::bytes_of;

/// One core under test at virtual time `now`, plus helpers to feed it and
/// to read what it sent.
struct harness {
  time_point t0 = time_point{} + 1000s;
  time_point now = t0;
  std::unique_ptr<membership> core;
  std::vector<member_event> member_events;
  std::vector<join_completed> joins;
  std::vector<leave_completed> leaves;
  /// Every leaf message sent, with its destination.
  std::vector<std::pair<ip_endpoint, packet_message>> sent;
  size_t answered = 0;
  /// Names whose pings get an ack right away.
  std::set<std::string> responsive;

  explicit harness(membership_config cfg = membership_config::lan_defaults()) {
    cfg.name = "me";
    cfg.advertise = me_addr;
    cfg.seed = 42;
    auto made = membership::make(std::move(cfg), now);
    EXPECT_TRUE(made) << to_string(made.error());
    core = std::move(*made);
    collect();
  }

  void collect() {
    for (auto& d : core->outbox()) {
      packet_options opts;
      if (!core->config().keys.empty()) {
        opts.keys = &core->config().keys;
      }
      auto p = unwrap_packet(d.bytes, opts);
      ASSERT_TRUE(p) << to_string(p.error());
      for (auto& m : p->messages) {
        auto msg = decode_packet_message(m);
        ASSERT_TRUE(msg) << to_string(msg.error());
        sent.emplace_back(d.to, std::move(*msg));
      }
    }
    core->outbox().clear();
    // Members marked responsive answer our pings at once.
    std::vector<std::pair<ip_endpoint, uint32_t>> answers;
    for (; answered < sent.size(); ++answered) {
      auto& [to, m] = sent[answered];
      if (auto* p = std::get_if<ping>(&m);
          p != nullptr && responsive.count(p->node) != 0) {
        answers.emplace_back(to, p->seq_no);
      }
    }
    for (auto& [to, seq] : answers) {
      auto bytes = encode_message(ack{seq, std::nullopt});
      core->handle_datagram(to, *bytes, now);
    }
    if (!answers.empty()) {
      collect();
      return;
    }
    for (auto& e : core->events()) {
      if (auto* m = std::get_if<member_event>(&e)) {
        member_events.push_back(*m);
      } else if (auto* j = std::get_if<join_completed>(&e)) {
        joins.push_back(*j);
      } else if (auto* l = std::get_if<leave_completed>(&e)) {
        leaves.push_back(*l);
      }
    }
    core->events().clear();
  }

  template <class T>
  void feed(const T& msg, int from_host = 2) {
    auto bytes = encode_message(msg);
    ASSERT_TRUE(bytes);
    core->handle_datagram(addr_of(from_host), *bytes, now);
    collect();
  }

  /// Runs timers up to `until`, answering nothing.
  void advance_to(time_point until) {
    while (core->next_deadline() <= until) {
      now = std::max(now, core->next_deadline());
      core->on_timeout(now);
      collect();
    }
    now = until;
  }

  void advance(duration d) {
    advance_to(now + d);
  }

  node_state state_of(const std::string& name) const {
    auto* m = core->find(name);
    EXPECT_NE(m, nullptr) << name << " unknown";
    return m == nullptr ? node_state::dead : m->state;
  }

  template <class T>
  std::vector<std::pair<ip_endpoint, T>> sent_of() const {
    std::vector<std::pair<ip_endpoint, T>> out;
    for (const auto& [to, m] : sent) {
      if (auto* x = std::get_if<T>(&m)) {
        out.emplace_back(to, *x);
      }
    }
    return out;
  }

  size_t count_events(member_event_kind kind, const std::string& name) const {
    return static_cast<size_t>(std::count_if(
      member_events.begin(), member_events.end(), [&](const member_event& e) {
        return e.kind == kind && e.who.name == name;
      }));
  }

  /// Fails every TCP exchange the core asked for.
  void refuse_streams() {
    for (auto& r : core->stream_requests()) {
      core->stream_failed(r.id, error{errc::connection_lost, "refused"}, now);
    }
    core->stream_requests().clear();
    collect();
  }
};

TEST(gossip_transitions, starts_alive_at_incarnation_1_and_announces_itself) {
  harness h;
  EXPECT_EQ(h.core->self().state, node_state::alive);
  EXPECT_EQ(h.core->self().incarnation, 1u);
  EXPECT_EQ(h.core->num_nodes(), 1u);
  EXPECT_EQ(h.count_events(member_event_kind::joined, "me"), 1u);
  EXPECT_NE(h.core->next_deadline(), never);
}

TEST(gossip_transitions, alive_at_incarnation_0_leaves_a_dead_placeholder) {
  harness h;
  h.feed(alive_msg("a", 2, 0));
  ASSERT_NE(h.core->find("a"), nullptr);
  EXPECT_EQ(h.state_of("a"), node_state::dead);
  EXPECT_EQ(h.core->num_nodes(), 2u);
  EXPECT_EQ(h.count_events(member_event_kind::joined, "a"), 0u);
}

TEST(gossip_transitions, alive_joins_then_updates_meta_only_when_newer) {
  harness h;
  h.feed(alive_msg("a", 2, 1, bytes_of("v1")));
  EXPECT_EQ(h.state_of("a"), node_state::alive);
  EXPECT_EQ(h.count_events(member_event_kind::joined, "a"), 1u);
  // Same incarnation, other meta: ignored (strictly newer needed).
  h.feed(alive_msg("a", 2, 1, bytes_of("v2")));
  EXPECT_EQ(h.core->find("a")->meta, bytes_of("v1"));
  h.feed(alive_msg("a", 2, 2, bytes_of("v2")));
  EXPECT_EQ(h.core->find("a")->meta, bytes_of("v2"));
  EXPECT_EQ(h.count_events(member_event_kind::updated, "a"), 1u);
  // A bad protocol range is refused.
  auto bad = alive_msg("b", 3, 1);
  bad.vsn = {0, 5, 2, 0, 0, 0};
  h.feed(bad);
  EXPECT_EQ(h.core->find("b"), nullptr);
}

TEST(gossip_transitions, refutes_suspicion_and_death_of_itself) {
  harness h;
  h.feed(alive_msg("a", 2, 1));
  h.feed(suspect{1, "me", "a"});
  EXPECT_EQ(h.core->self().state, node_state::alive);
  EXPECT_EQ(h.core->self().incarnation, 2u);
  EXPECT_EQ(h.core->health_score(), 1);
  h.feed(dead{7, "me", "a"});
  EXPECT_EQ(h.core->self().incarnation, 8u);
  EXPECT_EQ(h.core->health_score(), 2);
  EXPECT_EQ(h.core->stats().refutations, 2u);
  // The refutation reaches the other member through gossip.
  h.advance(1s);
  bool refuted = false;
  for (auto& [to, a] : h.sent_of<alive>()) {
    refuted = refuted
              || (a.node == "me" && a.incarnation == 8 && to == addr_of(2));
  }
  EXPECT_TRUE(refuted);
}

TEST(gossip_transitions, failed_probe_suspects_then_declares_dead) {
  harness h;
  h.feed(alive_msg("a", 2, 1));
  h.feed(alive_msg("b", 3, 1));
  // Run until a probe goes out, answer nothing, refuse TCP pings.
  std::optional<ping> first;
  time_point probe_start{};
  while (!first) {
    h.advance_to(h.core->next_deadline());
    auto pings = h.sent_of<ping>();
    if (!pings.empty()) {
      first = pings.front().second;
      probe_start = h.now;
    }
  }
  auto target = first->node;
  std::string other = target == "a" ? "b" : "a";
  h.responsive.insert(other);
  EXPECT_EQ(first->source_node, "me");
  // After the probe timeout: an indirect ping to the other member.
  h.advance_to(probe_start + 500ms);
  auto ind = h.sent_of<indirect_ping>();
  ASSERT_EQ(ind.size(), 1u);
  EXPECT_EQ(ind[0].second.node, target);
  EXPECT_EQ(ind[0].second.seq_no, first->seq_no);
  EXPECT_TRUE(ind[0].second.nack);
  ASSERT_EQ(h.core->stream_requests().size(), 1u) << "TCP fallback ping";
  h.refuse_streams();
  // The other relay never answers; a nack arrives from it.
  h.feed(nack{first->seq_no}, target == "a" ? 3 : 2);
  h.advance_to(probe_start + 1s - 1ms);
  EXPECT_EQ(h.state_of(target), node_state::alive);
  h.advance_to(probe_start + 1s);
  EXPECT_EQ(h.state_of(target), node_state::suspect);
  EXPECT_EQ(h.count_events(member_event_kind::suspect, target), 1u);
  // One nack expected and received: our health does not suffer.
  EXPECT_EQ(h.core->health_score(), 0);
  // n = 3 -> k = 0 -> min = 4 s after the suspicion.
  h.advance_to(probe_start + 5s - 1ms);
  EXPECT_EQ(h.state_of(target), node_state::suspect);
  h.advance_to(probe_start + 5s);
  EXPECT_EQ(h.state_of(target), node_state::dead);
  EXPECT_EQ(h.count_events(member_event_kind::dead, target), 1u);
  EXPECT_EQ(h.state_of(other), node_state::alive);
  EXPECT_EQ(h.core->stats().deaths_declared, 1u);
}

TEST(gossip_transitions, ack_ends_the_probe_and_improves_health) {
  harness h;
  h.feed(alive_msg("a", 2, 1));
  h.feed(suspect{1, "me", "a"}); // health 1
  ASSERT_EQ(h.core->health_score(), 1);
  while (h.sent_of<ping>().empty()) {
    h.advance_to(h.core->next_deadline());
  }
  auto p = h.sent_of<ping>().front().second;
  h.feed(ack{p.seq_no, std::nullopt});
  EXPECT_EQ(h.core->health_score(), 0);
  EXPECT_EQ(h.state_of("a"), node_state::alive);
  EXPECT_EQ(h.core->stats().probes_failed, 0u);
}

TEST(gossip_transitions, messages_are_counted_by_type_both_ways) {
  harness h;
  h.responsive = {"a"};
  h.feed(alive_msg("a", 2, 1));
  h.feed(alive_msg("b", 3, 1));
  h.feed(suspect{1, "b", "a"});
  h.advance(10s);
  // What the core counts as sent, by type, against what the harness decoded
  // from its datagrams (compound parts unpacked by unwrap_packet).
  std::map<message_type, uint64_t> decoded;
  for (const auto& [to, m] : h.sent) {
    auto type = std::visit(
      [](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, ping>) {
          return message_type::ping;
        } else if constexpr (std::is_same_v<T, indirect_ping>) {
          return message_type::indirect_ping;
        } else if constexpr (std::is_same_v<T, ack>) {
          return message_type::ack;
        } else if constexpr (std::is_same_v<T, nack>) {
          return message_type::nack;
        } else if constexpr (std::is_same_v<T, suspect>) {
          return message_type::suspect;
        } else if constexpr (std::is_same_v<T, alive>) {
          return message_type::alive;
        } else if constexpr (std::is_same_v<T, dead>) {
          return message_type::dead;
        } else {
          return message_type::user;
        }
      },
      m);
    ++decoded[type];
  }
  const auto& st = h.core->stats();
  ASSERT_GE(decoded[message_type::ping], 1u);
  ASSERT_GE(decoded[message_type::alive], 1u);
  for (size_t t = 0; t < membership_stats::message_types; ++t) {
    auto type = static_cast<message_type>(t);
    EXPECT_EQ(st.messages_out[t], decoded[type]) << "type " << t;
    EXPECT_EQ(st.message_bytes_out[t] > 0, decoded[type] > 0) << "type " << t;
  }
  // Fed: three messages, plus one ack per ping to the responsive "a".
  EXPECT_EQ(st.messages_in[static_cast<size_t>(message_type::alive)], 2u);
  EXPECT_EQ(st.messages_in[static_cast<size_t>(message_type::suspect)], 1u);
  uint64_t pings_to_a = 0;
  for (const auto& [to, p] : h.sent_of<ping>()) {
    pings_to_a += p.node == "a" ? 1 : 0;
  }
  EXPECT_GE(pings_to_a, 1u);
  EXPECT_EQ(st.messages_in[static_cast<size_t>(message_type::ack)], pings_to_a);
  EXPECT_EQ(st.messages_in[static_cast<size_t>(message_type::ping)], 0u);
}

TEST(gossip_transitions, failed_probe_without_nacks_raises_health) {
  harness h;
  h.feed(alive_msg("a", 2, 1));
  while (h.sent_of<ping>().empty()) {
    h.advance_to(h.core->next_deadline());
  }
  auto start = h.now;
  h.advance_to(start + 500ms);
  h.refuse_streams();
  h.advance_to(start + 1s);
  // No relay could be asked, so no nack could be expected: +1.
  EXPECT_EQ(h.core->health_score(), 1);
  EXPECT_EQ(h.state_of("a"), node_state::suspect);
  // The next probe of the suspect carries the accusation, and with
  // health 1 waits 2 s before giving up.
  while (h.sent_of<ping>().size() < 2) {
    h.advance_to(h.core->next_deadline());
    h.refuse_streams();
  }
  auto second_start = h.now;
  auto sus = h.sent_of<suspect>();
  ASSERT_FALSE(sus.empty());
  EXPECT_EQ(sus.back().second.node, "a");
  h.advance_to(second_start + 2s - 1ms);
  h.refuse_streams();
  EXPECT_EQ(h.core->health_score(), 1);
  h.advance_to(second_start + 2s);
  EXPECT_EQ(h.core->health_score(), 2);
}

TEST(gossip_transitions, lifeguard_confirmations_shorten_suspicion) {
  harness h;
  for (int i = 2; i <= 5; ++i) {
    h.feed(alive_msg(fmt::format("n{}", i), i, 1));
    h.responsive.insert(fmt::format("n{}", i));
  }
  // n = 5, LAN: k = 2, min 4 s, max 24 s.
  auto start = h.now;
  h.feed(suspect{1, "n2", "n3"});
  EXPECT_EQ(h.state_of("n2"), node_state::suspect);
  // The creator cannot confirm; a repeat from it changes nothing.
  h.feed(suspect{1, "n2", "n3"});
  h.now = start + 1s;
  h.feed(suspect{1, "n2", "n4"}); // c = 1 -> 11.381 s in total
  h.advance_to(start + 11381ms - 1ms);
  EXPECT_EQ(h.state_of("n2"), node_state::suspect);
  h.advance_to(start + 11381ms);
  EXPECT_EQ(h.state_of("n2"), node_state::dead);

  // Two confirmations: dead at the minimum, 4 s.
  auto start2 = h.now;
  h.feed(suspect{1, "n3", "n2"});
  h.now = start2 + 1s;
  h.feed(suspect{1, "n3", "n4"});
  h.feed(suspect{1, "n3", "n5"});
  h.advance_to(start2 + 4s - 1ms);
  EXPECT_EQ(h.state_of("n3"), node_state::suspect);
  h.advance_to(start2 + 4s);
  EXPECT_EQ(h.state_of("n3"), node_state::dead);
  // Confirmations are re-gossiped.
  size_t regossiped = 0;
  for (auto& [to, s] : h.sent_of<suspect>()) {
    regossiped += s.node == "n3" && s.from == "n5" ? 1 : 0;
  }
  EXPECT_GT(regossiped, 0u);
}

TEST(gossip_transitions, alive_refutation_cancels_suspicion) {
  harness h;
  h.feed(alive_msg("a", 2, 1));
  h.feed(alive_msg("b", 3, 1));
  h.responsive = {"a", "b"};
  h.feed(suspect{1, "a", "b"});
  EXPECT_EQ(h.state_of("a"), node_state::suspect);
  h.feed(alive_msg("a", 2, 2));
  EXPECT_EQ(h.state_of("a"), node_state::alive);
  EXPECT_EQ(h.count_events(member_event_kind::alive_again, "a"), 1u);
  h.advance(30s);
  h.refuse_streams();
  EXPECT_NE(h.state_of("a"), node_state::dead)
    << "the cancelled suspicion fired anyway";
}

TEST(gossip_transitions, left_stays_left_until_a_newer_alive) {
  harness h;
  h.feed(alive_msg("a", 2, 3));
  h.feed(dead{3, "a", "a"});
  EXPECT_EQ(h.state_of("a"), node_state::left);
  EXPECT_EQ(h.count_events(member_event_kind::left, "a"), 1u);
  h.feed(suspect{3, "a", "b"});
  h.feed(alive_msg("a", 2, 3));
  h.feed(dead{3, "a", "b"});
  EXPECT_EQ(h.state_of("a"), node_state::left);
  EXPECT_EQ(h.count_events(member_event_kind::dead, "a"), 0u);
  h.feed(alive_msg("a", 2, 4));
  EXPECT_EQ(h.state_of("a"), node_state::alive);
  EXPECT_EQ(h.count_events(member_event_kind::joined, "a"), 2u);
}

TEST(gossip_transitions, dead_name_reclaimed_only_when_configured) {
  {
    harness h;
    h.feed(alive_msg("a", 2, 1));
    h.feed(dead{1, "a", "b"});
    h.advance(10s);
    h.refuse_streams();
    h.feed(alive_msg("a", 9, 5));
    EXPECT_EQ(h.core->find("a")->address, addr_of(2)) << "conflict accepted";
  }
  {
    auto cfg = membership_config::lan_defaults();
    cfg.dead_node_reclaim_time = 5s;
    harness h{cfg};
    h.feed(alive_msg("a", 2, 1));
    h.feed(dead{1, "a", "b"});
    h.now += 3s;
    h.feed(alive_msg("a", 9, 5));
    EXPECT_EQ(h.core->find("a")->address, addr_of(2)) << "reclaimed too soon";
    h.now += 3s;
    h.feed(alive_msg("a", 9, 5));
    EXPECT_EQ(h.core->find("a")->address, addr_of(9));
    EXPECT_EQ(h.state_of("a"), node_state::alive);
  }
}

TEST(gossip_transitions, answers_pings_to_the_source_address) {
  harness h;
  ping p;
  p.seq_no = 77;
  p.node = "me";
  auto w_ep = addr_of(5);
  auto w = w_ep.wire_bytes();
  p.source_addr.assign(w.begin(), w.end());
  p.source_port = 7946;
  p.source_node = "x";
  h.feed(p, 2);
  auto acks = h.sent_of<ack>();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].first, addr_of(5));
  EXPECT_EQ(acks[0].second.seq_no, 77u);
  // A ping meant for another node is dropped.
  p.node = "someone-else";
  h.feed(p, 2);
  EXPECT_EQ(h.sent_of<ack>().size(), 1u);
  EXPECT_EQ(h.core->stats().messages_dropped, 1u);
}

TEST(gossip_transitions, relays_indirect_pings_with_ack_or_nack) {
  harness h;
  indirect_ping ind;
  ind.seq_no = 5;
  auto tw_ep = addr_of(3);
  auto tw = tw_ep.wire_bytes();
  ind.target.assign(tw.begin(), tw.end());
  ind.port = 7946;
  ind.node = "t";
  ind.nack = true;
  h.feed(ind, 2);
  auto pings = h.sent_of<ping>();
  ASSERT_EQ(pings.size(), 1u);
  EXPECT_EQ(pings[0].first, addr_of(3));
  EXPECT_EQ(pings[0].second.node, "t");
  // The target answers: the requester gets an ack with its own seq.
  h.feed(ack{pings[0].second.seq_no, std::nullopt}, 3);
  auto acks = h.sent_of<ack>();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].first, addr_of(2));
  EXPECT_EQ(acks[0].second.seq_no, 5u);
  h.advance(1s);
  EXPECT_TRUE(h.sent_of<nack>().empty());
  // Again, unanswered: a nack after the probe timeout.
  ind.seq_no = 6;
  h.feed(ind, 2);
  h.advance(499ms);
  EXPECT_TRUE(h.sent_of<nack>().empty());
  h.advance(1ms);
  auto nacks = h.sent_of<nack>();
  ASSERT_EQ(nacks.size(), 1u);
  EXPECT_EQ(nacks[0].second.seq_no, 6u);
  EXPECT_EQ(nacks[0].first, addr_of(2));
}

push_pull remote_state(uint8_t pcur) {
  push_pull pp;
  push_node_state n;
  n.name = "r";
  auto w_ep = addr_of(7);
  auto w = w_ep.wire_bytes();
  n.addr.assign(w.begin(), w.end());
  n.port = 7946;
  n.incarnation = 1;
  n.vsn = {1, 5, pcur, 0, 0, 0};
  pp.nodes.push_back(n);
  push_node_state d = n;
  d.name = "gone";
  d.state = node_state::dead;
  pp.nodes.push_back(d);
  return pp;
}

TEST(gossip_transitions, join_merges_push_pull_and_checks_versions) {
  harness h;
  std::array<ip_endpoint, 1> seeds{addr_of(7)};
  auto id = h.core->join(seeds, h.now);
  ASSERT_EQ(h.core->stream_requests().size(), 1u);
  auto req = h.core->stream_requests().front();
  h.core->stream_requests().clear();
  // What we sent is a push/pull with join set and ourselves in it.
  auto sent = decode_stream(req.bytes);
  ASSERT_TRUE(sent && sent->has_value());
  auto* ours = std::get_if<push_pull>(&(*sent)->message);
  ASSERT_NE(ours, nullptr);
  EXPECT_TRUE(ours->join);
  ASSERT_EQ(ours->nodes.size(), 1u);
  EXPECT_EQ(ours->nodes[0].name, "me");
  // The answer, fed in two pieces.
  auto reply = encode_stream_message(remote_state(2));
  ASSERT_TRUE(reply);
  bytes_view all{*reply};
  EXPECT_FALSE(h.core->handle_stream_reply(req.id, all.first(10), h.now));
  EXPECT_TRUE(h.core->handle_stream_reply(req.id, all, h.now));
  h.collect();
  ASSERT_EQ(h.joins.size(), 1u);
  EXPECT_EQ(h.joins[0].id, id);
  EXPECT_EQ(h.joins[0].contacted, 1u);
  EXPECT_EQ(h.state_of("r"), node_state::alive);
  // Unknown "dead" entries are not adopted.
  EXPECT_EQ(h.core->find("gone"), nullptr);

  // A node speaking protocol 9 is refused.
  harness h2;
  h2.core->join(seeds, h2.now);
  auto req2 = h2.core->stream_requests().front();
  h2.core->stream_requests().clear();
  auto bad = encode_stream_message(remote_state(9));
  EXPECT_TRUE(h2.core->handle_stream_reply(req2.id, *bad, h2.now));
  h2.collect();
  ASSERT_EQ(h2.joins.size(), 1u);
  EXPECT_EQ(h2.joins[0].contacted, 0u);
  ASSERT_EQ(h2.joins[0].errors.size(), 1u);
  EXPECT_EQ(h2.joins[0].errors[0].code(), errc::unsupported_version);
  EXPECT_EQ(h2.core->find("r"), nullptr);
}

TEST(gossip_transitions, join_fails_cleanly_on_refusal_and_timeout) {
  harness h;
  std::array<ip_endpoint, 2> seeds{addr_of(7), addr_of(8)};
  h.core->join(seeds, h.now);
  ASSERT_EQ(h.core->stream_requests().size(), 2u);
  auto first = h.core->stream_requests()[0].id;
  h.core->stream_requests().clear();
  h.core->stream_failed(first, error{errc::connection_lost, "refused"}, h.now);
  h.collect();
  EXPECT_TRUE(h.joins.empty());
  h.advance(10s); // LAN tcp_timeout
  ASSERT_EQ(h.joins.size(), 1u);
  EXPECT_EQ(h.joins[0].contacted, 0u);
  ASSERT_EQ(h.joins[0].errors.size(), 2u);
  EXPECT_NE(h.joins[0].errors[0].context().find("10.0.0."), std::string::npos);
  std::vector<errc> codes{h.joins[0].errors[0].code(),
                          h.joins[0].errors[1].code()};
  EXPECT_NE(std::find(codes.begin(), codes.end(), errc::timeout), codes.end());
}

TEST(gossip_transitions, serves_push_pull_and_tcp_ping) {
  harness h;
  byte_buffer req;
  ASSERT_TRUE(append_message(req, remote_state(2)));
  bytes_view all{req};
  auto partial = h.core->handle_stream(addr_of(7), all.first(5), h.now);
  EXPECT_FALSE(partial.done);
  auto step = h.core->handle_stream(addr_of(7), all, h.now);
  ASSERT_TRUE(step.done);
  auto answer = decode_stream(step.reply);
  ASSERT_TRUE(answer && answer->has_value());
  EXPECT_TRUE((*answer)->compressed) << "Go compresses stream replies";
  auto* pp = std::get_if<push_pull>(&(*answer)->message);
  ASSERT_NE(pp, nullptr);
  EXPECT_EQ(pp->nodes.size(), 1u) << "our state before the merge";
  EXPECT_EQ(h.state_of("r"), node_state::alive);
  // TCP ping.
  ping p;
  p.seq_no = 9;
  p.node = "me";
  auto ping_bytes = encode_stream_message(p);
  auto pong = h.core->handle_stream(addr_of(7), *ping_bytes, h.now);
  ASSERT_TRUE(pong.done);
  auto pong_msg = decode_stream(pong.reply);
  ASSERT_TRUE(pong_msg && pong_msg->has_value());
  auto* a = std::get_if<ack>(&(*pong_msg)->message);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->seq_no, 9u);
  // Garbage gets an error reply and changes nothing.
  auto junk = bytes_of("\x63garbage");
  auto bad = h.core->handle_stream(addr_of(7), junk, h.now);
  ASSERT_TRUE(bad.done);
  auto err = decode_stream(bad.reply);
  ASSERT_TRUE(err && err->has_value());
  EXPECT_TRUE(std::holds_alternative<err_resp>((*err)->message));
}

TEST(gossip_transitions, garbage_and_wrong_keys_are_dropped_and_counted) {
  auto cfg = membership_config::lan_defaults();
  byte_buffer key(32, std::byte{7});
  ASSERT_TRUE(cfg.keys.install(key));
  harness h{cfg};
  auto before = h.core->members();
  std::vector<byte_buffer> inputs{
    {},
    bytes_of("\x01"),
    bytes_of("garbage that is not a packet at all, not even encrypted"),
    byte_buffer(1400, std::byte{0xff}),
  };
  // A well-formed packet under another key.
  keyring other;
  ASSERT_TRUE(other.install(byte_buffer(32, std::byte{8})));
  auto plain = encode_message(alive_msg("intruder", 9, 1));
  inputs.push_back(*encrypt_packet(*plain, other, 1, gcm_nonce{}));
  // And a plaintext one, refused because we require encryption.
  inputs.push_back(*plain);
  // A truncated encrypted packet under the right key.
  auto good = *encrypt_packet(*plain, h.core->config().keys, 1, gcm_nonce{});
  inputs.emplace_back(good.begin(), good.begin() + 20);
  for (const auto& in : inputs) {
    h.core->handle_datagram(addr_of(9), in, h.now);
  }
  h.collect();
  EXPECT_EQ(h.core->stats().packets_dropped, inputs.size());
  EXPECT_EQ(h.core->members(), before);
  // The right key works.
  h.core->handle_datagram(addr_of(9), good, h.now);
  EXPECT_NE(h.core->find("intruder"), nullptr);
}

TEST(gossip_transitions, leave_gossips_and_completes) {
  harness h;
  h.feed(alive_msg("a", 2, 1));
  h.core->leave(5s, h.now);
  h.collect();
  EXPECT_EQ(h.core->self().state, node_state::left);
  EXPECT_TRUE(h.core->has_left());
  EXPECT_TRUE(h.leaves.empty());
  auto leaves_sent = [&h] {
    size_t n = 0;
    for (auto& [to, d] : h.sent_of<dead>()) {
      n += d.node == "me" && d.from == "me" ? 1 : 0;
    }
    return n;
  };
  // Each live member is told at once, before any gossip round.
  EXPECT_EQ(leaves_sent(), 1u);
  // An alive about us does not undo the leave.
  h.feed(alive_msg("me", 1, 9));
  EXPECT_EQ(h.core->self().state, node_state::left);
  h.advance(5s);
  h.refuse_streams();
  ASSERT_EQ(h.leaves.size(), 1u);
  EXPECT_FALSE(h.leaves[0].timed_out) << "n = 2: 4 transmissions in 5 s";
  // The direct one, then the broadcast's retransmit limit (4 for n = 2).
  EXPECT_EQ(leaves_sent(), 5u);
  EXPECT_EQ(h.core->update_meta({}, h.now).error().code(), errc::shutting_down);
}

TEST(gossip_transitions, leave_alone_completes_at_once) {
  harness h;
  h.core->leave(5s, h.now);
  h.collect();
  ASSERT_EQ(h.leaves.size(), 1u);
  EXPECT_FALSE(h.leaves[0].timed_out);
}

TEST(gossip_transitions, update_meta_raises_incarnation_and_gossips) {
  harness h;
  h.feed(alive_msg("a", 2, 1));
  ASSERT_TRUE(h.core->update_meta(bytes_of("new"), h.now));
  EXPECT_EQ(h.core->self().incarnation, 2u);
  EXPECT_EQ(h.core->self().meta, bytes_of("new"));
  EXPECT_EQ(h.core->update_meta(byte_buffer(513), h.now).error().code(),
            errc::too_large);
  h.advance(1s);
  bool seen = false;
  for (auto& [to, a] : h.sent_of<alive>()) {
    seen = seen || (a.node == "me" && a.meta == bytes_of("new"));
  }
  EXPECT_TRUE(seen);
}

} // namespace
