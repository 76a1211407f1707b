# `cmake --install` rules and the exported CMake package, so that another project can do
#
#   find_package(glimpse 0.1 CONFIG REQUIRED)            # or COMPONENTS CUDA for the GPU backend
#   target_link_libraries(app PRIVATE glimpse::glimpse)  # or one layer: glimpse::layers, ...
#
# Installed: the static libraries, every header under include/glimpse/<folder>/ (glimpse's own
# headers include each other as "core/tensor.h", so include/glimpse is on the include path, and
# include/ too for #include <glimpse/core/tensor.h>), lib/cmake/glimpse/ with the targets, the
# config (it finds glimpse's dependencies again) and a version file, and the programs under bin/.
# Targets (namespace glimpse::): core, autograd, layers, attribution, data, interop, backends
# (cuda when built), glimpse, the whole library, and dist, the communicator of data-parallel runs
# (layers/dist/comm.h: one process always; Open MPI and NCCL when the build found them, which the
# config then finds again).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(GLIMPSE_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/glimpse)
set(_glimpse_layers core autograd layers attribution data interop)

# The source tree is on the include path only while building; the installed tree has its own.
set_property(TARGET glimpse_core PROPERTY INTERFACE_INCLUDE_DIRECTORIES
             "$<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>"
             "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/glimpse>"
             "$<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>"
             "${STB_INCLUDE_DIR}")
# A consumer compiles glimpse's headers (Eigen-free, but C++20) with the instruction set the
# libraries were built for, so that inline code and the libraries agree.
target_compile_features(glimpse_core INTERFACE cxx_std_20)
if(NOT GLIMPSE_CPU_ARCH STREQUAL "none")
  target_compile_options(glimpse_core INTERFACE $<INSTALL_INTERFACE:-march=${GLIMPSE_CPU_ARCH}>)
endif()

add_library(glimpse INTERFACE)
target_link_libraries(glimpse INTERFACE glimpse_attribution glimpse_data glimpse_interop glimpse_backends)

set(_glimpse_targets glimpse glimpse_backends)
foreach(layer ${_glimpse_layers})
  set_target_properties(glimpse_${layer} PROPERTIES EXPORT_NAME ${layer})
  list(APPEND _glimpse_targets glimpse_${layer})
endforeach()
set_target_properties(glimpse_backends PROPERTIES EXPORT_NAME backends)
set_target_properties(glimpse_dist PROPERTIES EXPORT_NAME dist)
list(APPEND _glimpse_targets glimpse_dist)
if(GLIMPSE_HAVE_CUDA)
  set_target_properties(glimpse_cuda PROPERTIES EXPORT_NAME cuda)
  list(APPEND _glimpse_targets glimpse_cuda)
endif()

install(TARGETS ${_glimpse_targets} EXPORT glimpseTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(dir core autograd layers attribution data cuda)  # layers/ holds interop/
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/glimpse/${dir}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
endforeach()
foreach(app melanoma fashion-mnist glimpse-bench)
  if(TARGET ${app})
    install(TARGETS ${app} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()

install(EXPORT glimpseTargets NAMESPACE glimpse:: DESTINATION ${GLIMPSE_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/glimpseConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/glimpseConfig.cmake
                              INSTALL_DESTINATION ${GLIMPSE_INSTALL_CMAKEDIR})
# 0.x: a minor release may change the API, so only the same major.minor satisfies a request.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/glimpseConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/glimpseConfig.cmake ${PROJECT_BINARY_DIR}/glimpseConfigVersion.cmake
        DESTINATION ${GLIMPSE_INSTALL_CMAKEDIR})
