# SPDX-License-Identifier: Apache-2.0
# The gossip module: memberlist codec and framing (pure; no sockets, clocks
# or random devices). AES-GCM comes from GnuTLS (only in keyring.cpp).
# PkgConfig::GNUTLS comes from cmake/mycorrizal_dependencies.cmake.
target_sources(mycorrizal_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/crc32.cpp
  ${CMAKE_CURRENT_LIST_DIR}/keyring.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lzw.cpp
  ${CMAKE_CURRENT_LIST_DIR}/messages.cpp
  ${CMAKE_CURRENT_LIST_DIR}/msgpack.cpp
  ${CMAKE_CURRENT_LIST_DIR}/packet.cpp
  ${CMAKE_CURRENT_LIST_DIR}/stream.cpp
)
target_link_libraries(mycorrizal_core PRIVATE PkgConfig::GNUTLS)
# The SWIM + Lifeguard membership core (virtual time, seeded randomness).
target_sources(mycorrizal_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/broadcast_queue.cpp
  ${CMAKE_CURRENT_LIST_DIR}/config.cpp
  ${CMAKE_CURRENT_LIST_DIR}/membership.cpp
  ${CMAKE_CURRENT_LIST_DIR}/node_meta.cpp
  ${CMAKE_CURRENT_LIST_DIR}/timing.cpp
)
