# SPDX-License-Identifier: Apache-2.0
# quic_tests: certificates, credentials and two QUIC connection cores wired
# back to back in virtual time (no sockets). Certificates are made at test
# time; no private key is committed.
mycorrizal_add_test(quic_tests LABEL unit
  SOURCES
    ${PROJECT_SOURCE_DIR}/tests/support/quic_harness.cpp
    ${CMAKE_CURRENT_LIST_DIR}/certs.cpp
    ${CMAKE_CURRENT_LIST_DIR}/credentials.cpp
    ${CMAKE_CURRENT_LIST_DIR}/connection.cpp
    ${CMAKE_CURRENT_LIST_DIR}/endpoint.cpp
    ${CMAKE_CURRENT_LIST_DIR}/scheduler.cpp
    ${CMAKE_CURRENT_LIST_DIR}/transport_config.cpp
    ${CMAKE_CURRENT_LIST_DIR}/tls_stream.cpp
  LIBS mycorrizal::core PkgConfig::GNUTLS)
