# SPDX-License-Identifier: Apache-2.0
# cache_codec_fuzz: the Mycel protocol decoder under arbitrary bytes, from
# seeds the encoder wrote (make_cache_corpus); include() this from
# tests/fuzz/CMakeLists.txt.
add_executable(cache_codec_fuzz ${CMAKE_CURRENT_LIST_DIR}/cache_codec.cpp)
target_link_libraries(cache_codec_fuzz PRIVATE mycorrizal::core)
target_link_options(cache_codec_fuzz PRIVATE -fsanitize=fuzzer)
mycorrizal_set_warnings(cache_codec_fuzz)

mycorrizal_fuzz_run(cache_codec cache_codec_fuzz 300000 30 8192
                    ${CMAKE_CURRENT_LIST_DIR}/corpus/cache_codec)

# make_cache_corpus: writes the seed corpus with the real encoder.
#   ninja cache_codec_corpus    regenerates corpus/cache_codec in the source
#                               tree (review and commit the result).
add_executable(make_cache_corpus ${CMAKE_CURRENT_LIST_DIR}/make_cache_corpus.cpp)
target_link_libraries(make_cache_corpus PRIVATE mycorrizal::core)
mycorrizal_set_warnings(make_cache_corpus)
add_custom_target(cache_codec_corpus
  COMMAND make_cache_corpus ${CMAKE_CURRENT_LIST_DIR}/corpus/cache_codec
  COMMENT "Regenerating the cache_codec seed corpus")
add_test(NAME fuzz.cache_corpus
         COMMAND make_cache_corpus --check
                 ${CMAKE_CURRENT_LIST_DIR}/corpus/cache_codec)
set_tests_properties(fuzz.cache_corpus PROPERTIES LABELS fuzz TIMEOUT 30)
