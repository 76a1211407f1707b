#!/usr/bin/env bash
# clang-format over every C++ and CUDA file of the project (.clang-format at the top).
#   bash scripts/format.sh           rewrites the files in place
#   bash scripts/format.sh --check   changes nothing; lists the files that differ and exits 1 if any does
# Uses clang-format-14 (Debian 12's) when present, else clang-format; another major version may
# format differently, so CI pins what deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
CF=$(command -v clang-format-14 || command -v clang-format || true)
[[ -n "$CF" ]] || { echo "format.sh: clang-format not found (apt-get install clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' | grep -v '^tests/fuzz/corpus/')
if [[ "${1:-}" == --check ]]; then
  bad=()
  for f in "${files[@]}"; do
    "$CF" --style=file --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
  done
  if ((${#bad[@]})); then
    echo "format.sh: ${#bad[@]} file(s) not formatted (run bash scripts/format.sh):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format.sh: ${#files[@]} files formatted"
  exit 0
fi
"$CF" --style=file -i "${files[@]}"
