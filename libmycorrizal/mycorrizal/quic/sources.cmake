# SPDX-License-Identifier: Apache-2.0
# The QUIC module: credentials, certificates and the connection core over
# ngtcp2 0.12 + GnuTLS (pure: no sockets, no clock reads, injected rng).
# PkgConfig::NGTCP2 and PkgConfig::GNUTLS come from
# cmake/mycorrizal_dependencies.cmake.
target_sources(mycorrizal_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/certs.cpp
  ${CMAKE_CURRENT_LIST_DIR}/connection.cpp
  ${CMAKE_CURRENT_LIST_DIR}/credentials.cpp
  ${CMAKE_CURRENT_LIST_DIR}/endpoint.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cid_router.cpp
  ${CMAKE_CURRENT_LIST_DIR}/scheduler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/tls_stream.cpp
  ${CMAKE_CURRENT_LIST_DIR}/transport_config.cpp
)
target_link_libraries(mycorrizal_core PRIVATE PkgConfig::NGTCP2
                      PkgConfig::GNUTLS)
