# SPDX-License-Identifier: Apache-2.0
# ctest driver of the consumer tests: an outside project builds against
# Mycorrizal and runs what it built.
#   MODE install (default): installs the build tree into a fresh prefix,
#     then configures tests/consumer against it with find_package.
#   MODE subdir: configures tests/consumer/subdir, which pulls the source
#     tree in with add_subdirectory, with GoogleTest and Google Benchmark
#     made unfindable (a REQUIRED lookup of either fails the configure);
#     builds it as a unity build and also runs README.md's embedding
#     example.
# Variables: BUILD_DIR (install), SOURCE_DIR, WORK_DIR, GENERATOR, MODE.
if(NOT MODE)
  set(MODE install)
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}")
  endif()
  message(STATUS "ok: ${ARGN}")
endfunction()
# Runs a program the consumer built; its output must match `expect`.
function(run_program name expect)
  execute_process(COMMAND "${WORK_DIR}/build/${name}"
                  WORKING_DIRECTORY "${WORK_DIR}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message(STATUS "${name} said:\n${out}")
  if(NOT rc EQUAL 0 OR NOT out MATCHES "${expect}")
    message(FATAL_ERROR "${name} failed (${rc}), expected '${expect}'")
  endif()
endfunction()

if(MODE STREQUAL "install")
  step(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
  step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer"
       -B "${WORK_DIR}/build" -G "${GENERATOR}"
       "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix")
  step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
  run_program(consumer "consumer: ok")
elseif(MODE STREQUAL "subdir")
  step(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/consumer/subdir"
       -B "${WORK_DIR}/build" -G "${GENERATOR}"
       "-DMYCORRIZAL_SOURCE_DIR=${SOURCE_DIR}"
       -DCMAKE_DISABLE_FIND_PACKAGE_GTest=ON
       -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=ON
       # As a vendoring user may build it, and a third less compile time
       # than file by file (170 s against 277 s of CPU on the 2-core VM):
       # the sources must not clash when CMake batches them.
       -DCMAKE_UNITY_BUILD=ON)
  # nlohmann_json is looked up: the library's HTTP front door needs it.
  step(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
  run_program(consumer "consumer: ok")
  run_program(embed "hello, b")
else()
  message(FATAL_ERROR "MODE must be 'install' or 'subdir', got '${MODE}'")
endif()
