# SPDX-License-Identifier: Apache-2.0
# cmake --install: libraries, headers and an exported package, so that an
# outside project can `find_package(mycorrizal)` and link
# `mycorrizal::mycorrizal` (actors + public API) or `mycorrizal::core`.
set(MYCORRIZAL_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/mycorrizal")

set(_targets mycorrizal_core)
if(TARGET mycorrizal)
  list(APPEND _targets mycorrizal)
endif()
install(TARGETS ${_targets} EXPORT mycorrizalTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Public headers of both roots merge under include/mycorrizal/.
foreach(root libmycorrizal actors)
  install(DIRECTORY "${PROJECT_SOURCE_DIR}/${root}/mycorrizal"
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          FILES_MATCHING PATTERN "*.hpp" PATTERN "internal" EXCLUDE)
endforeach()

install(EXPORT mycorrizalTargets NAMESPACE mycorrizal::
        DESTINATION ${MYCORRIZAL_INSTALL_CMAKEDIR})
configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/mycorrizalConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/mycorrizalConfig.cmake"
  INSTALL_DESTINATION ${MYCORRIZAL_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/mycorrizalConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/mycorrizalConfig.cmake"
              "${PROJECT_BINARY_DIR}/mycorrizalConfigVersion.cmake"
              "${PROJECT_SOURCE_DIR}/cmake/mycorrizal_caf.cmake"
        DESTINATION ${MYCORRIZAL_INSTALL_CMAKEDIR})
