# SPDX-License-Identifier: Apache-2.0
# gossip_tests: the memberlist codec and framing, checked against real Go
# traffic kept in tests/data/memberlist-vectors (its README says where the
# captures come from; the tests fail if a capture is missing).
find_package(nlohmann_json 3 REQUIRED CONFIG)
mycorrizal_add_test(gossip_tests LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/msgpack.cpp
    ${CMAKE_CURRENT_LIST_DIR}/messages.cpp
    ${CMAKE_CURRENT_LIST_DIR}/framing.cpp
    ${CMAKE_CURRENT_LIST_DIR}/crypto.cpp
    ${CMAKE_CURRENT_LIST_DIR}/stream.cpp
    ${CMAKE_CURRENT_LIST_DIR}/vectors.cpp
    ${CMAKE_CURRENT_LIST_DIR}/labels.cpp
  LIBS mycorrizal::core nlohmann_json::nlohmann_json)
target_compile_definitions(gossip_tests PRIVATE
  MYCORRIZAL_MEMBERLIST_VECTORS="${PROJECT_SOURCE_DIR}/tests/data/memberlist-vectors")

# membership_tests: the SWIM + Lifeguard core, per transition and in
# simulated networks (virtual time, seeded).
mycorrizal_add_test(membership_tests LABEL unit
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/core_parts.cpp
    ${CMAKE_CURRENT_LIST_DIR}/transitions.cpp
    ${CMAKE_CURRENT_LIST_DIR}/simulation.cpp
    ${CMAKE_CURRENT_LIST_DIR}/reconnect.cpp
    ${PROJECT_SOURCE_DIR}/tests/support/gossip_sim.cpp
  LIBS mycorrizal::core)
