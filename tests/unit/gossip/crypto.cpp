// SPDX-License-Identifier: Apache-2.0
// Keyring and AES-GCM payloads (memberlist-wire.md §6).
#include "mycorrizal/gossip/keyring.hpp"
#include "mycorrizal/gossip/packet.hpp"

#include "hex.hpp"
#include "support/bytes.hpp"

#include <gtest/gtest.h>

using namespace mycorrizal;
using namespace mycorrizal::gossip;
using mycorrizal::test::from_hex;
using mycorrizal::test::hex;

namespace {

byte_buffer key(size_t n, uint8_t fill) {
  return byte_buffer(n, static_cast<std::byte>(fill));
}

gcm_nonce nonce(uint8_t fill) {
  gcm_nonce x;
  x.fill(static_cast<std::byte>(fill));
  return x;
}

byte_buffer ping_msg() {
  return from_hex("0082a44e6f6465a26e32a55365714e6f07");
}

} // namespace

TEST(gossip_keyring, install_use_remove) {
  keyring ring;
  EXPECT_TRUE(ring.empty());
  EXPECT_EQ(ring.install(key(15, 1)).error(), errc::invalid_config);
  ASSERT_TRUE(ring.install(key(16, 1)));
  ASSERT_TRUE(ring.install(key(24, 2)));
  ASSERT_TRUE(ring.install(key(32, 3)));
  ASSERT_TRUE(ring.install(key(32, 3))); // no-op
  EXPECT_EQ(ring.keys().size(), 3u);
  EXPECT_EQ(hex(ring.primary()), hex(key(16, 1)));
  ASSERT_TRUE(ring.use(key(32, 3)));
  EXPECT_EQ(hex(ring.primary()), hex(key(32, 3)));
  EXPECT_EQ(ring.remove(key(32, 3)).error(), errc::invalid_config);
  EXPECT_EQ(ring.use(key(32, 9)).error(), errc::invalid_config);
  ASSERT_TRUE(ring.remove(key(16, 1)));
  EXPECT_EQ(ring.keys().size(), 2u);
  EXPECT_EQ(ring.remove(key(16, 1)).error(), errc::invalid_config);
}

TEST(gossip_crypto, all_key_sizes_and_versions) {
  for (size_t n : {16u, 24u, 32u}) {
    for (uint8_t v : {0, 1}) {
      keyring ring;
      ASSERT_TRUE(ring.install(key(n, 7)));
      auto msg = ping_msg();
      auto enc = encrypt_packet(msg, ring, v, nonce(v));
      ASSERT_TRUE(enc);
      EXPECT_EQ(enc->size(), encrypted_size(v, msg.size()));
      EXPECT_EQ(static_cast<uint8_t>((*enc)[0]), v);
      auto dec = decrypt_payload(ring, *enc, {});
      ASSERT_TRUE(dec) << to_string(dec.error());
      EXPECT_EQ(hex(*dec), hex(msg));
    }
  }
  EXPECT_EQ(encrypted_size(1, 0), 29u);
  EXPECT_EQ(encrypted_size(0, 0), 45u);
  EXPECT_EQ(encrypted_size(0, 16), 61u);
}

TEST(gossip_crypto, decrypts_with_any_installed_key) {
  keyring sender;
  ASSERT_TRUE(sender.install(key(32, 2)));
  auto enc = encrypt_packet(ping_msg(), sender, 1, nonce(1));
  ASSERT_TRUE(enc);
  keyring receiver;
  ASSERT_TRUE(receiver.install(key(16, 1)));
  auto wrong = unwrap_packet(*enc, {&receiver, true, {}, {}, false});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error(), errc::decrypt_failed);
  ASSERT_TRUE(receiver.install(key(32, 2)));
  auto ok = unwrap_packet(*enc, {&receiver, true, {}, {}, false});
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->encrypted);
  ASSERT_EQ(ok->messages.size(), 1u);
  EXPECT_EQ(hex(ok->messages[0]), hex(ping_msg()));
}

TEST(gossip_crypto, verify_incoming_off_accepts_plaintext) {
  keyring ring;
  ASSERT_TRUE(ring.install(key(16, 1)));
  packet_options opts{&ring, true, {}, {}, false};
  EXPECT_FALSE(unwrap_packet(ping_msg(), opts));
  opts.verify_incoming = false;
  auto res = unwrap_packet(ping_msg(), opts);
  ASSERT_TRUE(res);
  EXPECT_FALSE(res->encrypted);
}

TEST(gossip_crypto, tampering_and_short_payloads) {
  keyring ring;
  ASSERT_TRUE(ring.install(key(16, 1)));
  auto enc = *encrypt_packet(ping_msg(), ring, 1, nonce(3));
  for (size_t i : {size_t{1}, size_t{13}, enc.size() - 1}) {
    auto bad = enc;
    bad[i] ^= std::byte{0x40};
    EXPECT_EQ(decrypt_payload(ring, bad, {}).error(), errc::decrypt_failed);
  }
  EXPECT_EQ(decrypt_payload(ring, bytes_view{enc}.first(28), {}).error(),
            errc::malformed_frame);
  EXPECT_EQ(decrypt_payload(ring, {}, {}).error(), errc::malformed_frame);
  auto v0 = *encrypt_packet(ping_msg(), ring, 0, nonce(3));
  EXPECT_EQ(decrypt_payload(ring, bytes_view{v0}.first(44), {}).error(),
            errc::malformed_frame);
  auto v2 = enc;
  v2[0] = std::byte{2};
  EXPECT_EQ(decrypt_payload(ring, v2, {}).error(), errc::unsupported_version);
  // AAD must match.
  EXPECT_FALSE(decrypt_payload(ring, enc, from_hex("0a")));
  EXPECT_EQ(decrypt_payload(keyring{}, enc, {}).error(), errc::invalid_config);
  EXPECT_EQ(encrypt_packet(ping_msg(), keyring{}, 1, nonce(0)).error(),
            errc::invalid_config);
  EXPECT_EQ(encrypt_packet(ping_msg(), ring, 2, nonce(0)).error(),
            errc::unsupported_version);
}
