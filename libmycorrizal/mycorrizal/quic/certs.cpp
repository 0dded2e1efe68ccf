// SPDX-License-Identifier: Apache-2.0
#include "mycorrizal/quic/certs.hpp"

#include "mycorrizal/quic/internal/gnutls.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <ctime>

namespace mycorrizal::quic {

using namespace internal;

namespace {

constexpr size_t max_name_length = 64;

error failed(std::string_view what, int rc) {
  return error{errc::invalid_config,
               fmt::format("{}: {}", what, gnutls_text(rc))};
}

expected<privkey_ptr> new_p256_key() {
  gnutls_x509_privkey_t raw = nullptr;
  if (auto rc = gnutls_x509_privkey_init(&raw); rc < 0) {
    return unexpected{failed("key generation", rc)};
  }
  privkey_ptr key{raw};
  auto rc = gnutls_x509_privkey_generate(
    raw, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  if (rc < 0) {
    return unexpected{failed("ECDSA P-256 key generation", rc)};
  }
  return key;
}

expected<void> check_validity_span(std::chrono::seconds validity) {
  if (validity.count() <= 0) {
    return unexpected{error{errc::invalid_config,
                            fmt::format("validity must be positive, got {} s",
                                        validity.count())}};
  }
  return {};
}

// Sets version, serial, validity, subject CN and public key.
expected<void> fill_common(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key,
                           std::string_view cn,
                           std::chrono::system_clock::time_point not_before,
                           std::chrono::seconds validity,
                           const random_bytes& rng) {
  std::array<std::byte, 16> serial{};
  rng(serial);
  // Positive (top bit clear) and minimal (first byte not zero) DER INTEGER.
  serial[0] = (serial[0] & std::byte{0x7f}) | std::byte{0x40};
  auto start = std::chrono::system_clock::to_time_t(not_before);
  auto end = std::chrono::system_clock::to_time_t(not_before + validity);
  int rc = 0;
  if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0
      || (rc = gnutls_x509_crt_set_serial(crt, serial.data(), serial.size()))
           < 0
      || (rc = gnutls_x509_crt_set_activation_time(crt, start)) < 0
      || (rc = gnutls_x509_crt_set_expiration_time(crt, end)) < 0
      || (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
                                             0, cn.data(),
                                             static_cast<unsigned>(cn.size())))
           < 0
      || (rc = gnutls_x509_crt_set_key(crt, key)) < 0) {
    return unexpected{failed("certificate fields", rc)};
  }
  std::array<unsigned char, 64> id{};
  size_t id_size = id.size();
  if ((rc = gnutls_x509_crt_get_key_id(crt, 0, id.data(), &id_size)) < 0
      || (rc = gnutls_x509_crt_set_subject_key_id(crt, id.data(), id_size))
           < 0) {
    return unexpected{failed("subject key id", rc)};
  }
  return {};
}

expected<cert_and_key> export_pem(gnutls_x509_crt_t crt,
                                  gnutls_x509_privkey_t key) {
  cert_and_key result;
  datum_guard c;
  if (auto rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c.d);
      rc < 0) {
    return unexpected{failed("certificate export", rc)};
  }
  datum_guard k;
  if (auto rc = gnutls_x509_privkey_export2_pkcs8(
        key, GNUTLS_X509_FMT_PEM, nullptr, GNUTLS_PKCS_PLAIN, &k.d);
      rc < 0) {
    return unexpected{failed("key export", rc)};
  }
  result.cert_pem = c.str();
  result.key_pem = k.str();
  return result;
}

std::string hex(const unsigned char* data, size_t size, bool colons) {
  std::string out;
  for (size_t i = 0; i < size; ++i) {
    if (colons && i > 0) {
      out += ':';
    }
    out += fmt::format("{:02X}", data[i]);
  }
  return out;
}

} // namespace

namespace {

/// Checks a name for a certificate: 1..max_name_length characters, each
/// accepted by `allowed`; `what` names the name and `allowed_text` the
/// characters in errors.
template <class Allowed>
expected<void> validate_name(std::string_view name, std::string_view what,
                             Allowed allowed, std::string_view allowed_text) {
  if (name.empty()) {
    return unexpected{error{errc::invalid_identifier,
                            fmt::format("{}: must not be empty", what)}};
  }
  if (name.size() > max_name_length) {
    return unexpected{error{errc::invalid_identifier,
                            fmt::format("{}: at most {} characters, got {}",
                                        what, max_name_length, name.size())}};
  }
  for (size_t i = 0; i < name.size(); ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (!allowed(c)) {
      return unexpected{
        error{errc::invalid_identifier,
              fmt::format("{}: character {} (byte {:#04x}) is not {}", what,
                          i + 1, c, allowed_text)}};
    }
  }
  return {};
}

} // namespace

expected<void> validate_node_name(std::string_view name) {
  auto allowed = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
  };
  return validate_name(name, "node name", allowed, "one of A-Z a-z 0-9 . - _");
}

expected<void> validate_ca_name(std::string_view name) {
  auto allowed = [](unsigned char c) {
    return c >= 0x20 && c <= 0x7e;
  };
  if (auto ok = validate_name(name, "CA name", allowed, "printable ASCII");
      !ok) {
    return ok;
  }
  if (name.front() == ' ' || name.back() == ' ') {
    return unexpected{error{errc::invalid_identifier,
                            "CA name: must not start or end with a space"}};
  }
  return {};
}

expected<cert_and_key> make_ca(const ca_options& opts,
                               const random_bytes& rng) {
  if (auto ok = validate_ca_name(opts.common_name); !ok) {
    return unexpected{ok.error()};
  }
  if (auto ok = check_validity_span(opts.validity); !ok) {
    return unexpected{ok.error()};
  }
  auto key = new_p256_key();
  if (!key) {
    return unexpected{std::move(key).error()};
  }
  auto crt = new_crt();
  if (!crt) {
    return unexpected{error{errc::invalid_config, "out of memory"}};
  }
  if (auto ok = fill_common(crt.get(), key->get(), opts.common_name,
                            opts.not_before, opts.validity, rng);
      !ok) {
    return unexpected{ok.error()};
  }
  int rc = 0;
  if ((rc = gnutls_x509_crt_set_basic_constraints(crt.get(), 1, -1)) < 0
      || (rc = gnutls_x509_crt_set_key_usage(
            crt.get(), GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN
                         | GNUTLS_KEY_DIGITAL_SIGNATURE))
           < 0
      || (rc = gnutls_x509_crt_sign2(crt.get(), crt.get(), key->get(),
                                     GNUTLS_DIG_SHA256, 0))
           < 0) {
    return unexpected{failed("CA certificate", rc)};
  }
  return export_pem(crt.get(), key->get());
}

expected<cert_and_key> make_node_cert(const cert_and_key& ca,
                                      const node_options& opts,
                                      const random_bytes& rng) {
  if (auto ok = validate_node_name(opts.name); !ok) {
    return unexpected{ok.error()};
  }
  if (auto ok = check_validity_span(opts.validity); !ok) {
    return unexpected{ok.error()};
  }
  auto ca_crts = parse_certs(ca.cert_pem, "CA certificate");
  if (!ca_crts) {
    return unexpected{std::move(ca_crts).error()};
  }
  auto* ca_crt = ca_crts->front().get();
  unsigned critical = 0;
  if (gnutls_x509_crt_get_ca_status(ca_crt, &critical) <= 0) {
    return unexpected{
      error{errc::invalid_config,
            "CA certificate: not a CA (no basicConstraints CA:TRUE)"}};
  }
  auto ca_key = parse_key(ca.key_pem, "CA key");
  if (!ca_key) {
    return unexpected{std::move(ca_key).error()};
  }
  {
    std::array<unsigned char, 64> a{};
    std::array<unsigned char, 64> b{};
    size_t na = a.size();
    size_t nb = b.size();
    if (gnutls_x509_crt_get_key_id(ca_crt, GNUTLS_KEYID_USE_SHA256, a.data(),
                                   &na)
          < 0
        || gnutls_x509_privkey_get_key_id(
             ca_key->get(), GNUTLS_KEYID_USE_SHA256, b.data(), &nb)
             < 0
        || na != nb || !std::equal(a.begin(), a.begin() + na, b.begin())) {
      return unexpected{error{errc::invalid_config,
                              "CA key: does not match the CA certificate"}};
    }
  }
  auto key = new_p256_key();
  if (!key) {
    return unexpected{std::move(key).error()};
  }
  auto crt = new_crt();
  if (!crt) {
    return unexpected{error{errc::invalid_config, "out of memory"}};
  }
  if (auto ok = fill_common(crt.get(), key->get(), opts.name, opts.not_before,
                            opts.validity, rng);
      !ok) {
    return unexpected{ok.error()};
  }
  std::array<unsigned char, 64> aki{};
  size_t aki_size = aki.size();
  int rc = 0;
  if ((rc = gnutls_x509_crt_set_basic_constraints(crt.get(), 0, -1)) < 0
      || (rc = gnutls_x509_crt_set_key_usage(crt.get(),
                                             GNUTLS_KEY_DIGITAL_SIGNATURE))
           < 0
      || (rc = gnutls_x509_crt_set_key_purpose_oid(crt.get(),
                                                   GNUTLS_KP_TLS_WWW_SERVER, 0))
           < 0
      || (rc = gnutls_x509_crt_set_key_purpose_oid(crt.get(),
                                                   GNUTLS_KP_TLS_WWW_CLIENT, 0))
           < 0
      || (rc = gnutls_x509_crt_set_subject_alt_name(
            crt.get(), GNUTLS_SAN_DNSNAME, opts.name.data(),
            static_cast<unsigned>(opts.name.size()), GNUTLS_FSAN_SET))
           < 0) {
    return unexpected{failed("node certificate", rc)};
  }
  if (gnutls_x509_crt_get_subject_key_id(ca_crt, aki.data(), &aki_size,
                                         &critical)
      >= 0) {
    if ((rc = gnutls_x509_crt_set_authority_key_id(crt.get(), aki.data(),
                                                   aki_size))
        < 0) {
      return unexpected{failed("authority key id", rc)};
    }
  }
  if ((rc = gnutls_x509_crt_sign2(crt.get(), ca_crt, ca_key->get(),
                                  GNUTLS_DIG_SHA256, 0))
      < 0) {
    return unexpected{failed("signing the node certificate", rc)};
  }
  return export_pem(crt.get(), key->get());
}

expected<cert_info> inspect(std::string_view cert_pem) {
  auto crts = parse_certs(cert_pem, "certificate");
  if (!crts) {
    return unexpected{std::move(crts).error()};
  }
  auto* crt = crts->front().get();
  cert_info info;
  {
    datum_guard d;
    if (gnutls_x509_crt_get_dn3(crt, &d.d, 0) >= 0) {
      info.subject = d.str();
    }
  }
  {
    datum_guard d;
    if (gnutls_x509_crt_get_issuer_dn3(crt, &d.d, 0) >= 0) {
      info.issuer = d.str();
    }
  }
  info.common_name = common_name(crt);
  for (unsigned i = 0;; ++i) {
    char buf[512];
    size_t size = sizeof(buf);
    unsigned critical = 0;
    auto type = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size,
                                                     &critical);
    if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
      break;
    }
    if (type < 0) {
      continue;
    }
    if (type == GNUTLS_SAN_DNSNAME) {
      info.dns_names.emplace_back(buf, size);
    }
  }
  info.not_before = internal::not_before(crt);
  info.not_after = internal::not_after(crt);
  unsigned bits = 0;
  auto pk = gnutls_x509_crt_get_pk_algorithm(crt, &bits);
  if (pk == GNUTLS_PK_ECDSA) {
    gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
    datum_guard x;
    datum_guard y;
    if (gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x.d, &y.d) >= 0) {
      auto* name = gnutls_ecc_curve_get_name(curve);
      info.key_type = fmt::format("ECDSA {}", name ? name : "unknown curve");
    } else {
      info.key_type = "ECDSA";
    }
  } else {
    auto* name = gnutls_pk_get_name(static_cast<gnutls_pk_algorithm_t>(pk));
    info.key_type = fmt::format("{} {}", name ? name : "unknown", bits);
  }
  unsigned critical = 0;
  info.is_ca = gnutls_x509_crt_get_ca_status(crt, &critical) > 0;
  bool any_eku = false;
  for (unsigned i = 0;; ++i) {
    char buf[128];
    size_t size = sizeof(buf);
    auto rc = gnutls_x509_crt_get_key_purpose_oid(crt, i, buf, &size,
                                                  &critical);
    if (rc < 0) {
      break;
    }
    any_eku = true;
    std::string_view oid{buf, size};
    while (!oid.empty() && oid.back() == '\0') {
      oid.remove_suffix(1);
    }
    if (oid == GNUTLS_KP_TLS_WWW_SERVER) {
      info.tls_server = true;
    } else if (oid == GNUTLS_KP_TLS_WWW_CLIENT) {
      info.tls_client = true;
    }
  }
  if (!any_eku) {
    info.tls_server = info.tls_client = true;
  }
  {
    std::array<unsigned char, 64> serial{};
    size_t size = serial.size();
    if (gnutls_x509_crt_get_serial(crt, serial.data(), &size) >= 0) {
      info.serial_hex = hex(serial.data(), size, false);
    }
  }
  {
    std::array<unsigned char, 32> fp{};
    size_t size = fp.size();
    if (gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp.data(),
                                        &size)
        >= 0) {
      info.sha256_fingerprint = hex(fp.data(), size, true);
    }
  }
  return info;
}

std::string to_string(const cert_info& info) {
  std::string sans;
  for (const auto& n : info.dns_names) {
    if (!sans.empty()) {
      sans += ", ";
    }
    sans += "DNS:" + n;
  }
  std::string purposes;
  if (info.tls_server) {
    purposes = "TLS server";
  }
  if (info.tls_client) {
    purposes += purposes.empty() ? "TLS client" : ", TLS client";
  }
  return fmt::format("subject:     {}\n"
                     "common name: {}\n"
                     "issuer:      {}\n"
                     "SAN:         {}\n"
                     "not before:  {}\n"
                     "not after:   {}\n"
                     "key:         {}\n"
                     "CA:          {}\n"
                     "purposes:    {}\n"
                     "serial:      {}\n"
                     "SHA-256:     {}\n",
                     info.subject, info.common_name, info.issuer,
                     sans.empty() ? "(none)" : sans,
                     format_time(info.not_before), format_time(info.not_after),
                     info.key_type, info.is_ca ? "yes" : "no",
                     purposes.empty() ? "(none)" : purposes, info.serial_hex,
                     info.sha256_fingerprint);
}

} // namespace mycorrizal::quic
