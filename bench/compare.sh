#!/usr/bin/env bash
# Runs the standard workloads in glimpse and in PyTorch one after the other (same machine, same
# load) and prints the ratios glimpse / PyTorch. Usage:
#   bash bench/compare.sh [--threads N] [--only w1|w2] [--quick]      (extra args go to both)
# Environment: BUILD_DIR (default build-bench), OUT_DIR (default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-bench}
OUT_DIR=${OUT_DIR:-bench/results}
mkdir -p "$OUT_DIR"

if [[ ! -x "$BUILD_DIR/bin/glimpse-bench" ]]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGLIMPSE_CUDA=OFF >/dev/null
fi
cmake --build "$BUILD_DIR" --target glimpse-bench -- -j2 >/dev/null

stamp=$(date +%Y%m%d-%H%M%S)
G="$OUT_DIR/glimpse-$stamp.json"
P="$OUT_DIR/pytorch-$stamp.json"
echo "load before: $(uptime)"
"$BUILD_DIR/bin/glimpse-bench" --json "$G" "$@"
echo "load between: $(uptime)"
/usr/bin/python3 bench/compare_pytorch.py --json "$P" "$@"
echo "load after: $(uptime)"

/usr/bin/python3 - "$G" "$P" <<'PY'
import json, sys
g, p = (json.load(open(f)) for f in sys.argv[1:3])
# (key, higher_is_better, target on the ratio glimpse/pytorch)
rows = [('w1_train_ips', True, '>= 1.3'), ('w1_infer_ips', True, '>= 1.5'),
        ('w1_cam_ms', False, '<= 0.5'), ('w1_gradcam_ms', False, '<= 0.5'),
        ('w1_gradcam_full_ms', False, '<= 0.5'),
        ('w2_fwd_ms', False, '<= 1.0'), ('w2_gradcam_ms', False, '<= 1.0'),
        ('w2_gradcam_full_ms', False, '-')]
print()
print(f"{'metric':<20} {'better':<7} {'glimpse':>10} {'pytorch':>10} {'glimpse/pytorch':>16}  target")
for key, higher, target in rows:
    if key not in g or key not in p:
        continue
    r = g[key] / p[key]
    print(f"{key:<20} {'higher' if higher else 'lower':<7} {g[key]:10.3f} {p[key]:10.3f} {r:16.3f}  {target}")
gk, pk = g.get('checks', {}).get('w1_train_peak_rss_mb'), p.get('checks', {}).get('w1_train_peak_rss_mb')
if gk and pk:
    print(f"{'w1 train peak RSS':<20} {'lower':<7} {gk:10.1f} {pk:10.1f} {gk / pk:16.3f}  <= 1.0  (MiB)")
print("ips: images/s, higher is better; ms: latency, lower is better. Ratios from one run only.")
PY
