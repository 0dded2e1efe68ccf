// SPDX-License-Identifier: Apache-2.0
// Certificates for tests that run real TLS, made at run time (no private key
// is committed): one cluster CA, a foreign CA, and node certificates issued
// on demand.
#pragma once

#include "mycorrizal/quic/certs.hpp"
#include "mycorrizal/quic/credentials.hpp"

#include <map>
#include <mutex>
#include <string>

namespace mycorrizal::test {

/// The process-wide test PKI. Every certificate is made once, on first use,
/// with `quic::make_ca` / `quic::make_node_cert` (serial numbers from a
/// seeded generator; keys from GnuTLS). Thread-safe.
class test_pki {
public:
  /// The instance of this process.
  static test_pki& get();

  /// The cluster CA ("Mycorrizal Test CA", valid from an hour ago for a
  /// year).
  const quic::cert_and_key& ca() const noexcept {
    return ca_;
  }

  /// A CA nobody trusts ("Foreign Test CA").
  const quic::cert_and_key& foreign_ca() const noexcept {
    return foreign_ca_;
  }

  /// Node `name`, signed by the cluster CA, valid from an hour ago for 30
  /// days.
  const quic::cert_and_key& node(const std::string& name);

  /// Node `name`, signed by the foreign CA (valid now).
  const quic::cert_and_key& foreign_node(const std::string& name);

  /// Node `name`, signed by the cluster CA, valid for ten days that ended
  /// ten days ago.
  const quic::cert_and_key& expired_node(const std::string& name);

  /// Credentials of `node(name)` trusting the cluster CA.
  quic::credentials credentials(const std::string& name);

  /// Credentials presenting `cert` and trusting `trust`, loaded at a wall
  /// time within `cert`'s validity (one second after its start), so that an
  /// expired certificate can still be presented; a peer checks it against
  /// its own clock. Aborts the test binary when loading fails (a broken
  /// test set-up, not a test result).
  static quic::credentials load(const quic::cert_and_key& cert,
                                const quic::cert_and_key& trust) {
    return load(cert, trust.cert_pem);
  }

  /// Like the other overload, trusting a PEM bundle of CA certificates
  /// (e.g. `ca().cert_pem + foreign_ca().cert_pem`, so that a node with a
  /// foreign certificate still accepts the cluster's servers).
  static quic::credentials load(const quic::cert_and_key& cert,
                                const std::string& ca_bundle_pem);

  /// Trusts the cluster CA, presents no certificate.
  quic::credentials trust_only() const;

private:
  test_pki();

  const quic::cert_and_key&
  issue(std::map<std::string, quic::cert_and_key>& cache,
        const quic::cert_and_key& ca, const std::string& name, bool expired);

  std::mutex mtx_;
  quic::random_bytes rng_;
  quic::cert_and_key ca_;
  quic::cert_and_key foreign_ca_;
  std::map<std::string, quic::cert_and_key> nodes_;
  std::map<std::string, quic::cert_and_key> foreign_nodes_;
  std::map<std::string, quic::cert_and_key> expired_nodes_;
};

} // namespace mycorrizal::test
