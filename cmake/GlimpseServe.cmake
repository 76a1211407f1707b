# `melanoma serve` (apps/melanoma/serve*.cpp): cpp-httplib, Debian's libcpp-httplib-dev, found through
# its pkg-config file (which also brings the library's own compile definitions: they change the
# layout of its classes, so they must match how Debian built it). Without it the subcommand is built
# as a stub that says what to install.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(CPP_HTTPLIB QUIET IMPORTED_TARGET cpp-httplib)
endif()
if(CPP_HTTPLIB_FOUND)
  message(STATUS "glimpse: melanoma serve on cpp-httplib ${CPP_HTTPLIB_VERSION}")
else()
  message(STATUS "glimpse: cpp-httplib not found (Debian: libcpp-httplib-dev): `melanoma serve` only says so")
endif()

# glimpse_add_serve(<target>): links the HTTP server into <target> (the melanoma binary, or the
# library of its code the tests use) with the explorer's page (apps/melanoma/web/) embedded as a
# generated C++ source, rebuilt whenever a file of web/ changes.
function(glimpse_add_serve target)
  if(NOT CPP_HTTPLIB_FOUND)
    return()
  endif()
  if(NOT TARGET glimpse_web_assets)
    set(web_dir ${PROJECT_SOURCE_DIR}/apps/melanoma/web)
    set(out ${CMAKE_BINARY_DIR}/generated/serve_web_assets.cpp)
    file(GLOB web_files CONFIGURE_DEPENDS ${web_dir}/*)
    add_custom_command(
      OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -DWEB_DIR=${web_dir} -DOUT=${out} -P ${PROJECT_SOURCE_DIR}/cmake/EmbedWeb.cmake
      DEPENDS ${web_files} ${PROJECT_SOURCE_DIR}/cmake/EmbedWeb.cmake
      COMMENT "Embedding the explorer's page (apps/melanoma/web)")
    add_library(glimpse_web_assets OBJECT ${out})
    target_include_directories(glimpse_web_assets PRIVATE ${PROJECT_SOURCE_DIR}/apps/melanoma)
  endif()
  target_sources(${target} PRIVATE $<TARGET_OBJECTS:glimpse_web_assets>)
  target_link_libraries(${target} PUBLIC PkgConfig::CPP_HTTPLIB)
  target_compile_definitions(${target} PRIVATE GLIMPSE_WITH_HTTPLIB)
endfunction()
