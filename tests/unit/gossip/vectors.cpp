// SPDX-License-Identifier: Apache-2.0
// The Go captures (tests/data/memberlist-vectors): every datagram and stream
// decodes to the recorded message, and re-encodes to the same bytes.
#include "mycorrizal/gossip/keyring.hpp"
#include "mycorrizal/gossip/lzw.hpp"
#include "mycorrizal/gossip/messages.hpp"
#include "mycorrizal/gossip/msgpack.hpp"
#include "mycorrizal/gossip/packet.hpp"
#include "mycorrizal/gossip/stream.hpp"

#include "hex.hpp"
#include "support/bytes.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using json = nlohmann::json;
using mycorrizal::test::from_hex;
using mycorrizal::test::hex;

namespace {

const std::filesystem::path vectors_dir{MYCORRIZAL_MEMBERLIST_VECTORS};

// The key of the encrypted captures: the bytes 0x00..0x1f.
keyring capture_keyring() {
  byte_buffer key;
  for (int i = 0; i < 32; ++i) {
    key.push_back(static_cast<std::byte>(i));
  }
  keyring ring;
  EXPECT_TRUE(ring.install(key));
  return ring;
}

std::vector<json> wire_events(const std::string& file) {
  std::vector<json> result;
  std::ifstream in{vectors_dir / file};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) {
      continue;
    }
    auto j = json::parse(line);
    if (j.value("event", "") == "wire") {
      result.push_back(std::move(j));
    }
  }
  return result;
}

std::string text(const byte_buffer& x) {
  return {reinterpret_cast<const char*>(x.data()), x.size()};
}

std::string ip_text(const byte_buffer& x) {
  if (x.size() == 4) {
    return std::to_string(static_cast<int>(x[0])) + "."
           + std::to_string(static_cast<int>(x[1])) + "."
           + std::to_string(static_cast<int>(x[2])) + "."
           + std::to_string(static_cast<int>(x[3]));
  }
  return "ipv6:" + hex(x);
}

std::vector<int> ints(const std::vector<uint8_t>& xs) {
  return {xs.begin(), xs.end()};
}

void expect_opt_text(const json& j, const std::optional<byte_buffer>& x) {
  if (j.is_null()) {
    EXPECT_FALSE(x.has_value());
  } else {
    ASSERT_TRUE(x.has_value());
    EXPECT_EQ(text(*x), j.get<std::string>());
  }
}

// Compares a decoded message with the capture's `body` fields.
struct body_checker {
  const json& b;

  void operator()(const ping& x) const {
    EXPECT_EQ(x.node, b.at("Node"));
    EXPECT_EQ(x.seq_no, b.at("SeqNo"));
    EXPECT_EQ(x.source_node, b.value("SourceNode", ""));
    EXPECT_EQ(x.source_port, b.value("SourcePort", 0));
    if (b.contains("SourceAddr")) {
      EXPECT_EQ(ip_text(x.source_addr), b.at("SourceAddr"));
    }
  }

  void operator()(const indirect_ping& x) const {
    EXPECT_EQ(x.node, b.at("Node"));
    EXPECT_EQ(x.seq_no, b.at("SeqNo"));
    EXPECT_EQ(x.nack, b.at("Nack"));
    EXPECT_EQ(x.port, b.at("Port"));
    EXPECT_EQ(ip_text(x.target), b.at("Target"));
    EXPECT_EQ(x.source_node, b.value("SourceNode", ""));
    EXPECT_EQ(x.source_port, b.value("SourcePort", 0));
  }

  void operator()(const ack& x) const {
    EXPECT_EQ(x.seq_no, b.at("SeqNo"));
    expect_opt_text(b.at("Payload"), x.payload);
  }

  void operator()(const nack& x) const {
    EXPECT_EQ(x.seq_no, b.at("SeqNo"));
  }

  void operator()(const suspect& x) const {
    EXPECT_EQ(x.node, b.at("Node"));
    EXPECT_EQ(x.from, b.at("From"));
    EXPECT_EQ(x.incarnation, b.at("Incarnation"));
  }

  void operator()(const dead& x) const {
    EXPECT_EQ(x.node, b.at("Node"));
    EXPECT_EQ(x.from, b.at("From"));
    EXPECT_EQ(x.incarnation, b.at("Incarnation"));
  }

  void operator()(const alive& x) const {
    EXPECT_EQ(x.node, b.at("Node"));
    EXPECT_EQ(x.incarnation, b.at("Incarnation"));
    EXPECT_EQ(x.port, b.at("Port"));
    EXPECT_EQ(ip_text(x.addr), b.at("Addr"));
    expect_opt_text(b.at("Meta"), x.meta);
    EXPECT_EQ(ints(x.vsn), b.at("Vsn").get<std::vector<int>>());
  }

  void operator()(const user_msg&) const {
    ADD_FAILURE() << "no user messages in the capture";
  }

  void operator()(const push_pull&) const {
    ADD_FAILURE() << "unexpected push/pull";
  }

  void operator()(const err_resp& x) const {
    EXPECT_EQ(x.error, b.at("Error"));
  }
};

std::string type_name(const packet_message& m) {
  static constexpr const char* names[] = {
    "ping", "indirectPing", "ack", "nack", "suspect", "alive", "dead", "user"};
  return names[m.index()];
}

void check_push_pull(const json& m, const push_pull& x) {
  const auto& hdr = m.at("header");
  EXPECT_EQ(x.join, hdr.at("Join"));
  ASSERT_EQ(x.nodes.size(), hdr.at("Nodes").get<size_t>());
  EXPECT_EQ(x.user_state.size(), hdr.at("UserStateLen").get<size_t>());
  for (size_t i = 0; i < x.nodes.size(); ++i) {
    const auto& n = m.at("nodes").at(i);
    const auto& y = x.nodes[i];
    EXPECT_EQ(y.name, n.at("Name"));
    EXPECT_EQ(ip_text(y.addr), n.at("Addr"));
    EXPECT_EQ(y.port, n.at("Port"));
    EXPECT_EQ(y.incarnation, n.at("Incarnation"));
    EXPECT_EQ(static_cast<int>(y.state), n.at("State"));
    expect_opt_text(n.at("Meta"), y.meta);
    EXPECT_EQ(ints(y.vsn), n.at("Vsn").get<std::vector<int>>());
  }
}

// Decrypts a captured payload and re-encrypts it with the captured nonce:
// the bytes must match (AES-GCM is deterministic given key and nonce).
void check_reencrypt(bytes_view payload, const byte_buffer& plain,
                     const keyring& ring, bytes_view aad) {
  gcm_nonce nonce;
  std::copy_n(payload.begin() + 1, nonce.size(), nonce.begin());
  byte_buffer out;
  ASSERT_TRUE(encrypt_payload(out, static_cast<uint8_t>(payload[0]),
                              ring.primary(), nonce, plain, aad));
  EXPECT_EQ(hex(out), hex(payload));
}

// Every compress layer must re-compress to Go's exact LZW bytes.
void check_recompress(bytes_view msg, int depth = 0) {
  ASSERT_LT(depth, 8);
  if (msg.empty()) {
    return;
  }
  auto type = static_cast<message_type>(msg[0]);
  if (type == message_type::compress) {
    auto plain = decompress_message(msg, 1 << 20);
    ASSERT_TRUE(plain) << to_string(plain.error());
    auto again = compress_message(*plain);
    ASSERT_TRUE(again);
    EXPECT_EQ(hex(*again), hex(msg));
    check_recompress(*plain, depth + 1);
  } else if (type == message_type::compound) {
    auto parts = split_compound(msg);
    ASSERT_TRUE(parts);
    std::vector<byte_buffer> owned;
    for (auto p : parts->parts) {
      owned.emplace_back(p.begin(), p.end());
      check_recompress(p, depth + 1);
    }
    auto again = make_compound(owned);
    ASSERT_TRUE(again);
    EXPECT_EQ(hex(*again), hex(msg));
  } else if (type == message_type::has_crc) {
    auto inner = strip_crc(msg);
    ASSERT_TRUE(inner);
    EXPECT_EQ(hex(add_crc(*inner)), hex(msg));
    check_recompress(*inner, depth + 1);
  }
}

void check_udp(const json& ev, const keyring* ring, size_t& messages) {
  auto raw = from_hex(ev.at("raw_hex").get<std::string>());
  packet_options opts;
  opts.keys = ring;
  auto pkt = unwrap_packet(raw, opts);
  ASSERT_TRUE(pkt) << to_string(pkt.error()) << " for " << hex(raw);
  EXPECT_EQ(pkt->encrypted, ring != nullptr);
  EXPECT_EQ(pkt->dropped, 0u);
  const auto& msgs = ev.at("msgs");
  ASSERT_EQ(pkt->messages.size(), msgs.size()) << hex(raw);
  for (size_t i = 0; i < msgs.size(); ++i) {
    const auto& m = msgs[i];
    const auto& leaf = pkt->messages[i];
    EXPECT_EQ(hex(leaf), m.at("hex").get<std::string>());
    auto decoded = decode_packet_message(leaf);
    ASSERT_TRUE(decoded) << to_string(decoded.error()) << " for " << hex(leaf);
    EXPECT_EQ(type_name(*decoded), m.at("type").get<std::string>());
    std::visit(body_checker{m.at("body")}, *decoded);
    auto again = encode_packet_message(*decoded);
    ASSERT_TRUE(again);
    EXPECT_EQ(hex(*again), hex(leaf));
    ++messages;
  }
  byte_buffer plain = raw;
  if (ring != nullptr) {
    auto dec = decrypt_payload(*ring, raw, {});
    ASSERT_TRUE(dec);
    plain = *dec;
    check_reencrypt(raw, plain, *ring, {});
  }
  check_recompress(plain);
}

void check_tcp(const json& ev, const keyring* ring, size_t& messages) {
  auto raw = from_hex(ev.at("raw_hex").get<std::string>());
  stream_options opts;
  opts.keys = ring;
  // Every proper prefix asks for more bytes.
  for (size_t n :
       {size_t{0}, size_t{1}, size_t{4}, raw.size() / 2, raw.size() - 1}) {
    auto partial = decode_stream(bytes_view{raw}.first(n), opts);
    ASSERT_TRUE(partial) << n << ": " << to_string(partial.error());
    EXPECT_FALSE(partial->has_value()) << n;
  }
  auto res = decode_stream(raw, opts);
  ASSERT_TRUE(res) << to_string(res.error()) << " for " << hex(raw);
  ASSERT_TRUE(res->has_value());
  const auto& got = **res;
  EXPECT_EQ(got.consumed, raw.size());
  EXPECT_EQ(got.encrypted, ring != nullptr);
  const auto& m = ev.at("msg");
  auto inner = encode_stream_message(got.message);
  ASSERT_TRUE(inner);
  EXPECT_EQ(hex(*inner), m.at("hex").get<std::string>());
  if (m.contains("header")) {
    ASSERT_TRUE(std::holds_alternative<push_pull>(got.message));
    check_push_pull(m, std::get<push_pull>(got.message));
  } else {
    EXPECT_EQ(m.at("type"), "ping");
    ASSERT_TRUE(std::holds_alternative<ping>(got.message));
    body_checker{m.at("body")}(std::get<ping>(got.message));
  }
  // Re-frame exactly as Go did: compress (if it did), then encrypt with the
  // captured nonce and version.
  stream_send_options send;
  send.compress = got.compressed;
  send.keys = ring;
  if (ring != nullptr) {
    send.encryption_version = static_cast<uint8_t>(raw[5]);
    std::copy_n(raw.begin() + 6, send.nonce.size(), send.nonce.begin());
  }
  auto framed = frame_stream(*inner, send);
  ASSERT_TRUE(framed) << to_string(framed.error());
  EXPECT_EQ(hex(*framed), hex(raw));
  ++messages;
}

void run_capture(const std::string& file, bool encrypted) {
  // The captures are part of the repository: a missing one is a failure,
  // never a skip, so a broken checkout cannot pass without testing the codec.
  ASSERT_TRUE(std::filesystem::is_regular_file(vectors_dir / file))
    << "memberlist capture missing: " << (vectors_dir / file);
  auto events = wire_events(file);
  ASSERT_FALSE(events.empty()) << file;
  auto ring = capture_keyring();
  const keyring* keys = encrypted ? &ring : nullptr;
  size_t udp = 0;
  size_t tcp = 0;
  size_t messages = 0;
  for (const auto& ev : events) {
    SCOPED_TRACE(ev.at("raw_hex").get<std::string>());
    if (ev.at("proto") == "udp") {
      check_udp(ev, keys, messages);
      ++udp;
    } else {
      check_tcp(ev, keys, messages);
      ++tcp;
    }
  }
  EXPECT_GT(udp, 0u);
  EXPECT_GT(tcp, 0u);
  ::testing::Test::RecordProperty("datagrams", static_cast<int>(udp));
  ::testing::Test::RecordProperty("streams", static_cast<int>(tcp));
  ::testing::Test::RecordProperty("messages", static_cast<int>(messages));
}

} // namespace

TEST(gossip_vectors, plain_3nodes_lan) {
  run_capture("trace_sample_3nodes_lan.jsonl", false);
}

TEST(gossip_vectors, encrypted_v1) {
  run_capture("trace_encrypted_v1_2nodes.jsonl", true);
}

TEST(gossip_vectors, encrypted_v0) {
  run_capture("trace_encrypted_v0_2nodes.jsonl", true);
}
