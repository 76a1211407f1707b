# Decides whether glimpse_dist gets its MPI backend (Open MPI: Debian libopenmpi-dev + openmpi-bin) and,
# in a CUDA build, its NCCL backend (nccl.h and libnccl from the CUDA toolkit). AUTO: each when found.
# Without either, glimpse_dist still builds with the one-process fallback, so code written against the
# communicator runs unchanged in the plain CPU build.
set(GLIMPSE_HAVE_MPI OFF)
set(GLIMPSE_HAVE_NCCL OFF)
if(NOT GLIMPSE_MPI STREQUAL "OFF")
  # The C API from C++ (the project enables CXX only); MPI's deprecated C++ bindings are left out.
  set(MPI_CXX_SKIP_MPICXX ON)
  find_package(MPI COMPONENTS CXX QUIET)
  if(MPI_CXX_FOUND)
    set(GLIMPSE_HAVE_MPI ON)
    # The launcher the MPI tests run under (ctest), and its flags for a container run as root.
    find_program(GLIMPSE_MPIEXEC NAMES mpirun mpiexec HINTS ${MPIEXEC_EXECUTABLE})
    message(STATUS "glimpse: MPI ${MPI_CXX_VERSION} (${MPI_CXX_LIBRARIES}); launcher ${GLIMPSE_MPIEXEC}")
  elseif(GLIMPSE_MPI STREQUAL "ON")
    message(FATAL_ERROR "glimpse: GLIMPSE_MPI=ON but no MPI was found (apt-get install libopenmpi-dev openmpi-bin)")
  else()
    message(STATUS "glimpse: MPI not found; the communicator is the one-process fallback")
  endif()
endif()
# NCCL: GPU gradients, bootstrapped over MPI (its unique id is broadcast by MPI), so it needs both.
if(GLIMPSE_HAVE_MPI AND GLIMPSE_HAVE_CUDA)
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} ENV NCCL_ROOT PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_DIR}/.. ENV NCCL_ROOT
               PATH_SUFFIXES lib lib64)
  if(NCCL_INCLUDE_DIR AND NCCL_LIBRARY)
    set(GLIMPSE_HAVE_NCCL ON)
    message(STATUS "glimpse: NCCL ${NCCL_LIBRARY}")
  else()
    message(STATUS "glimpse: NCCL not found; GPU gradients go through MPI on host copies")
  endif()
endif()
