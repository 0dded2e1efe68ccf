# SPDX-License-Identifier: Apache-2.0
# metrics_tests: the registry and its Prometheus text exposition.
mycorrizal_add_test(metrics_tests LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/registry.cpp
  LIBS mycorrizal::core)
