# SPDX-License-Identifier: Apache-2.0
# The cache module (Mycel): one bucket's store (LRU, TTL, last writer wins,
# tombstones), hybrid-clock versions and rendezvous placement. Pure: times
# are passed in, nothing is read from a clock or a socket.
target_sources(mycorrizal_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/placement.cpp
  ${CMAKE_CURRENT_LIST_DIR}/store.cpp
  ${CMAKE_CURRENT_LIST_DIR}/version.cpp
)
