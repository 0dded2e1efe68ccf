# SPDX-License-Identifier: Apache-2.0
# cache_tests: Mycel's pure core (store, versions, placement) in virtual
# time: every wall-clock value is passed in.
mycorrizal_add_test(cache_tests LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/store.cpp
    ${CMAKE_CURRENT_LIST_DIR}/version.cpp
    ${CMAKE_CURRENT_LIST_DIR}/placement.cpp
    ${CMAKE_CURRENT_LIST_DIR}/codec.cpp
    ${CMAKE_CURRENT_LIST_DIR}/plan.cpp
    ${CMAKE_CURRENT_LIST_DIR}/bucket.cpp
  LIBS mycorrizal::core)
