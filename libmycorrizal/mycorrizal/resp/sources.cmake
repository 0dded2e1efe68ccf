# SPDX-License-Identifier: Apache-2.0
# The Redis protocol codec (RESP2/3): the incremental request parser
# (multibulk and inline commands, Redis 7.0's limits and error texts) and the
# reply writer. Pure: bytes in, bytes out.
target_sources(mycorrizal_core PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/glob.cpp
  ${CMAKE_CURRENT_LIST_DIR}/reply.cpp
  ${CMAKE_CURRENT_LIST_DIR}/request.cpp
)
