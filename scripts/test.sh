#!/usr/bin/env bash
# The CI job: installs what is missing, then
#   0. the format check (scripts/format.sh --check: clang-format, .clang-format);
#   1. a Release build with the CUDA backend when nvcc and cuDNN are found (GLIMPSE_CUDA=AUTO; CI has
#      no GPU, so this proves the CUDA code compiles and links, and its tests skip with a reason), ctest;
#   2. a CPU-only Debug build under AddressSanitizer + UndefinedBehaviorSanitizer, ctest again;
#   3. the fuzz step (scripts/fuzz.sh): the libFuzzer harnesses built with clang under ASan+UBSan, the
#      committed corpora and ../shared/reliability replayed, then each harness fuzzed for a fixed budget.
# Exits non-zero if any step fails; prints a summary with the time of each step.
#
# Environment: GLIMPSE_BUILD_DIR (default build), GLIMPSE_ASAN_BUILD_DIR (default build-asan),
# GLIMPSE_JOBS (default: all cores), GLIMPSE_SKIP_ASAN=1 to run step 1 only, GLIMPSE_SKIP_FUZZ=1 to skip
# step 3, GLIMPSE_FUZZ_SECONDS (default 20) the fuzzing budget of each harness.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${GLIMPSE_BUILD_DIR:-build}
ASAN_BUILD=${GLIMPSE_ASAN_BUILD_DIR:-build-asan}
JOBS=${GLIMPSE_JOBS:-$(nproc)}

bash scripts/deps.sh || { echo "test.sh: installing dependencies failed" >&2; exit 1; }
# playwright-core for the explorer's browser test (Serve.ExplorerPageInChromium), at the version of
# tests/browser/package-lock.json; without npm or the registry the test skips, saying so.
if command -v npm >/dev/null 2>&1; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "test.sh: npm ci in tests/browser failed: the browser test will skip" >&2
fi

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  # Paths below the checkout are hashed relative to it, so that a fresh clone in another folder
  # (CI's) still hits the cache of an earlier build on the same machine.
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$ROOT}
fi

summary=()
failed=0
T0=$SECONDS

# step NAME COMMAND...: runs the command, records its status and duration.
step() {
  local name=$1; shift
  local t=$SECONDS
  echo
  echo "==== $name"
  if "$@"; then
    summary+=("$(printf '  %-34s ok     %4ds' "$name" $((SECONDS - t)))")
    return 0
  else
    local rc=$?
    summary+=("$(printf '  %-34s FAILED %4ds (exit %d)' "$name" $((SECONDS - t)) "$rc")")
    failed=1
    return 1
  fi
}

print_summary() {
  echo
  echo "==== summary ($((SECONDS - T0))s in all)"
  printf '%s\n' "${summary[@]}"
  if ((failed)); then echo "RESULT: FAILED"; else echo "RESULT: all passed"; fi
}
trap print_summary EXIT

# ---- 0. format: every C++/CUDA file as .clang-format says (scripts/format.sh) -------------------
step "format check (clang-format)" bash scripts/format.sh --check

# ---- 1. Release (+ CUDA when found) ------------------------------------------------------------
if step "configure Release ($BUILD)" cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DGLIMPSE_CUDA=AUTO "${launcher[@]}" &&
   step "build Release" cmake --build "$BUILD" -j "$JOBS"; then
  step "ctest Release" ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" --timeout 900
fi

if [[ "${GLIMPSE_SKIP_ASAN:-0}" == 1 ]]; then
  ((failed)) && exit 1 || exit 0
fi

# ---- 2. CPU-only Debug under ASan + UBSan ------------------------------------------------------
# -O1: a -O0 build of Eigen-heavy code under ASan is several times slower to run, and still
# reports the same errors. Every sanitizer report fails the test that triggered it:
#  - ASan stops at the first error (halt_on_error) with exit code 1 and checks for leaks at exit;
#  - UBSan is compiled with -fno-sanitize-recover=undefined (CMakeLists.txt), so any report aborts,
#    and halt_on_error=1 makes sure of it.
# Leak detection stays on: glimpse's thread pool (core/parallel.cpp) is reachable from a static
# pointer at exit, so LeakSanitizer does not report its parked helper threads.
export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=0:strict_init_order=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
if step "configure ASan+UBSan ($ASAN_BUILD)" cmake -S "$ROOT" -B "$ASAN_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
      -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DGLIMPSE_CUDA=OFF -DGLIMPSE_SANITIZE=ON -DGLIMPSE_BUILD_BENCH=OFF \
      "${launcher[@]}" &&
   step "build ASan+UBSan" cmake --build "$ASAN_BUILD" -j "$JOBS"; then
  step "ctest ASan+UBSan" ctest --test-dir "$ASAN_BUILD" --output-on-failure -j "$JOBS" --timeout 1200
fi

# ---- 3. fuzz ------------------------------------------------------------------------------------
if [[ "${GLIMPSE_SKIP_FUZZ:-0}" != 1 ]]; then
  step "fuzz (${GLIMPSE_FUZZ_SECONDS:-20} s each)" bash scripts/fuzz.sh --seconds "${GLIMPSE_FUZZ_SECONDS:-20}"
fi

((failed)) && exit 1
exit 0
