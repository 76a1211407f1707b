#!/usr/bin/env bash
# The installed-package check (ctest's package.consumer): installs the build tree into a scratch
# prefix with `cmake --install`, configures examples/gap_gradcam against it with
# find_package(glimpse CONFIG) alone, builds it, runs it (it trains a 2-class GAP net and fails
# unless it learnt and its Grad-CAM peak is on the object) and checks the overlay is a PNG; builds
# examples/tutorial the same way.
#   examples/test_installed_package.sh BUILD_DIR SCRATCH_DIR [CXX_COMPILER [LAUNCHER]]
set -euo pipefail
build=$1 scratch=$2 cxx=${3:-} launcher=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$scratch"
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
args=(-S "$here/gap_gradcam" -B "$scratch/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$scratch/prefix")
command -v ninja >/dev/null && args+=(-G Ninja)
[[ -n $cxx ]] && args+=(-DCMAKE_CXX_COMPILER="$cxx")
[[ -n $launcher ]] && args+=(-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher")
cmake "${args[@]}" >/dev/null
cmake --build "$scratch/build"
"$scratch/build/gap_gradcam" "$scratch/overlay.png"
# The tutorial's own project (examples/tutorial) builds against the package too; ctest's
# Tutorial.* runs the in-tree build of the same file.
targs=(-S "$here/tutorial" -B "$scratch/tutorial" "${args[@]:4}")  # the same options after -S and -B
cmake "${targs[@]}" >/dev/null
cmake --build "$scratch/tutorial"
[[ -x $scratch/tutorial/tutorial ]] || { echo "the tutorial did not build against the package" >&2; exit 1; }

# The package's contract: every target, the version rule (0.1.x only), the optional CUDA component.
mkdir -p "$scratch/contract"
cat > "$scratch/contract/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(contract LANGUAGES CXX)
find_package(glimpse 0.1 CONFIG REQUIRED)
foreach(t glimpse core autograd layers attribution data interop backends dist)
  if(NOT TARGET glimpse::${t})
    message(FATAL_ERROR "glimpse::${t} missing")
  endif()
endforeach()
find_package(glimpse 0.2 CONFIG QUIET)
if(glimpse_FOUND)
  message(FATAL_ERROR "glimpse ${glimpse_VERSION} accepted a request for 0.2")
endif()
find_package(glimpse 0.1 CONFIG QUIET COMPONENTS CUDA)
if(glimpse_FOUND AND NOT TARGET glimpse::cuda)
  message(FATAL_ERROR "COMPONENTS CUDA found without a glimpse::cuda target")
endif()
message(STATUS "contract: glimpse ${glimpse_VERSION}, CUDA component found: ${glimpse_FOUND}")
# glimpse::dist links (with MPI, when glimpse was built with it) and runs as one process.
add_executable(one_rank one_rank.cpp)
target_link_libraries(one_rank PRIVATE glimpse::dist)
CMAKE
cat > "$scratch/contract/one_rank.cpp" <<'CPP'
#include <cstdio>
#include <glimpse/layers/dist/comm.h>
int main(int argc, char** argv) {
  glimpse::dist::Session session(&argc, &argv);
  glimpse::dist::Communicator& c = session.world();
  glimpse::Tensor t = glimpse::Tensor::from_vector({2}, {1.f, 2.f});
  glimpse::dist::allreduce(c, t);
  std::printf("one_rank: rank %d of %d, backend %s, MPI built %d, sum %g\n", c.rank(), c.size(),
              c.backend().c_str(), glimpse::dist::built_with_mpi(), t.to_vector()[1]);
  return c.size() == 1 && t.to_vector()[1] == 2.f ? 0 : 1;
}
CPP
cmake -S "$scratch/contract" -B "$scratch/contract/build" -DCMAKE_PREFIX_PATH="$scratch/prefix" ${cxx:+-DCMAKE_CXX_COMPILER="$cxx"} |
  grep "contract:"
cmake --build "$scratch/contract/build" --target one_rank >/dev/null
"$scratch/contract/build/one_rank"
# The PNG signature: \x89PNG
[[ $(head -c 4 "$scratch/overlay.png" | od -An -tx1 | tr -d ' \n') == 89504e47 ]] || { echo "overlay is not a PNG" >&2; exit 1; }
echo "package.consumer: ok ($(stat -c %s "$scratch/overlay.png") byte overlay)"
