// SPDX-License-Identifier: Apache-2.0
// Suite quic.certs: CA and node certificates made with the GnuTLS API.
#include "mycorrizal/quic/certs.hpp"

#include "support/quic_harness.hpp"

#include <gtest/gtest.h>

using namespace mycorrizal;
using namespace mycorrizal::quic;
using namespace std::chrono_literals;

namespace {

std::chrono::system_clock::time_point fixed_time() {
  // 2026-01-01 00:00:00 UTC
  return std::chrono::system_clock::from_time_t(1767225600);
}

} // namespace

TEST(quic_certs, ca_has_the_requested_fields) {
  auto ca = make_ca({"Cluster CA", fixed_time(), 24h * 10},
                    test::seeded_rng(7));
  ASSERT_TRUE(ca) << to_string(ca.error());
  EXPECT_NE(ca->cert_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(ca->key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  auto info = inspect(ca->cert_pem);
  ASSERT_TRUE(info) << to_string(info.error());
  EXPECT_EQ(info->common_name, "Cluster CA");
  EXPECT_EQ(info->subject, "CN=Cluster CA");
  EXPECT_EQ(info->issuer, "CN=Cluster CA");
  EXPECT_TRUE(info->is_ca);
  EXPECT_EQ(info->key_type, "ECDSA SECP256R1");
  EXPECT_EQ(info->not_before, fixed_time());
  EXPECT_EQ(info->not_after, fixed_time() + 24h * 10);
  EXPECT_EQ(info->sha256_fingerprint.size(), 32u * 3 - 1);
  EXPECT_EQ(info->serial_hex.size(), 32u);
}

TEST(quic_certs, node_cert_has_name_san_and_both_purposes) {
  auto rng = test::seeded_rng(8);
  auto ca = make_ca({"Cluster CA", fixed_time(), 24h * 10}, rng);
  ASSERT_TRUE(ca);
  auto node = make_node_cert(*ca, {"node-a", fixed_time() + 1h, 24h}, rng);
  ASSERT_TRUE(node) << to_string(node.error());
  auto info = inspect(node->cert_pem);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->common_name, "node-a");
  EXPECT_EQ(info->issuer, "CN=Cluster CA");
  ASSERT_EQ(info->dns_names.size(), 1u);
  EXPECT_EQ(info->dns_names[0], "node-a");
  EXPECT_FALSE(info->is_ca);
  EXPECT_TRUE(info->tls_server);
  EXPECT_TRUE(info->tls_client);
  EXPECT_EQ(info->not_before, fixed_time() + 1h);
  EXPECT_EQ(info->not_after, fixed_time() + 25h);
  auto text = to_string(*info);
  EXPECT_NE(text.find("common name: node-a"), std::string::npos) << text;
  EXPECT_NE(text.find("SAN:         DNS:node-a"), std::string::npos) << text;
  EXPECT_NE(text.find("TLS server, TLS client"), std::string::npos) << text;
}

TEST(quic_certs, serial_comes_from_the_injected_rng) {
  auto a = make_ca({"CA", fixed_time(), 24h}, test::seeded_rng(9));
  auto b = make_ca({"CA", fixed_time(), 24h}, test::seeded_rng(9));
  auto c = make_ca({"CA", fixed_time(), 24h}, test::seeded_rng(10));
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(inspect(a->cert_pem)->serial_hex, inspect(b->cert_pem)->serial_hex);
  EXPECT_NE(inspect(a->cert_pem)->serial_hex, inspect(c->cert_pem)->serial_hex);
}

TEST(quic_certs, names_are_validated) {
  EXPECT_TRUE(validate_node_name("node-1.dc_2"));
  EXPECT_EQ(validate_node_name("").error(), errc::invalid_identifier);
  EXPECT_EQ(validate_node_name(std::string(65, 'a')).error(),
            errc::invalid_identifier);
  auto bad = validate_node_name("node a");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().context().find("character 5"), std::string::npos)
    << bad.error().context();
  EXPECT_FALSE(validate_node_name("n\xc3\xa9"));
  EXPECT_TRUE(validate_ca_name("Mycorrizal Test CA"));
  EXPECT_FALSE(validate_ca_name(""));
  EXPECT_FALSE(validate_ca_name(" CA"));
  EXPECT_FALSE(validate_ca_name("C\nA"));
  auto rng = test::seeded_rng(1);
  auto ca = make_ca({"", fixed_time(), 24h}, rng);
  ASSERT_FALSE(ca);
  EXPECT_EQ(ca.error(), errc::invalid_identifier);
}

TEST(quic_certs, bad_inputs_are_reported) {
  auto rng = test::seeded_rng(11);
  auto ca = make_ca({"CA", fixed_time(), 24h}, rng);
  auto other = make_ca({"Other", fixed_time(), 24h}, rng);
  ASSERT_TRUE(ca && other);
  auto zero = make_ca({"CA", fixed_time(), 0s}, rng);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error(), errc::invalid_config);
  // The CA key of another CA.
  cert_and_key mixed{ca->cert_pem, other->key_pem};
  auto node = make_node_cert(mixed, {"node-a", fixed_time(), 24h}, rng);
  ASSERT_FALSE(node);
  EXPECT_NE(node.error().context().find("does not match"), std::string::npos)
    << node.error().context();
  // A node certificate is not a CA.
  auto leaf = make_node_cert(*ca, {"node-a", fixed_time(), 24h}, rng);
  ASSERT_TRUE(leaf);
  auto sub = make_node_cert(*leaf, {"node-b", fixed_time(), 24h}, rng);
  ASSERT_FALSE(sub);
  EXPECT_NE(sub.error().context().find("not a CA"), std::string::npos);
  auto garbage = inspect("hello");
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error(), errc::invalid_config);
  auto broken = inspect("-----BEGIN CERTIFICATE-----\nAAAA\n"
                        "-----END CERTIFICATE-----\n");
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().context().find("unparsable"), std::string::npos)
    << broken.error().context();
}
