#!/usr/bin/env bash
# The demo: installs what is missing, builds Release, and runs the melanoma app's one-command story
# (build/bin/melanoma demo): synthetic lesions, a small GAP network trained on them, its ISIC 2017
# scores, every attribution method scored against the lesion masks, a few photos explained with
# their regions circled, and one self-contained HTML report. A few minutes on 2 cores.
#
#   bash scripts/demo.sh                                   # -> build/demo/melanoma/report.html
#   bash scripts/demo.sh --data ../shared/data/isic2017    # the same on an ISIC folder
#   bash scripts/demo.sh fashion-mnist [--epochs 1 ...]    # the Fashion-MNIST training example
#
# Extra arguments go to the program (build/bin/melanoma demo --help, build/bin/fashion-mnist --help).
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${GLIMPSE_BUILD_DIR:-build}
JOBS=${GLIMPSE_JOBS:-$(nproc)}

program=melanoma
if [[ "${1:-}" == "fashion-mnist" ]]; then
  program=fashion-mnist
  shift
fi

bash scripts/deps.sh

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}"
cmake --build "$BUILD" -j "$JOBS" --target "$program"

mkdir -p "$BUILD/demo"
if [[ "$program" == "fashion-mnist" ]]; then
  exec "$BUILD/bin/fashion-mnist" --threads "$JOBS" --out "$BUILD/demo/fashion-mnist.safetensors" "$@"
fi
exec "$BUILD/bin/melanoma" demo --out "$BUILD/demo/melanoma" --threads "$JOBS" "$@"
