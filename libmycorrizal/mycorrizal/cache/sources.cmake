# SPDX-License-Identifier: Apache-2.0
# The cache module (Mycel): one bucket's store (LRU, TTL, last writer wins,
# tombstones, partition digests), hybrid-clock versions, rendezvous
# placement, hand-off and repair planning, and the protocol codec. Pure: times
# are passed in, nothing is read from a clock or a socket.
target_sources(mycorrizal_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/bucket.cpp
  ${CMAKE_CURRENT_LIST_DIR}/codec.cpp
  ${CMAKE_CURRENT_LIST_DIR}/placement.cpp
  ${CMAKE_CURRENT_LIST_DIR}/plan.cpp
  ${CMAKE_CURRENT_LIST_DIR}/store.cpp
  ${CMAKE_CURRENT_LIST_DIR}/version.cpp
)
