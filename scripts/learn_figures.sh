#!/usr/bin/env bash
# The figures of docs/learn/ (small PNGs in docs/learn/img/), made by the project's own code:
# a synthetic lesion set, a small network trained on it for a few epochs, then one photo explained
# by each method, the sanity-check strip (model and data randomization) and a reliability diagram. About a minute on 2 cores.
#
#   bash scripts/learn_figures.sh            # needs build/bin/melanoma
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MELANOMA:-build/bin/melanoma}
[[ -x $M ]] || { echo "learn_figures.sh: $M not built (cmake --build build --target melanoma)" >&2; exit 1; }
WORK=${WORK:-out/learn}
IMG=docs/learn/img
mkdir -p "$WORK" "$IMG"
$M synth --out "$WORK/syn" --count 240 --size 96 --seed 1 --progress none
$M train --data "$WORK/syn" --arch small-gap --size 64 --epochs 10 --seed 1 --progress none --out "$WORK/m.safetensors"
PHOTO=$WORK/syn/images/SYN_0000004.png  # a validation melanoma the model calls melanoma (p 0.94)
cp "$PHOTO" "$IMG/photo.png"
for method in cam gradcam gradcam++ scorecam deconvnet guided-backprop saliency smoothgrad integrated-gradients \
              occlusion lrp-epsilon lrp-alphabeta lrp-composite; do
  $M explain --model "$WORK/m.safetensors" --image "$PHOTO" --method "$method" --target melanoma --display 128 --threshold fraction:0.6 --max-regions 2 \
    --out "$IMG/$method.png" --json "$WORK/$method.json" --progress none
done
$M sanity --model "$WORK/m.safetensors" --data "$WORK/syn" --limit 8 --seed 1 --data-randomization \
  --methods cam,gradcam,saliency,guided-backprop,integrated-gradients --figure "$IMG/sanity.png" \
  --json "$WORK/sanity.json" --progress none | tee "$WORK/sanity.txt"
$M eval --model "$WORK/m.safetensors" --data "$WORK/syn" --split val --bootstrap 200 --reliability "$IMG/reliability.png" \
  --json "$WORK/eval.json" --progress none | tee "$WORK/eval.txt"
