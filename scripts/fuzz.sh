#!/usr/bin/env bash
# Builds glimpse's libFuzzer harnesses (tests/fuzz/fuzz_*.cpp; clang, ASan + UBSan, CPU only), replays
# the committed corpora (tests/fuzz/corpus/<name>/: seeds, the malformed files of
# ../shared/reliability and every reproducer found since), then fuzzes each harness for a fixed budget.
# Any sanitizer report, uncaught exception, timeout or memory blow-up fails the script; the input that
# caused it is saved under $BUILD/artifacts/ (replay it: $BUILD/bin/fuzz_<name> <file>).
#
#   bash scripts/fuzz.sh                      build, replay, fuzz every harness 30 s (CI: 20 s)
#   bash scripts/fuzz.sh --seconds 600        a longer run
#   bash scripts/fuzz.sh --runs 1000000 image a fixed number of executions, one harness
#   bash scripts/fuzz.sh --replay-only        build and replay the corpora, no fuzzing
#
# Environment: GLIMPSE_FUZZ_BUILD_DIR (default build-fuzz), GLIMPSE_JOBS (default: all cores).
# New inputs the fuzzer finds interesting go to $BUILD/corpus/<name>/ (not committed); a reproducer
# worth keeping is copied by hand into tests/fuzz/corpus/<name>/.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${GLIMPSE_FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${GLIMPSE_JOBS:-$(nproc)}
SECONDS_EACH=30
RUNS=""
REPLAY_ONLY=0
TARGETS=()
while (($#)); do
  case "$1" in
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --replay-only) REPLAY_ONLY=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
ALL=(safetensors checkpoint dataset image app_json)
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")

# The corpus folders each harness starts from (the first is its own).
corpora() {
  case "$1" in
    safetensors) echo "safetensors" ;;
    checkpoint) echo "checkpoint safetensors" ;;
    dataset) echo "csv" ;;
    image) echo "image" ;;
    app_json) echo "json" ;;
    *) echo "fuzz.sh: unknown harness '$1' (known: ${ALL[*]})" >&2; return 1 ;;
  esac
}

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" -DGLIMPSE_FUZZ=ON -DGLIMPSE_CUDA=OFF -DGLIMPSE_MPI=OFF "${launcher[@]}" >/dev/null ||
  { echo "fuzz.sh: configure failed" >&2; exit 1; }
names=()
for t in "${TARGETS[@]}"; do corpora "$t" >/dev/null || exit 2; names+=("fuzz_$t"); done
cmake --build "$BUILD" -j "$JOBS" --target "${names[@]}" || { echo "fuzz.sh: build failed" >&2; exit 1; }

# Our own sanitizer settings, not those of the caller (scripts/test.sh exports its own for ctest).
export ASAN_OPTIONS=${GLIMPSE_FUZZ_ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# -rss_limit_mb / -malloc_limit_mb: one input may not make the process use more than 2 GB, nor ask for
# more than 1 GB in one allocation; -timeout: one input may not take more than 10 s (under ASan).
LIMITS=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10)
mkdir -p "$BUILD/artifacts"
failed=0
for t in "${TARGETS[@]}"; do
  bin="$BUILD/bin/fuzz_$t"
  dirs=()
  for c in $(corpora "$t"); do dirs+=("$ROOT/tests/fuzz/corpus/$c"); done
  files=()
  for d in "${dirs[@]}"; do
    [[ -d "$d" ]] && while IFS= read -r f; do files+=("$f"); done < <(find "$d" -type f | sort)
  done
  # The malformed files of ../shared/reliability, where that folder exists (CI and developers have it).
  rel="$ROOT/../shared/reliability"
  if [[ -d "$rel" ]]; then
    case "$t" in
      safetensors|checkpoint) re='.*\.safetensors' ;;
      image) re='.*\.\(jpg\|jpeg\|png\|pgm\|bmp\)' ;;
      app_json) re='.*\.json' ;;
      *) re='' ;;
    esac
    [[ -n "$re" ]] && while IFS= read -r f; do files+=("$f"); done < <(find "$rel" -maxdepth 1 -type f -regex "$re" | sort)
  fi
  echo "==== fuzz_$t: replaying ${#files[@]} corpus file(s)"
  if ((${#files[@]})); then
    if ! "$bin" "${LIMITS[@]}" -artifact_prefix="$BUILD/artifacts/$t-" "${files[@]}" >"$BUILD/replay-$t.log" 2>&1; then
      echo "fuzz.sh: fuzz_$t FAILED on the committed corpus; log: $BUILD/replay-$t.log" >&2
      tail -40 "$BUILD/replay-$t.log" >&2
      failed=1
      continue
    fi
  fi
  ((REPLAY_ONLY)) && continue
  work="$BUILD/corpus/$t"
  mkdir -p "$work"
  budget=(-max_total_time="$SECONDS_EACH")
  [[ -n "$RUNS" ]] && budget=(-runs="$RUNS")
  echo "==== fuzz_$t: fuzzing (${budget[*]})"
  existing=()
  for d in "${dirs[@]}"; do [[ -d "$d" ]] && existing+=("$d"); done
  if "$bin" "${LIMITS[@]}" "${budget[@]}" -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$BUILD/artifacts/$t-" "$work" "${existing[@]}" >"$BUILD/fuzz-$t.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$BUILD/fuzz-$t.log" | tail -2
  else
    echo "fuzz.sh: fuzz_$t found a failure; log: $BUILD/fuzz-$t.log, input in $BUILD/artifacts/" >&2
    grep -E 'ERROR|SUMMARY|runtime error|terminate|Test unit written' "$BUILD/fuzz-$t.log" | head -20 >&2
    failed=1
  fi
done
((failed)) && { echo "fuzz.sh: FAILED"; exit 1; }
echo "fuzz.sh: all harnesses clean"
