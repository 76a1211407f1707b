#!/usr/bin/env bash
# Installs, with apt-get, the Debian 12 packages the glimpse build needs -- only those missing.
# Run as root (or with sudo available). nvcc and cuDNN are not Debian packages: the build finds
# them under /usr/local/cuda when present (GLIMPSE_CUDA=AUTO) and builds the CPU backend otherwise.
# clang and libclang-rt-14-dev (libFuzzer) are for the fuzz step of the tests (scripts/fuzz.sh) only.
# libcpp-httplib-dev is the HTTP server of `melanoma serve`. chromium (and nodejs + npm where no node
# is installed) are optional: the explorer's browser test (tests/browser) skips without them.
# libopenmpi-dev + openmpi-bin: the MPI backend of layers/dist/ (data-parallel runs under mpirun) and its tests;
# NCCL comes with the CUDA toolkit. libonnx-dev + libprotobuf-dev build ONNX export (GLIMPSE_ONNX=AUTO builds without them, and `melanoma
# export` then says so); libopencv-dnn-dev is the independent ONNX runtime test_onnx_export checks it with.
set -euo pipefail

required=(
  build-essential cmake ninja-build
  libeigen3-dev libstb-dev libgtest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev zlib1g-dev
  libjpeg-dev libpng-dev libcpp-httplib-dev
  dataset-fashion-mnist
  clang libclang-rt-14-dev clang-format
  libonnx-dev libprotobuf-dev libopencv-dnn-dev
  libopenmpi-dev openmpi-bin
)
optional=(ccache chromium)
# npm for the browser test's playwright-core: Debian's, unless a node with its own npm is there.
command -v npm >/dev/null 2>&1 || optional+=(nodejs npm)

installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == "installed" ]]
}

missing=()
for p in "${required[@]}"; do installed "$p" || missing+=("$p"); done
missing_optional=()
for p in "${optional[@]}"; do installed "$p" || missing_optional+=("$p"); done

if ((${#missing[@]} == 0 && ${#missing_optional[@]} == 0)); then
  echo "deps: all packages present"
  exit 0
fi

if ((${#missing[@]} == 0)); then
  # Only optional ones are missing: try, but never fail the build for them.
  echo "deps: optional packages missing: ${missing_optional[*]} (trying to install)"
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  elif ((${#missing[@]} > 0)); then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run this script as root (or install them with apt-get) and try again" >&2
    exit 1
  else
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ((${#missing[@]} > 0)); then
  echo "deps: installing ${missing[*]} ${missing_optional[*]}"
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
  if ((${#missing_optional[@]} > 0)); then
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing_optional[@]}" ||
      echo "deps: optional ${missing_optional[*]} not installed (the build works without)"
  fi
else
  { "${SUDO[@]}" apt-get update -q && "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing_optional[@]}"; } ||
    echo "deps: optional ${missing_optional[*]} not installed (the build works without)"
fi

for p in "${required[@]}"; do
  installed "$p" || { echo "deps: $p still missing after apt-get" >&2; exit 1; }
done
echo "deps: done"
