// SPDX-License-Identifier: Apache-2.0
// RAII wrappers for GnuTLS handles, shared by the quic/*.cpp files. Internal:
// never installed (STYLE.md §E: GnuTLS headers stay out of public headers).
#pragma once

#include "mycorrizal/expected.hpp"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mycorrizal::quic::internal {

struct crt_deleter {
  void operator()(gnutls_x509_crt_int* x) const noexcept {
    gnutls_x509_crt_deinit(x);
  }
};

struct privkey_deleter {
  void operator()(gnutls_x509_privkey_int* x) const noexcept {
    gnutls_x509_privkey_deinit(x);
  }
};

struct cred_deleter {
  void operator()(gnutls_certificate_credentials_st* x) const noexcept {
    gnutls_certificate_free_credentials(x);
  }
};

struct session_deleter {
  void operator()(gnutls_session_int* x) const noexcept {
    gnutls_deinit(x);
  }
};

/// Frees a `gnutls_datum_t` that GnuTLS allocated.
struct datum_guard {
  gnutls_datum_t d{nullptr, 0};
  datum_guard() = default;
  datum_guard(const datum_guard&) = delete;
  datum_guard& operator=(const datum_guard&) = delete;
  ~datum_guard() {
    gnutls_free(d.data);
  }
  std::string str() const {
    return std::string(reinterpret_cast<const char*>(d.data), d.size);
  }
  /// The text without trailing whitespace and NULs (GnuTLS messages).
  std::string text() const {
    auto s = str();
    while (!s.empty()
           && (s.back() == ' ' || s.back() == '\n' || s.back() == '\0')) {
      s.pop_back();
    }
    return s;
  }
};

using crt_ptr = std::unique_ptr<gnutls_x509_crt_int, crt_deleter>;
using privkey_ptr = std::unique_ptr<gnutls_x509_privkey_int, privkey_deleter>;
using cred_ptr
  = std::unique_ptr<gnutls_certificate_credentials_st, cred_deleter>;
using session_ptr = std::unique_ptr<gnutls_session_int, session_deleter>;

/// A datum viewing `text` (GnuTLS takes non-const pointers it does not
/// modify).
inline gnutls_datum_t as_datum(std::string_view text) noexcept {
  return gnutls_datum_t{const_cast<unsigned char*>(
                          reinterpret_cast<const unsigned char*>(text.data())),
                        static_cast<unsigned>(text.size())};
}

/// "GnuTLS error text (code)".
inline std::string gnutls_text(int rc) {
  return std::string{gnutls_strerror(rc)} + " (" + std::to_string(rc) + ")";
}

/// A new, empty certificate handle.
inline crt_ptr new_crt() {
  gnutls_x509_crt_t x = nullptr;
  if (gnutls_x509_crt_init(&x) < 0) {
    return nullptr;
  }
  return crt_ptr{x};
}

/// The certificate's subject CN ("" when it has none).
inline std::string common_name(gnutls_x509_crt_t crt) {
  char buf[1024];
  size_t size = sizeof(buf);
  if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf,
                                    &size)
      < 0) {
    return {};
  }
  return std::string(buf, size);
}

/// Parses every PEM certificate in `pem`; `what` names the input in errors.
/// @returns `errc::invalid_config` when there is none or one is unparsable.
expected<std::vector<crt_ptr>> parse_certs(std::string_view pem,
                                           std::string_view what);

/// Parses a PEM private key (PKCS#8, SEC1 or PKCS#1).
/// @returns `errc::invalid_config` when it is unparsable.
expected<privkey_ptr> parse_key(std::string_view pem, std::string_view what);

/// The certificate's validity as system-clock times.
std::chrono::system_clock::time_point not_before(gnutls_x509_crt_t crt);
std::chrono::system_clock::time_point not_after(gnutls_x509_crt_t crt);

/// UTC time as `2026-11-21 18:04:52 UTC`.
std::string format_time(std::chrono::system_clock::time_point t);

/// Checks that `crt` is valid at `now`; `what` names it in the error.
/// @returns `errc::invalid_config` when it is expired or not yet valid.
expected<void> check_validity(gnutls_x509_crt_t crt,
                              std::chrono::system_clock::time_point now,
                              std::string_view what);

/// Checks the signature chain of `crt` against the CA list (time checks
/// disabled: `check_validity` does them against an injected time).
/// @returns an empty string when `crt` is signed by one of `cas`, else a
///          GnuTLS explanation ("The certificate issuer is unknown.").
std::string verify_against(gnutls_x509_crt_t crt, std::span<const crt_ptr> cas);

/// Checks the peer certificate of a session whose handshake got it: sent,
/// parsable, signed by a CA the session's credentials trust (their time
/// checks are off), and valid at `now`; sets `cn` to its subject CN.
/// @returns an empty string when it passes, else why not (for logs and
///          errors).
std::string verify_peer_certificate(gnutls_session_t sess,
                                    std::chrono::system_clock::time_point now,
                                    std::string& cn);

} // namespace mycorrizal::quic::internal
