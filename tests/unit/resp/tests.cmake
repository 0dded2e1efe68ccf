# SPDX-License-Identifier: Apache-2.0
# resp_tests: the Redis protocol codec (request parser, reply writer),
# checked against facts taken from redis-server 7.0.15 and its source.
mycorrizal_add_test(resp_tests LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/request.cpp
    ${CMAKE_CURRENT_LIST_DIR}/inline.cpp
    ${CMAKE_CURRENT_LIST_DIR}/reply.cpp
    ${CMAKE_CURRENT_LIST_DIR}/glob.cpp
  LIBS mycorrizal::core)
