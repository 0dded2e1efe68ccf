// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/quic/cid_router.hpp"

#include <ngtcp2/ngtcp2.h>

#include <algorithm>
#include <array>

namespace mycorrizal::quic {

namespace {

/// The smallest datagram a client's first flight may come in (RFC 9000
/// §14.1); below it we never answer, so we never amplify.
constexpr size_t min_initial_size = 1200;

std::vector<std::byte> version_negotiation(const ngtcp2_version_cid& vc,
                                           const random_bytes& rng) {
  std::array<uint8_t, 256> buf{};
  std::array<uint32_t, 1> versions{NGTCP2_PROTO_VER_V1};
  std::array<std::byte, 1> unused{};
  rng(unused);
  // The reply swaps the ids: our source id is the client's destination id.
  auto n = ngtcp2_pkt_write_version_negotiation(
    buf.data(), buf.size(), static_cast<uint8_t>(unused[0]), vc.scid,
    vc.scidlen, vc.dcid, vc.dcidlen, versions.data(), versions.size());
  if (n <= 0) {
    return {};
  }
  auto* p = reinterpret_cast<const std::byte*>(buf.data());
  return {p, p + n};
}

} // namespace

cid_router::key cid_router::key_of(bytes_view x) {
  return key(reinterpret_cast<const char*>(x.data()), x.size());
}

route_result cid_router::classify(bytes_view data,
                                  const random_bytes& rng) const {
  route_result r;
  if (data.empty()) {
    // ngtcp2_pkt_decode_version_cid asserts a non-empty input.
    r.why = "empty datagram";
    return r;
  }
  auto* p = reinterpret_cast<const uint8_t*>(data.data());
  ngtcp2_version_cid vc{};
  auto rv = ngtcp2_pkt_decode_version_cid(&vc, p, data.size(), cid_length_);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (accept_ && data.size() >= min_initial_size) {
      r.reply = version_negotiation(vc, rng);
      if (!r.reply.empty()) {
        r.action = route_action::reply;
        return r;
      }
    }
    r.why = "unsupported QUIC version";
    return r;
  }
  if (rv != 0) {
    r.why = "not a QUIC packet";
    return r;
  }
  auto dcid = bytes_view{reinterpret_cast<const std::byte*>(vc.dcid),
                         vc.dcidlen};
  if (auto i = table_.find(key_of(dcid)); i != table_.end()) {
    r.action = route_action::deliver;
    r.id = i->second;
    return r;
  }
  if (!accept_) {
    r.why = "unknown connection id";
    return r;
  }
  // Only a client's first Initial starts a connection; ngtcp2_accept checks
  // the long header, the packet type and the 1200-byte minimum.
  ngtcp2_pkt_hd hd{};
  if (ngtcp2_accept(&hd, p, data.size()) != 0) {
    r.why = "unknown connection id";
    return r;
  }
  r.action = route_action::accept;
  r.dcid.assign(dcid.begin(), dcid.end());
  return r;
}

void cid_router::set_routes(connection_id id,
                            std::span<const std::vector<std::byte>> ids) {
  auto& mine = by_conn_[id];
  std::vector<key> now;
  now.reserve(ids.size());
  for (const auto& cid : ids) {
    now.push_back(key_of(cid));
  }
  for (const auto& k : mine) {
    if (std::find(now.begin(), now.end(), k) == now.end()) {
      if (auto i = table_.find(k); i != table_.end() && i->second == id) {
        table_.erase(i);
      }
    }
  }
  for (const auto& k : now) {
    table_[k] = id;
  }
  mine = std::move(now);
}

void cid_router::add_route(connection_id id, bytes_view cid) {
  auto k = key_of(cid);
  table_[k] = id;
  auto& mine = by_conn_[id];
  if (std::find(mine.begin(), mine.end(), k) == mine.end()) {
    mine.push_back(std::move(k));
  }
}

void cid_router::remove(connection_id id) {
  auto i = by_conn_.find(id);
  if (i == by_conn_.end()) {
    return;
  }
  for (const auto& k : i->second) {
    if (auto j = table_.find(k); j != table_.end() && j->second == id) {
      table_.erase(j);
    }
  }
  by_conn_.erase(i);
}

} // namespace mycorrizal::quic
