// SPDX-License-Identifier: Apache-2.0
// gossip_decode_fuzz: the memberlist decoders under arbitrary bytes. Checks:
// no crash or sanitizer report; every decoded leaf re-encodes and decodes to
// the same value; the stream decoder agrees on prefixes (a prefix of an
// accepted message asks for more bytes or fails, never yields a message);
// node meta round-trips.
#include "mycorrizal/gossip/keyring.hpp"
#include "mycorrizal/gossip/lzw.hpp"
#include "mycorrizal/gossip/node_meta.hpp"
#include "mycorrizal/gossip/packet.hpp"
#include "mycorrizal/gossip/stream.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

using namespace mycorrizal::gossip;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bytes_view in{reinterpret_cast<const std::byte*>(data), size};
  packet_options popts;
  popts.limits.max_decompressed = 1 << 16;
  if (auto pkt = unwrap_packet(in, popts)) {
    for (const auto& leaf : pkt->messages) {
      auto msg = decode_packet_message(leaf);
      if (!msg) {
        continue;
      }
      auto again = encode_packet_message(*msg);
      if (!again) {
        continue; // e.g. a Vsn that is not 6 bytes: we never send it
      }
      auto back = decode_packet_message(*again);
      if (!back || !(*back == *msg)) {
        std::abort();
      }
    }
  }
  stream_options sopts;
  sopts.limits.max_decompressed = 1 << 16;
  sopts.limits.max_nodes = 1024;
  if (auto res = decode_stream(in, sopts); res && res->has_value()) {
    auto consumed = (*res)->consumed;
    if (consumed == 0 || consumed > size) {
      std::abort();
    }
    if (!(*res)->compressed) {
      auto shorter = decode_stream(in.first(consumed - 1), sopts);
      if (shorter && shorter->has_value()) {
        std::abort();
      }
    }
  }
  // A fixed key so that the fuzzer can reach the decryption error paths.
  keyring ring;
  (void)ring.install(
    bytes_view{reinterpret_cast<const std::byte*>("0123456789abcdef"), 16});
  (void)decrypt_payload(ring, in, {});
  (void)lzw_decompress(in, 1 << 16);
  // Mycorrizal's node meta: what decodes re-encodes to the same value
  // (unknown tags are dropped on the way, known fields survive).
  if (auto meta = decode_node_meta(in); meta && meta->has_value()) {
    auto again = encode_node_meta(**meta);
    if (again) {
      auto back = decode_node_meta(*again);
      if (!back || !back->has_value() || !(**back == **meta)) {
        std::abort();
      }
    }
  }
  return 0;
}
