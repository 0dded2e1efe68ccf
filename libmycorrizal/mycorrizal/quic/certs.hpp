// SPDX-License-Identifier: Apache-2.0
#pragma once

#include "mycorrizal/expected.hpp"
#include "mycorrizal/quic/fwd.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

/// Certificates for a cluster, made with the GnuTLS API: a CA (ECDSA P-256,
/// self-signed) and node certificates it signs (CN = SAN dNSName = node name,
/// key usage digitalSignature, extended key usage TLS web server and client,
/// so that one certificate serves both QUIC roles). Also prints what a
/// certificate contains. Used by `mycorrizal-certs` and by tests, which make
/// their certificates at run time.
namespace mycorrizal::quic {

/// A certificate and its private key, both PEM (key: unencrypted PKCS#8).
struct cert_and_key {
  std::string cert_pem;
  std::string key_pem;
};

/// Options for `make_ca`.
struct ca_options {
  /// Subject CN of the CA. Printable ASCII, 1..64 characters.
  std::string common_name = "Mycorrizal CA";
  /// Start of validity.
  std::chrono::system_clock::time_point not_before;
  /// Length of validity (default 10 years).
  std::chrono::seconds validity = std::chrono::hours{24 * 3650};
};

/// Options for `make_node_cert`.
struct node_options {
  /// Node name: CN and SAN dNSName; see `validate_node_name`.
  std::string name;
  /// Start of validity.
  std::chrono::system_clock::time_point not_before;
  /// Length of validity (default 1 year).
  std::chrono::seconds validity = std::chrono::hours{24 * 365};
};

/// Checks a node name: 1..64 characters from `A-Z a-z 0-9 . - _`, so that it
/// is valid as CN, as SAN dNSName, as file name and in logs.
/// @returns `errc::invalid_identifier` saying what is wrong.
expected<void> validate_node_name(std::string_view name);

/// Checks a CA common name: 1..64 printable ASCII characters (space
/// allowed, not at either end).
/// @returns `errc::invalid_identifier` saying what is wrong.
expected<void> validate_ca_name(std::string_view name);

/// Key pairs come from GnuTLS's own generator, which cannot be injected;
/// `rng` provides the serial numbers.
///
/// Creates a self-signed CA: new ECDSA P-256 key, basicConstraints CA:TRUE
/// (critical), key usage keyCertSign + cRLSign + digitalSignature, SHA-256
/// signature, 16-byte positive serial from `rng`.
/// @returns `errc::invalid_identifier` for a bad name, `errc::invalid_config`
///          for a non-positive validity or a GnuTLS failure (with its text).
expected<cert_and_key> make_ca(const ca_options& opts, const random_bytes& rng);

/// Issues a node certificate signed by `ca` (as returned by `make_ca` or read
/// from its files): new ECDSA P-256 key, CN = SAN dNSName = `opts.name`,
/// basicConstraints CA:FALSE, key usage digitalSignature, extended key usage
/// TLS web server + client, authority key id of the CA.
/// @returns `errc::invalid_identifier` for a bad name, `errc::invalid_config`
///          for an unparsable or non-CA `ca`, a CA key that does not match,
///          a bad validity, or a GnuTLS failure.
expected<cert_and_key> make_node_cert(const cert_and_key& ca,
                                      const node_options& opts,
                                      const random_bytes& rng);

/// What `inspect` finds in a certificate.
struct cert_info {
  std::string subject; ///< Full subject DN (RFC 4514).
  std::string common_name;
  std::string issuer;                 ///< Full issuer DN.
  std::vector<std::string> dns_names; ///< SAN dNSName entries.
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  std::string key_type; ///< e.g. "ECDSA P-256" or "RSA 2048".
  bool is_ca = false;
  bool tls_server = false; ///< EKU TLS web server (or no EKU at all).
  bool tls_client = false; ///< EKU TLS web client (or no EKU at all).
  std::string serial_hex;
  std::string sha256_fingerprint; ///< Upper-case hex, colon-separated.
};

/// Parses the first certificate of a PEM text.
/// @returns `errc::invalid_config` when there is none or it is unparsable.
expected<cert_info> inspect(std::string_view cert_pem);

/// Renders `info` as the `mycorrizal-certs show` lines ("subject: ...").
std::string to_string(const cert_info& info);

} // namespace mycorrizal::quic
