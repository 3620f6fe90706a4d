# Warnings as errors for the project's own code (generated code is compiled without them).
function(ems_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wno-unused-parameter
                                            -Wno-missing-field-initializers)
  # GCC 12 at -O3 (a Release build) reports -Wrestrict inside libstdc++'s own std::string
  # code (GCC bug 105329, a false positive); it stays a warning there instead of failing
  # the build.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-error=restrict)
  endif()
endfunction()

# ems_library(NAME ems_pool ALIAS ems::pool SRCS a.cc b.cc DEPS ...)
function(ems_library)
  cmake_parse_arguments(ARG "" "NAME;ALIAS" "SRCS;DEPS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SRCS})
  add_library(${ARG_ALIAS} ALIAS ${ARG_NAME})
  target_include_directories(${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS})
  ems_warnings(${ARG_NAME})
endfunction()

# ems_cc_test(NAME foo_test SRCS foo_test.cc DEPS ... [LABELS ...])
# Every test binary is a gtest registered with CTest; tests run with a timeout so a hang fails.
function(ems_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  set_target_properties(${ARG_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${ARG_NAME} PRIVATE EMS_BIN_DIR="${CMAKE_BINARY_DIR}/bin"
                                                 EMS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  ems_warnings(${ARG_NAME})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  gtest_discover_tests(${ARG_NAME} DISCOVERY_TIMEOUT 60
                       PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()

# ems_cc_benchmark(NAME foo_benchmark SRCS foo_benchmark.cc DEPS ...)
function(ems_cc_benchmark)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  if(NOT EMS_BUILD_BENCHMARKS)
    return()
  endif()
  add_executable(${ARG_NAME} ${ARG_SRCS} ${PROJECT_SOURCE_DIR}/bench/micro/release_mutexes.cc)
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} ems::common benchmark::benchmark
                                            benchmark::benchmark_main)
  ems_warnings(${ARG_NAME})
endfunction()
