# SPDX-License-Identifier: Apache-2.0
# resp_decode_fuzz: the RESP request parser under arbitrary bytes and split
# points (resp_decode.cpp explains the input layout and the checks), from
# hand-written seeds in corpus/resp_decode; include() this from
# tests/fuzz/CMakeLists.txt.
add_executable(resp_decode_fuzz ${CMAKE_CURRENT_LIST_DIR}/resp_decode.cpp)
target_link_libraries(resp_decode_fuzz PRIVATE mycorrizal::core)
target_link_options(resp_decode_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(resp_decode_fuzz)

mycorrizal_fuzz_run(resp_decode resp_decode_fuzz 300000 30 4096
                    ${CMAKE_CURRENT_LIST_DIR}/corpus/resp_decode)
