// SPDX-License-Identifier: Apache-2.0
// Suite quic.credentials: loading and validating CA bundle, certificate and
// key, with errors that say what is wrong.
#include "mycorrizal/quic/credentials.hpp"

#include "support/quic_harness.hpp"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace mycorrizal;
using namespace mycorrizal::quic;
using namespace std::chrono_literals;

namespace {

using test::certs;

auto now() {
  return std::chrono::system_clock::now();
}

std::string context_of(const expected<credentials>& x) {
  return x ? std::string{"(success)"} : x.error().context();
}

// A CA-signed certificate whose subject has no CN (only O=), made with
// GnuTLS directly because make_node_cert refuses empty names.
std::string cert_without_cn(const cert_and_key& ca, const std::string& key) {
  gnutls_x509_crt_t ca_crt = nullptr;
  gnutls_x509_privkey_t ca_key = nullptr;
  gnutls_x509_privkey_t node_key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  gnutls_x509_crt_init(&ca_crt);
  gnutls_x509_privkey_init(&ca_key);
  gnutls_x509_privkey_init(&node_key);
  gnutls_x509_crt_init(&crt);
  auto datum = [](const std::string& s) {
    return gnutls_datum_t{
      reinterpret_cast<unsigned char*>(const_cast<char*>(s.data())),
      static_cast<unsigned>(s.size())};
  };
  auto d1 = datum(ca.cert_pem);
  auto d2 = datum(ca.key_pem);
  auto d3 = datum(key);
  EXPECT_GE(gnutls_x509_crt_import(ca_crt, &d1, GNUTLS_X509_FMT_PEM), 0);
  EXPECT_GE(gnutls_x509_privkey_import2(ca_key, &d2, GNUTLS_X509_FMT_PEM,
                                        nullptr, GNUTLS_PKCS_PLAIN),
            0);
  EXPECT_GE(gnutls_x509_privkey_import2(node_key, &d3, GNUTLS_X509_FMT_PEM,
                                        nullptr, GNUTLS_PKCS_PLAIN),
            0);
  gnutls_x509_crt_set_version(crt, 3);
  unsigned char serial[] = {0x42};
  gnutls_x509_crt_set_serial(crt, serial, sizeof(serial));
  auto t = std::chrono::system_clock::to_time_t(now());
  gnutls_x509_crt_set_activation_time(crt, t - 3600);
  gnutls_x509_crt_set_expiration_time(crt, t + 3600);
  gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0,
                                "Mycorrizal", 10);
  gnutls_x509_crt_set_key(crt, node_key);
  EXPECT_GE(gnutls_x509_crt_sign2(crt, ca_crt, ca_key, GNUTLS_DIG_SHA256, 0),
            0);
  gnutls_datum_t out{nullptr, 0};
  EXPECT_GE(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &out), 0);
  std::string pem(reinterpret_cast<char*>(out.data), out.size);
  gnutls_free(out.data);
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(node_key);
  gnutls_x509_privkey_deinit(ca_key);
  gnutls_x509_crt_deinit(ca_crt);
  return pem;
}

} // namespace

TEST(quic_credentials, valid_pem_loads_and_names_the_node) {
  auto c = credentials::from_pem(certs().ca.cert_pem, certs().node_a.cert_pem,
                                 certs().node_a.key_pem, now());
  ASSERT_TRUE(c) << context_of(c);
  EXPECT_EQ(c->node_name(), "node-a");
  EXPECT_TRUE(c->has_certificate());
  EXPECT_GT(c->not_after(), now());
}

TEST(quic_credentials, unparsable_inputs_name_the_input) {
  auto c = credentials::from_pem("junk", certs().node_a.cert_pem,
                                 certs().node_a.key_pem, now());
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), errc::invalid_config);
  EXPECT_TRUE(context_of(c).starts_with("CA bundle: no PEM certificate"))
    << context_of(c);
  c = credentials::from_pem(certs().ca.cert_pem,
                            "-----BEGIN CERTIFICATE-----\nZm9v\n"
                            "-----END CERTIFICATE-----\n",
                            certs().node_a.key_pem, now());
  EXPECT_TRUE(context_of(c).starts_with("node certificate: unparsable PEM"))
    << context_of(c);
  c = credentials::from_pem(certs().ca.cert_pem, certs().node_a.cert_pem,
                            "-----BEGIN PRIVATE KEY-----\nZm9v\n"
                            "-----END PRIVATE KEY-----\n",
                            now());
  EXPECT_TRUE(context_of(c).starts_with("node key: unparsable PEM"))
    << context_of(c);
  // A node certificate is no CA bundle.
  c = credentials::from_pem(certs().node_b.cert_pem, certs().node_a.cert_pem,
                            certs().node_a.key_pem, now());
  EXPECT_NE(context_of(c).find("is not a CA certificate"), std::string::npos)
    << context_of(c);
}

TEST(quic_credentials, key_must_match_the_certificate) {
  auto c = credentials::from_pem(certs().ca.cert_pem, certs().node_a.cert_pem,
                                 certs().node_b.key_pem, now());
  ASSERT_FALSE(c);
  EXPECT_NE(context_of(c).find("does not match the node certificate"),
            std::string::npos)
    << context_of(c);
}

TEST(quic_credentials, validity_is_checked_against_the_given_time) {
  auto c = credentials::from_pem(certs().ca.cert_pem,
                                 certs().expired_a.cert_pem,
                                 certs().expired_a.key_pem, now());
  ASSERT_FALSE(c);
  EXPECT_NE(context_of(c).find("expired at"), std::string::npos)
    << context_of(c);
  c = credentials::from_pem(certs().ca.cert_pem, certs().future_a.cert_pem,
                            certs().future_a.key_pem, now());
  ASSERT_FALSE(c);
  EXPECT_NE(context_of(c).find("is not yet valid"), std::string::npos)
    << context_of(c);
  // The same certificate is fine at a time inside its validity.
  c = credentials::from_pem(certs().ca.cert_pem, certs().future_a.cert_pem,
                            certs().future_a.key_pem, now() + 24h + 1h);
  EXPECT_TRUE(c) << context_of(c);
}

TEST(quic_credentials, certificate_must_be_signed_by_the_bundle) {
  auto c = credentials::from_pem(certs().ca.cert_pem,
                                 certs().foreign_a.cert_pem,
                                 certs().foreign_a.key_pem, now());
  ASSERT_FALSE(c);
  EXPECT_NE(context_of(c).find("not signed by a CA of the bundle"),
            std::string::npos)
    << context_of(c);
  // A bundle with both CAs accepts either.
  auto bundle = certs().ca.cert_pem + certs().foreign_ca.cert_pem;
  c = credentials::from_pem(bundle, certs().foreign_a.cert_pem,
                            certs().foreign_a.key_pem, now());
  EXPECT_TRUE(c) << context_of(c);
}

TEST(quic_credentials, empty_cn_is_rejected) {
  auto pem = cert_without_cn(certs().ca, certs().node_c.key_pem);
  auto c = credentials::from_pem(certs().ca.cert_pem, pem,
                                 certs().node_c.key_pem, now());
  ASSERT_FALSE(c);
  EXPECT_NE(context_of(c).find("CN is empty"), std::string::npos)
    << context_of(c);
}

TEST(quic_credentials, files_load_and_missing_files_are_named) {
  auto dir = std::filesystem::temp_directory_path()
             / ("mycorrizal-creds-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto put = [&](const char* name, const std::string& text) {
    std::ofstream{dir / name} << text;
    return (dir / name).string();
  };
  auto ca = put("ca.pem", certs().ca.cert_pem);
  auto crt = put("node.pem", certs().node_a.cert_pem);
  auto key = put("node.key", certs().node_b.key_pem);
  auto c = credentials::from_files(ca, crt, (dir / "nope.key").string(), now());
  ASSERT_FALSE(c);
  EXPECT_NE(context_of(c).find((dir / "nope.key").string()), std::string::npos)
    << context_of(c);
  EXPECT_NE(context_of(c).find("No such file"), std::string::npos)
    << context_of(c);
  c = credentials::from_files(ca, crt, key, now());
  ASSERT_FALSE(c);
  EXPECT_TRUE(context_of(c).starts_with("node key (" + key + "): does not"))
    << context_of(c);
  key = put("node.key", certs().node_a.key_pem);
  c = credentials::from_files(ca, crt, key, now());
  EXPECT_TRUE(c) << context_of(c);
  std::filesystem::remove_all(dir);
}

TEST(quic_credentials, trust_only_has_no_name) {
  auto c = credentials::trust_only(certs().ca.cert_pem);
  ASSERT_TRUE(c) << context_of(c);
  EXPECT_FALSE(c->has_certificate());
  EXPECT_EQ(c->node_name(), "");
}
