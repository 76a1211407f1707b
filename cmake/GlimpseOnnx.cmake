# Decides whether ONNX export (interop/onnx_export.cpp) is built. It writes the model with the ONNX
# project's own generated protobuf code and validates it with the ONNX checker, both from Debian's
# libonnx-dev (+ libprotobuf-dev): no hand-written encoder.
#   AUTO: built when both are found; otherwise the CPU build still builds, and export reports why
#         it is unavailable (interop/onnx_unavailable.cpp).
#   ON:   their absence is a configure error.   OFF: never built.
set(GLIMPSE_ONNX "AUTO" CACHE STRING "Build ONNX export: AUTO (if libonnx-dev and libprotobuf-dev are found), ON, OFF")
set_property(CACHE GLIMPSE_ONNX PROPERTY STRINGS AUTO ON OFF)
set(GLIMPSE_HAVE_ONNX OFF)
set(GLIMPSE_ONNX_MISSING "")
if(GLIMPSE_ONNX STREQUAL "OFF")
  set(GLIMPSE_ONNX_MISSING "glimpse was configured with -DGLIMPSE_ONNX=OFF (reconfigure with -DGLIMPSE_ONNX=AUTO, which needs libonnx-dev and libprotobuf-dev)")
else()
  find_package(Protobuf QUIET)
  find_package(ONNX QUIET CONFIG)
  if(Protobuf_FOUND AND ONNX_FOUND AND TARGET onnx AND TARGET onnx_proto)
    set(GLIMPSE_HAVE_ONNX ON)
  else()
    set(GLIMPSE_ONNX_MISSING "glimpse was built without libonnx-dev and libprotobuf-dev: install them (apt-get install libonnx-dev libprotobuf-dev) and reconfigure")
    if(GLIMPSE_ONNX STREQUAL "ON")
      message(FATAL_ERROR "GLIMPSE_ONNX=ON: libonnx-dev or libprotobuf-dev not found (ONNX_FOUND=${ONNX_FOUND}, Protobuf_FOUND=${Protobuf_FOUND})")
    endif()
  endif()
endif()
if(GLIMPSE_HAVE_ONNX)
  message(STATUS "glimpse: ONNX export built (ONNX ${ONNX_VERSION}, protobuf ${Protobuf_VERSION})")
else()
  message(STATUS "glimpse: ONNX export not built: ${GLIMPSE_ONNX_MISSING}")
endif()
