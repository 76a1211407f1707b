#!/usr/bin/env bash
# Runs the standard workloads in glimpse and in PyTorch, alternating (glimpse W1, PyTorch W1,
# glimpse W2, PyTorch W2, ... for ROUNDS rounds) so both see the same machine load, and prints the
# ratios glimpse / PyTorch (median over rounds when ROUNDS > 1). Usage:
#   bash bench/compare.sh [--threads N] [--only w1|w2|w3] [--quick]   (arguments go to both)
# W3 (attribution throughput, several minutes a round on 2 cores) runs only when asked: --only w3.
# Environment: BUILD_DIR (default build-bench), OUT_DIR (default bench/results), ROUNDS (default 1),
# TORCH_ISA=avx2 to cap PyTorch at AVX2 + FMA (ATen kernels, oneDNN, OpenBLAS) on an AVX-512 host: with a
# glimpse built -DGLIMPSE_CPU_ARCH=x86-64-v3 that emulates an AVX2-only machine (bench/NOTES.md section 13).
# --only w3g runs W3's Integrated Gradients and SmoothGrad only.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
OUT_DIR=${OUT_DIR:-bench/results}
ROUNDS=${ROUNDS:-1}
mkdir -p "$OUT_DIR"
if [[ ${TORCH_ISA:-} == avx2 ]]; then
  export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell
fi

if [[ ! -f "$BUILD_DIR/build.ninja" && ! -f "$BUILD_DIR/Makefile" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGLIMPSE_CUDA=OFF >/dev/null
fi
cmake --build "$BUILD_DIR" --target glimpse-bench -- -j2 >/dev/null

workloads=(w1 w2)
args=()
while [[ $# -gt 0 ]]; do
  if [[ $1 == --only ]]; then workloads=("$2"); shift 2; else args+=("$1"); shift; fi
done

stamp=$(date +%Y%m%d-%H%M%S)
files=()
for ((r = 1; r <= ROUNDS; r++)); do
  for w in "${workloads[@]}"; do
    G="$OUT_DIR/$stamp-r$r-$w-glimpse.json"
    P="$OUT_DIR/$stamp-r$r-$w-pytorch.json"
    echo "== round $r, $w; load: $(uptime | sed 's/.*load average/load average/')"
    "$BUILD_DIR/bin/glimpse-bench" --only "$w" --json "$G" ${args[@]+"${args[@]}"}
    /usr/bin/python3 bench/compare_pytorch.py --only "$w" --json "$P" ${args[@]+"${args[@]}"}
    files+=("$G" "$P")
  done
done
echo "== done; load: $(uptime | sed 's/.*load average/load average/')"

/usr/bin/python3 - "${files[@]}" <<'PY'
import json, statistics, sys
pairs = [(json.load(open(g)), json.load(open(p))) for g, p in zip(sys.argv[1::2], sys.argv[2::2])]
# (key, higher is better, target on the ratio glimpse/pytorch)
rows = [('w1_train_ips', True, '>= 1.3'), ('w1_infer_ips', True, '>= 1.5'),
        ('w1_cam_ms', False, '<= 0.5'), ('w1_gradcam_ms', False, '<= 0.5'),
        ('w1_gradcam_full_ms', False, '<= 0.5'),
        ('w2_fwd_ms', False, '<= 1.0'), ('w2_gradcam_ms', False, '<= 1.0'),
        ('w2_gradcam_full_ms', False, '-'),
        ('w3_ig_ms', False, '<= 0.5'), ('w3_smoothgrad_ms', False, '<= 0.5'),
        ('w3_occlusion_ms', False, '<= 0.5'), ('w3_scorecam_ms', False, '<= 0.5'),
        ('w3_curves_ms', False, '<= 0.5'), ('w3_localize_ms', False, '<= 0.5')]
print()
print(f"{'metric':<20} {'better':<7} {'glimpse':>10} {'pytorch':>10} {'glimpse/pytorch':>16}  {'target':<7} per-round ratios")
for key, higher, target in rows:
    rs = [(g[key], p[key]) for g, p in pairs if key in g and key in p]
    if not rs:
        continue
    ratios = [a / b for a, b in rs]
    gm = statistics.median(a for a, _ in rs)
    pm = statistics.median(b for _, b in rs)
    ok = (statistics.median(ratios) >= float(target[3:])) if target[0] == '>' else \
         (statistics.median(ratios) <= float(target[3:])) if target[0] == '<' else None
    mark = '' if ok is None else ('met' if ok else 'MISSED')
    print(f"{key:<20} {'higher' if higher else 'lower':<7} {gm:10.3f} {pm:10.3f} {statistics.median(ratios):16.3f}  "
          f"{target:<7} {' '.join(f'{r:.3f}' for r in ratios)}  {mark}")
mem = [(g['checks']['w1_train_peak_rss_mb'], p['checks']['w1_train_peak_rss_mb']) for g, p in pairs
       if 'w1_train_peak_rss_mb' in g.get('checks', {}) and 'w1_train_peak_rss_mb' in p.get('checks', {})]
if mem:
    gm, pm = statistics.median(a for a, _ in mem), statistics.median(b for _, b in mem)
    print(f"{'w1 train peak RSS':<20} {'lower':<7} {gm:10.1f} {pm:10.1f} {gm / pm:16.3f}  <= 1.0   (MiB, process peak "
          "after W1 training)")
ab = [g['w3_curves_ms'] / g['w3_curves_loop_ms'] for g, _ in pairs if 'w3_curves_loop_ms' in g]
if ab:
    print(f"glimpse A/B: rise_curves / one image at a time = {statistics.median(ab):.3f} "
          f"(per round: {' '.join(f'{r:.3f}' for r in ab)})")
print("ips = images/s: higher is better, ratio > 1 means glimpse is faster.")
print("ms = latency: lower is better, ratio < 1 means glimpse is faster.")
PY
