// SPDX-License-Identifier: Apache-2.0
// gossip_membership_fuzz: the membership core under arbitrary input
// sequences. The input is a script of operations (a datagram from one of a
// few peers, bytes on an accepted TCP connection, a reply to an exchange
// the core started, time passing). Checks: no crash or sanitizer report;
// we never consider ourselves anything but alive; our incarnation never
// decreases; the next deadline is never in the past after on_timeout.
#include "mycorrizal/gossip/membership.hpp"
#include "mycorrizal/gossip/messages.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using namespace std::chrono_literals;

namespace {

ip_endpoint peer(uint8_t i) {
  return ip_endpoint::v4(10, 0, 0, static_cast<uint8_t>(2 + i % 4), 7946);
}

std::unique_ptr<membership> make_core(time_point now) {
  auto cfg = membership_config::lan_defaults();
  cfg.name = "me";
  cfg.advertise = ip_endpoint::v4(10, 0, 0, 1, 7946);
  cfg.seed = 1;
  auto core = membership::make(std::move(cfg), now);
  if (!core) {
    std::abort();
  }
  // Three known peers, so probes, relays and suspicions have targets.
  for (uint8_t i = 0; i < 3; ++i) {
    alive a;
    a.incarnation = 1;
    a.node = "p" + std::to_string(i);
    auto w_ep = peer(i);
    auto w = w_ep.wire_bytes();
    a.addr.assign(w.begin(), w.end());
    a.port = 7946;
    a.vsn = default_vsn();
    auto bytes = encode_message(a);
    (*core)->handle_datagram(peer(i), *bytes, now);
  }
  return std::move(*core);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto now = time_point{} + 100s;
  auto core = make_core(now);
  uint32_t incarnation = core->self().incarnation;
  std::vector<uint64_t> streams;
  size_t pos = 0;
  while (pos + 2 <= size) {
    auto op = data[pos];
    size_t len = data[pos + 1];
    pos += 2;
    if (len > size - pos) {
      len = size - pos;
    }
    bytes_view body{reinterpret_cast<const std::byte*>(data + pos), len};
    pos += len;
    switch (op % 4) {
      case 0: core->handle_datagram(peer(op >> 2), body, now); break;
      case 1: (void)core->handle_stream(peer(op >> 2), body, now); break;
      case 2:
        if (!streams.empty()) {
          auto id = streams[(op >> 2) % streams.size()];
          (void)core->handle_stream_reply(id, body, now);
        }
        break;
      case 3:
        now += std::chrono::milliseconds{(op >> 2) * 37};
        core->on_timeout(now);
        if (core->next_deadline() <= now) {
          std::abort();
        }
        break;
    }
    for (auto& r : core->stream_requests()) {
      streams.push_back(r.id);
    }
    core->stream_requests().clear();
    core->outbox().clear();
    core->events().clear();
    if (core->self().state != node_state::alive
        || core->self().incarnation < incarnation) {
      std::abort();
    }
    incarnation = core->self().incarnation;
  }
  return 0;
}
