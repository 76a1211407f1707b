#!/usr/bin/env bash
# The demo: installs what is missing, builds Release, and trains a small GAP network on
# Fashion-MNIST (Debian's dataset-fashion-mnist package), printing progress and test accuracy.
# Until the melanoma app lands this short training run is the demo. Extra arguments go to the
# program (see build/bin/fashion-mnist --help), e.g.  bash scripts/demo.sh --epochs 1 --limit 10000
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${GLIMPSE_BUILD_DIR:-build}
JOBS=${GLIMPSE_JOBS:-$(nproc)}

bash scripts/deps.sh

launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}"
cmake --build "$BUILD" -j "$JOBS" --target fashion-mnist

mkdir -p "$BUILD/demo"
exec "$BUILD/bin/fashion-mnist" --threads "$JOBS" --out "$BUILD/demo/fashion-mnist.safetensors" "$@"
