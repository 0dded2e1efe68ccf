// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/quic/credentials.hpp"

#include "mycorrizal/quic/internal/credentials_state.hpp"
#include "mycorrizal/quic/internal/gnutls.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <sstream>

namespace mycorrizal::quic {

namespace internal {

namespace {

error bad(std::string text) {
  return error{errc::invalid_config, std::move(text)};
}

} // namespace

expected<std::vector<crt_ptr>> parse_certs(std::string_view pem,
                                           std::string_view what) {
  if (pem.find("-----BEGIN CERTIFICATE-----") == std::string_view::npos) {
    return unexpected{
      bad(fmt::format("{}: no PEM certificate found (expected a "
                      "'-----BEGIN CERTIFICATE-----' block)",
                      what))};
  }
  gnutls_x509_crt_t* list = nullptr;
  unsigned n = 0;
  auto data = as_datum(pem);
  auto rc = gnutls_x509_crt_list_import2(&list, &n, &data, GNUTLS_X509_FMT_PEM,
                                         0);
  if (rc < 0) {
    return unexpected{bad(fmt::format("{}: unparsable PEM certificate: {}",
                                      what, gnutls_text(rc)))};
  }
  std::vector<crt_ptr> result;
  result.reserve(n);
  for (unsigned i = 0; i < n; ++i) {
    result.emplace_back(list[i]);
  }
  gnutls_free(list);
  if (result.empty()) {
    return unexpected{bad(fmt::format("{}: no certificate found", what))};
  }
  return result;
}

expected<privkey_ptr> parse_key(std::string_view pem, std::string_view what) {
  if (pem.find("-----BEGIN") == std::string_view::npos
      || pem.find("PRIVATE KEY-----") == std::string_view::npos) {
    return unexpected{
      bad(fmt::format("{}: no PEM private key found (expected a "
                      "'-----BEGIN ... PRIVATE KEY-----' block)",
                      what))};
  }
  gnutls_x509_privkey_t key = nullptr;
  if (gnutls_x509_privkey_init(&key) < 0) {
    return unexpected{bad(fmt::format("{}: out of memory", what))};
  }
  privkey_ptr ptr{key};
  auto data = as_datum(pem);
  auto rc = gnutls_x509_privkey_import2(key, &data, GNUTLS_X509_FMT_PEM,
                                        nullptr, GNUTLS_PKCS_PLAIN);
  if (rc < 0) {
    return unexpected{bad(fmt::format("{}: unparsable PEM private key: {}",
                                      what, gnutls_text(rc)))};
  }
  return ptr;
}

std::chrono::system_clock::time_point not_before(gnutls_x509_crt_t crt) {
  return std::chrono::system_clock::from_time_t(
    gnutls_x509_crt_get_activation_time(crt));
}

std::chrono::system_clock::time_point not_after(gnutls_x509_crt_t crt) {
  return std::chrono::system_clock::from_time_t(
    gnutls_x509_crt_get_expiration_time(crt));
}

std::string format_time(std::chrono::system_clock::time_point t) {
  auto tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  auto n = std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return std::string(buf, n);
}

expected<void> check_validity(gnutls_x509_crt_t crt,
                              std::chrono::system_clock::time_point now,
                              std::string_view what) {
  auto nb = not_before(crt);
  auto na = not_after(crt);
  if (now < nb) {
    return unexpected{bad(
      fmt::format("{}: certificate '{}' is not yet valid (valid from {}, "
                  "now is {})",
                  what, common_name(crt), format_time(nb), format_time(now)))};
  }
  if (now > na) {
    return unexpected{
      bad(fmt::format("{}: certificate '{}' expired at {} (now is {})", what,
                      common_name(crt), format_time(na), format_time(now)))};
  }
  return {};
}

std::string verify_against(gnutls_x509_crt_t crt,
                           std::span<const crt_ptr> cas) {
  std::vector<gnutls_x509_crt_t> raw;
  raw.reserve(cas.size());
  for (const auto& ca : cas) {
    raw.push_back(ca.get());
  }
  unsigned status = 0;
  auto rc
    = gnutls_x509_crt_verify(crt, raw.data(), static_cast<unsigned>(raw.size()),
                             GNUTLS_VERIFY_DISABLE_TIME_CHECKS
                               | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS,
                             &status);
  if (rc < 0) {
    return gnutls_text(rc);
  }
  if (status == 0) {
    return {};
  }
  datum_guard out;
  if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
                                                   &out.d, 0)
      < 0) {
    return fmt::format("verification status {:#x}", status);
  }
  return out.text();
}

std::string verify_peer_certificate(gnutls_session_t sess,
                                    std::chrono::system_clock::time_point now,
                                    std::string& cn) {
  unsigned n = 0;
  const auto* certs = gnutls_certificate_get_peers(sess, &n);
  if (certs == nullptr || n == 0) {
    return "the peer sent no certificate";
  }
  auto leaf = new_crt();
  if (!leaf
      || gnutls_x509_crt_import(leaf.get(), &certs[0], GNUTLS_X509_FMT_DER)
           < 0) {
    return "the peer's certificate is unparsable";
  }
  cn = common_name(leaf.get());
  auto label = cn.empty() ? std::string{"(no CN)"} : "CN=" + cn;
  unsigned status = 0;
  if (auto rc = gnutls_certificate_verify_peers2(sess, &status); rc < 0) {
    return fmt::format("verifying the peer's certificate ({}) failed: {}",
                       label, gnutls_text(rc));
  }
  if (status != 0) {
    datum_guard out;
    std::string text = fmt::format("status {:#x}", status);
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509,
                                                     &out.d, 0)
        >= 0) {
      text = out.text();
    }
    return fmt::format("the peer's certificate ({}) is not signed by our "
                       "cluster CA: {}",
                       label, text);
  }
  if (auto ok = check_validity(leaf.get(), now, "the peer's certificate");
      !ok) {
    return ok.error().context();
  }
  return {};
}

} // namespace internal

namespace {

using namespace internal;

std::string describe(gnutls_x509_crt_t crt) {
  auto cn = common_name(crt);
  return cn.empty() ? std::string{"(no CN)"} : "CN=" + cn;
}

expected<std::vector<crt_ptr>> load_ca_bundle(std::string_view ca_pem) {
  auto cas = parse_certs(ca_pem, "CA bundle");
  if (!cas) {
    return cas;
  }
  for (size_t i = 0; i < cas->size(); ++i) {
    unsigned critical = 0;
    if (gnutls_x509_crt_get_ca_status((*cas)[i].get(), &critical) <= 0) {
      return unexpected{bad(fmt::format(
        "CA bundle: certificate {} ({}) is not a CA certificate (no "
        "basicConstraints CA:TRUE)",
        i + 1, describe((*cas)[i].get())))};
    }
  }
  return cas;
}

expected<cred_ptr> make_cred(std::span<const crt_ptr> cas) {
  gnutls_certificate_credentials_t raw = nullptr;
  if (gnutls_certificate_allocate_credentials(&raw) < 0) {
    return unexpected{bad("credentials: out of memory")};
  }
  cred_ptr cred{raw};
  std::vector<gnutls_x509_crt_t> list;
  for (const auto& ca : cas) {
    list.push_back(ca.get());
  }
  auto rc = gnutls_certificate_set_x509_trust(raw, list.data(),
                                              static_cast<int>(list.size()));
  if (rc < 0) {
    return unexpected{bad("CA bundle: GnuTLS rejected it: " + gnutls_text(rc))};
  }
  // Validity is checked against the connection's injected wall time.
  gnutls_certificate_set_verify_flags(
    raw, GNUTLS_VERIFY_DISABLE_TIME_CHECKS
           | GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS);
  return cred;
}

bool key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key) {
  unsigned char a[64];
  unsigned char b[64];
  size_t na = sizeof(a);
  size_t nb = sizeof(b);
  if (gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &na) < 0
      || gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &nb)
           < 0) {
    return false;
  }
  return na == nb && std::memcmp(a, b, na) == 0;
}

} // namespace

expected<credentials>
credentials::from_pem(std::string_view ca_pem, std::string_view cert_pem,
                      std::string_view key_pem, wall_time now) {
  auto cas = load_ca_bundle(ca_pem);
  if (!cas) {
    return unexpected{std::move(cas).error()};
  }
  auto chain = parse_certs(cert_pem, "node certificate");
  if (!chain) {
    return unexpected{std::move(chain).error()};
  }
  auto key = parse_key(key_pem, "node key");
  if (!key) {
    return unexpected{std::move(key).error()};
  }
  auto* leaf = chain->front().get();
  if (!key_matches(leaf, key->get())) {
    return unexpected{bad(fmt::format(
      "node key: does not match the node certificate ({}): the public key "
      "differs",
      describe(leaf)))};
  }
  if (auto ok = check_validity(leaf, now, "node certificate"); !ok) {
    return unexpected{ok.error()};
  }
  auto name = common_name(leaf);
  if (name.empty()) {
    return unexpected{bad(
      "node certificate: the subject CN is empty; it must be the node name")};
  }
  if (auto why = verify_against(leaf, *cas); !why.empty()) {
    return unexpected{bad(
      fmt::format("node certificate ({}): not signed by a CA of the bundle: {}",
                  describe(leaf), why))};
  }
  auto cred = make_cred(*cas);
  if (!cred) {
    return unexpected{std::move(cred).error()};
  }
  std::vector<gnutls_x509_crt_t> list;
  for (const auto& c : *chain) {
    list.push_back(c.get());
  }
  auto rc = gnutls_certificate_set_x509_key(
    cred->get(), list.data(), static_cast<int>(list.size()), key->get());
  if (rc < 0) {
    return unexpected{
      bad("node certificate: GnuTLS rejected it: " + gnutls_text(rc))};
  }
  auto st = std::make_shared<detail::credentials_state>();
  st->cred = std::move(*cred);
  st->node_name = std::move(name);
  st->has_certificate = true;
  st->not_after = internal::not_after(leaf);
  return credentials{std::move(st)};
}

expected<credentials> credentials::from_files(const std::string& ca_file,
                                              const std::string& cert_file,
                                              const std::string& key_file,
                                              wall_time now) {
  auto ca = read_file(ca_file);
  if (!ca) {
    return unexpected{std::move(ca).error()};
  }
  auto cert = read_file(cert_file);
  if (!cert) {
    return unexpected{std::move(cert).error()};
  }
  auto key = read_file(key_file);
  if (!key) {
    return unexpected{std::move(key).error()};
  }
  auto result = from_pem(*ca, *cert, *key, now);
  if (!result) {
    // Name the files: "CA bundle" -> "CA bundle (ca.pem)".
    auto ctx = result.error().context();
    auto tag = [&](std::string_view label, const std::string& path) {
      if (ctx.starts_with(label)) {
        ctx.insert(label.size(), " (" + path + ")");
        return true;
      }
      return false;
    };
    if (!tag("CA bundle", ca_file) && !tag("node certificate", cert_file)) {
      tag("node key", key_file);
    }
    return unexpected{error{result.error().code(), std::move(ctx)}};
  }
  return result;
}

expected<credentials> credentials::trust_only(std::string_view ca_pem) {
  auto cas = load_ca_bundle(ca_pem);
  if (!cas) {
    return unexpected{std::move(cas).error()};
  }
  auto cred = make_cred(*cas);
  if (!cred) {
    return unexpected{std::move(cred).error()};
  }
  auto st = std::make_shared<detail::credentials_state>();
  st->cred = std::move(*cred);
  return credentials{std::move(st)};
}

const std::string& credentials::node_name() const noexcept {
  return state_->node_name;
}

bool credentials::has_certificate() const noexcept {
  return state_->has_certificate;
}

credentials::wall_time credentials::not_after() const noexcept {
  return state_->not_after;
}

expected<std::string> read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    auto code = errno;
    return unexpected{
      bad(fmt::format("cannot read file '{}': {}", path, std::strerror(code)))};
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) {
    return unexpected{bad(fmt::format("cannot read file '{}'", path))};
  }
  return buf.str();
}

} // namespace mycorrizal::quic
