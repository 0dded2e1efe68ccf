# SPDX-License-Identifier: Apache-2.0
# Finds the Debian packages Mycorrizal builds on (PLATFORM.md §1).
find_package(Threads REQUIRED)
find_package(fmt 9 REQUIRED CONFIG)
# GnuTLS: AES-GCM for gossip encryption in the core, TLS for QUIC later.
find_package(PkgConfig REQUIRED)
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls>=3.7.3)
# ngtcp2: the QUIC connection core (pkg-config only, PLATFORM.md §1).
pkg_check_modules(NGTCP2 REQUIRED IMPORTED_TARGET libngtcp2>=0.12
                  libngtcp2_crypto_gnutls>=0.12)
if(NOT MYCORRIZAL_CORE_ONLY)
  include(mycorrizal_caf)
  find_package(spdlog 1.10 REQUIRED CONFIG)
  # The HTTP front door (serve/http.cpp): Debian's compiled cpp-httplib and
  # nlohmann's JSON for /status.
  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib>=0.11)
  find_package(nlohmann_json 3.10 REQUIRED CONFIG)
endif()
# Only the test suites need GoogleTest (the fuzz targets do not).
if(MYCORRIZAL_BUILD_TESTS)
  find_package(GTest REQUIRED CONFIG)
endif()
if(MYCORRIZAL_BUILD_BENCH AND NOT MYCORRIZAL_CORE_ONLY)
  find_package(benchmark REQUIRED CONFIG)
endif()
