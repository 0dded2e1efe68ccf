# SPDX-License-Identifier: Apache-2.0
# Metrics: counters, gauges and histograms with labels, and the Prometheus
# text exposition. Pure: no clock, no I/O.
target_sources(mycorrizal_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/registry.cpp
)
