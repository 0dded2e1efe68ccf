# SPDX-License-Identifier: Apache-2.0
# The peering module: the peers actor's dial policy (who dials a pair,
# waits, backoff, duplicates, stale and stopped members) as a pure core: no
# sockets, no clock reads, injected randomness.
target_sources(mycorrizal_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/dialer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/from_gossip.cpp
)
