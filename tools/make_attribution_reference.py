#!/usr/bin/env python3
"""Writes tests/fixtures/attribution_reference.safetensors: attribution maps of the W1 network
(small_gap_net(3), built for 32x32 inputs) computed in PyTorch, for
tests/test_attribution_reference.cpp to compare glimpse's attribution methods against.

    /usr/bin/python3 tools/make_attribution_reference.py      # Debian's python3-torch

The network: torch.manual_seed(1) default initialisation of SmallGapNet below (glimpse's layout and
state_dict names). Input: 2 images [2, 3, 32, 32], U(-1, 1). Targets: TARGETS (fixed, not predicted).
Everything is computed in float64 on the float32 weights and input; the stored values are the float32
roundings. The file is written by the pure-Python writer of tools/safetensors_writer.py.

Keys (all F32):
  <state_dict name>        the weights
  input [2,3,32,32], targets [2] (class indices as floats), logits [2,3]
  gradcam [2,8,8]          layer features.7 (the last ReLU, the GAP's input), A [N,K,h,w], G = dy_c/dA:
                           ReLU(sum_k mean_xy(G_k) A_k)
  gradcampp [2,8,8]        Grad-CAM++: a = G^2 / (2 G^2 + sum_xy(A_k) G^3) (0 where the denominator is 0),
                           w_k = sum_xy a ReLU(G), ReLU(sum_k w_k A_k)
  guided_backprop [2,3,32,32]  input gradient with every ReLU's backward g * [x > 0] * [g > 0]
  saliency [2,3,32,32]     dy_c/dx (signed); glimpse's map is max over channels of |.|
  ig [2,3,32,32]           Integrated Gradients, zero baseline, IG_STEPS = 64 intervals, trapezoid rule:
                           (x - x') * sum_{k=0..m} w_k dy_c/dx(x' + (k/m)(x - x')), w_0 = w_m = 1/(2m),
                           other w_k = 1/m
  ig_completeness [2]      y_c(x) - y_c(baseline), what sum(ig) of each image should approach
  occlusion [2,32,32]      see OCCLUSION below

OCCLUSION (the exact definition glimpse's attr::occlusion is checked against):
  window side OCC_WINDOW = 8, stride OCC_STRIDE = 4, fill value OCC_FILL = 0.0, on 32x32 images.
  Window top-left corners: rows r in {0, s, 2s, ...} with r + window <= H, plus the row H - window
  when the stride does not land on it (so the last window is flush with the border and every pixel
  is covered); the same for columns. (With 32, 8, 4 the corners are 0, 4, ..., 24: no extra one.)
  For each window: x_occ = x with the window set to the fill value in ALL colour channels;
  drop = y_c(x) - y_c(x_occ), y_c the target's LOGIT (not the probability).
  occlusion[n, i, j] = mean of `drop` over the windows that cover pixel (i, j)
  (sum of drops / number of covering windows; 0 if no window covers it).
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "attribution_reference.safetensors")

NUM_CLASSES = 3
SIZE = 32
TARGETS = [1, 2]
IG_STEPS = 64
OCC_WINDOW, OCC_STRIDE, OCC_FILL = 8, 4, 0.0


class GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes g * [x > 0] * [g > 0] (guided backpropagation)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * (x > 0).to(g.dtype) * (g > 0).to(g.dtype)


class ReLU(nn.Module):
    guided = False

    def forward(self, x):
        return GuidedReLU.apply(x) if ReLU.guided else torch.relu(x)


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


class SmallGapNet(nn.Module):
    """glimpse's small_gap_net(num_classes): the same children and parameter names."""

    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), ReLU())
        self.gap = GlobalAvgPool()
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x, capture=None):
        a = self.features(x)
        if capture is not None:
            capture.append(a)
        return self.classifier(self.gap(a))


def select(logits, targets):
    return logits[torch.arange(logits.shape[0]), targets]


def layer_grads(model, x, targets):
    cap = []
    logits = model(x, cap)
    a = cap[0]
    (g,) = torch.autograd.grad(select(logits, targets).sum(), a)
    return a.detach(), g.detach()


def gradcam(a, g):
    alpha = g.mean(dim=(2, 3), keepdim=True)
    return torch.relu((alpha * a).sum(dim=1))


def gradcam_pp(a, g):
    g2, g3 = g ** 2, g ** 3
    s = a.sum(dim=(2, 3), keepdim=True)
    denom = 2 * g2 + s * g3
    aij = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)),
                      torch.zeros_like(denom))
    w = (aij * torch.relu(g)).sum(dim=(2, 3), keepdim=True)
    return torch.relu((w * a).sum(dim=1))


def input_grad(model, x, targets):
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(select(model(xi), targets).sum(), xi)
    return g.detach()


def integrated_gradients(model, x, targets, steps):
    base = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for k in range(steps + 1):
        w = (0.5 if k in (0, steps) else 1.0) / steps
        total += w * input_grad(model, base + (k / steps) * (x - base), targets)
    with torch.no_grad():
        gap = select(model(x), targets) - select(model(base), targets)
    return (x - base) * total, gap


def corners(size, window, stride):
    c = list(range(0, size - window + 1, stride))
    if c[-1] != size - window:
        c.append(size - window)
    return c


def occlusion(model, x, targets, window, stride, fill):
    n, _, h, w = x.shape
    with torch.no_grad():
        base = select(model(x), targets)
        total = torch.zeros(n, h, w, dtype=x.dtype)
        count = torch.zeros(n, h, w, dtype=x.dtype)
        for r in corners(h, window, stride):
            for c in corners(w, window, stride):
                xo = x.clone()
                xo[:, :, r:r + window, c:c + window] = fill
                drop = base - select(model(xo), targets)
                total[:, r:r + window, c:c + window] += drop[:, None, None]
                count[:, r:r + window, c:c + window] += 1
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def entry(name, t):
    return (name, "F32", list(t.shape), t.detach().float().reshape(-1).tolist())


def main():
    torch.manual_seed(1)
    model = SmallGapNet(NUM_CLASSES).eval()
    x32 = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    state32 = {n: t.detach().clone() for n, t in model.state_dict().items()}
    model = model.double()
    x = x32.double()
    targets = torch.tensor(TARGETS)

    with torch.no_grad():
        logits = model(x)
    a, g = layer_grads(model, x, targets)
    sal = input_grad(model, x, targets)
    ReLU.guided = True
    gb = input_grad(model, x, targets)
    ReLU.guided = False
    ig, ig_gap = integrated_gradients(model, x, targets, IG_STEPS)
    occ = occlusion(model, x, targets, OCC_WINDOW, OCC_STRIDE, OCC_FILL)

    tensors = [entry(n, t) for n, t in state32.items()]
    tensors += [entry("input", x32), entry("targets", targets.float()), entry("logits", logits),
                entry("gradcam", gradcam(a, g)), entry("gradcampp", gradcam_pp(a, g)),
                entry("guided_backprop", gb), entry("saliency", sal), entry("ig", ig),
                entry("ig_completeness", ig_gap), entry("occlusion", occ)]
    metadata = {"source": "tools/make_attribution_reference.py", "torch": torch.__version__,
                "model": "small_gap_net(3, 32)", "seed": "1", "compute_dtype": "float64",
                "ig_steps": str(IG_STEPS), "occlusion_window": str(OCC_WINDOW),
                "occlusion_stride": str(OCC_STRIDE), "occlusion_fill": str(OCC_FILL)}
    write_safetensors(OUT, tensors, metadata)
    print("wrote %s (%d bytes, %d tensors)" % (OUT, os.path.getsize(OUT), len(tensors)))
    print("logits", logits.tolist())
    print("IG sums", ig.sum(dim=(1, 2, 3)).tolist(), "vs y(x) - y(0)", ig_gap.tolist())


if __name__ == "__main__":
    main()
