# SPDX-License-Identifier: Apache-2.0
# peering_tests: the peers actor's dial policy core, in virtual time with
# injected jitter.
mycorrizal_add_test(peering_tests LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/dialer.cpp
  LIBS mycorrizal::core)
