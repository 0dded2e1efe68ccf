// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/gossip/keyring.hpp"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <algorithm>
#include <memory>

namespace mycorrizal::gossip {

namespace {

bool same(bytes_view x, bytes_view y) noexcept {
  return std::equal(x.begin(), x.end(), y.begin(), y.end());
}

struct cipher_deleter {
  void operator()(api_aead_cipher_hd_st* h) const noexcept {
    gnutls_aead_cipher_deinit(h);
  }
};

using cipher_ptr = std::unique_ptr<api_aead_cipher_hd_st, cipher_deleter>;

cipher_ptr make_cipher(bytes_view key) {
  gnutls_cipher_algorithm_t algo = GNUTLS_CIPHER_UNKNOWN;
  switch (key.size()) {
    case 16: algo = GNUTLS_CIPHER_AES_128_GCM; break;
    case 24: algo = GNUTLS_CIPHER_AES_192_GCM; break;
    case 32: algo = GNUTLS_CIPHER_AES_256_GCM; break;
    default: return nullptr;
  }
  gnutls_datum_t datum{const_cast<unsigned char*>(
                         reinterpret_cast<const unsigned char*>(key.data())),
                       static_cast<unsigned>(key.size())};
  gnutls_aead_cipher_hd_t h = nullptr;
  if (gnutls_aead_cipher_init(&h, algo, &datum) < 0) {
    return nullptr;
  }
  return cipher_ptr{h};
}

size_t min_size(uint8_t version) noexcept {
  // version + nonce + tag, plus at least one block of padding for version 0.
  return 1 + gcm_nonce_size + gcm_tag_size + (version == 0 ? 16 : 0);
}

} // namespace

// -- keyring
// --------------------------------------------------------------------

expected<void> keyring::validate_key(bytes_view key) {
  switch (key.size()) {
    case 16:
    case 24:
    case 32: return {};
    default:
      return unexpected{error{errc::invalid_config,
                              "keyring: key size must be 16, 24 or 32 bytes"}};
  }
}

expected<void> keyring::install(bytes_view key) {
  if (auto res = validate_key(key); !res) {
    return res;
  }
  for (const auto& k : keys_) {
    if (same(k, key)) {
      return {};
    }
  }
  keys_.emplace_back(key.begin(), key.end());
  return {};
}

expected<void> keyring::use(bytes_view key) {
  for (auto i = keys_.begin(); i != keys_.end(); ++i) {
    if (same(*i, key)) {
      std::rotate(keys_.begin(), i, i + 1);
      return {};
    }
  }
  return unexpected{
    error{errc::invalid_config, "keyring: requested key is not installed"}};
}

expected<void> keyring::remove(bytes_view key) {
  for (auto i = keys_.begin(); i != keys_.end(); ++i) {
    if (same(*i, key)) {
      if (i == keys_.begin()) {
        return unexpected{
          error{errc::invalid_config,
                "keyring: removing the primary key is not allowed"}};
      }
      std::fill(i->begin(), i->end(), std::byte{0});
      keys_.erase(i);
      return {};
    }
  }
  return unexpected{
    error{errc::invalid_config, "keyring: requested key is not installed"}};
}

bytes_view keyring::primary() const noexcept {
  if (keys_.empty()) {
    return {};
  }
  return keys_.front();
}

// -- payloads
// -------------------------------------------------------------------

size_t encrypted_size(uint8_t version, size_t plaintext_size) noexcept {
  auto body = plaintext_size;
  if (version == 0) {
    body += 16 - plaintext_size % 16;
  }
  return 1 + gcm_nonce_size + body + gcm_tag_size;
}

expected<void> encrypt_payload(byte_buffer& out, uint8_t version,
                               bytes_view key, const gcm_nonce& nonce,
                               bytes_view plaintext, bytes_view aad) {
  if (version > 1) {
    return errc::unsupported_version;
  }
  auto cipher = make_cipher(key);
  if (!cipher) {
    return unexpected{error{errc::invalid_config,
                            "keyring: key size must be 16, 24 or 32 bytes"}};
  }
  byte_buffer padded;
  if (version == 0) {
    padded.assign(plaintext.begin(), plaintext.end());
    auto pad = 16 - plaintext.size() % 16;
    padded.insert(padded.end(), pad, static_cast<std::byte>(pad));
    plaintext = padded;
  }
  auto start = out.size();
  out.push_back(static_cast<std::byte>(version));
  out.insert(out.end(), nonce.begin(), nonce.end());
  auto ct_pos = out.size();
  out.resize(ct_pos + plaintext.size() + gcm_tag_size);
  size_t ct_len = plaintext.size() + gcm_tag_size;
  auto rc = gnutls_aead_cipher_encrypt(cipher.get(), nonce.data(), nonce.size(),
                                       aad.data(), aad.size(), gcm_tag_size,
                                       plaintext.data(), plaintext.size(),
                                       out.data() + ct_pos, &ct_len);
  if (rc < 0 || ct_len != plaintext.size() + gcm_tag_size) {
    out.resize(start);
    return unexpected{error{errc::invalid_config, "AES-GCM encryption failed"}};
  }
  return {};
}

expected<byte_buffer> decrypt_payload(const keyring& ring, bytes_view payload,
                                      bytes_view aad) {
  if (ring.empty()) {
    return unexpected{error{errc::invalid_config, "keyring is empty"}};
  }
  if (payload.empty()) {
    return unexpected{
      error{errc::malformed_frame, "encrypted payload too short"}};
  }
  auto version = static_cast<uint8_t>(payload[0]);
  if (version > 1) {
    return errc::unsupported_version;
  }
  if (payload.size() < min_size(version)) {
    return unexpected{
      error{errc::malformed_frame, "encrypted payload too short"}};
  }
  auto nonce = payload.subspan(1, gcm_nonce_size);
  auto ct = payload.subspan(1 + gcm_nonce_size);
  byte_buffer plain(ct.size() - gcm_tag_size);
  for (const auto& key : ring.keys()) {
    auto cipher = make_cipher(key);
    if (!cipher) {
      continue;
    }
    size_t len = plain.size();
    auto rc = gnutls_aead_cipher_decrypt(cipher.get(), nonce.data(),
                                         nonce.size(), aad.data(), aad.size(),
                                         gcm_tag_size, ct.data(), ct.size(),
                                         plain.data(), &len);
    if (rc < 0) {
      continue;
    }
    plain.resize(len);
    if (version == 0) {
      // PKCS7: memberlist drops as many bytes as the last one says.
      size_t pad = plain.empty() ? 0 : static_cast<uint8_t>(plain.back());
      if (pad == 0 || pad > 16 || pad > plain.size()) {
        return unexpected{error{errc::malformed_frame, "bad PKCS7 padding"}};
      }
      plain.resize(plain.size() - pad);
    }
    return plain;
  }
  return unexpected{
    error{errc::decrypt_failed, "no installed key decrypts the payload"}};
}

} // namespace mycorrizal::gossip
