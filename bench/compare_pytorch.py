#!/usr/bin/python3
"""The standard workloads W1 and W2 of BENCHMARKS.md in PyTorch, timed exactly as
apps/glimpse-bench/main.cpp times glimpse (same protocol, same JSON keys).

Run with Debian's python3-torch:  /usr/bin/python3 bench/compare_pytorch.py [--threads 2] [--json F]
Never needed by the build or the tests.

Protocol: inputs U(-1, 1) from fixed seeds; warm-up iterations, then `blocks` timed blocks of
`iters` iterations; a block's figure is images/s or ms per call; reported: median (min, max).
  w1_train_ips       batch 32, forward + CE + backward + SGD(lr 0.01, momentum 0.9); a block = 20
                     distinct batches
  w1_infer_ips       batch 32, forward + softmax under no_grad; a block = 20 batches
  w1_cam_ms          one image: forward (hook on the last conv+ReLU), c = argmax,
                     sum_k W[c,k] A_k, bilinear to 64x64
  w1_gradcam_ms      one image: forward with A detached as a leaf (nothing below it on the tape),
                     torch.autograd.grad(y_c, A) -- the backward stops at A
  w1_gradcam_full_ms one image: hook keeps A (retain_grad), y_c.backward() through the whole
                     network (all parameter gradients) -- what hook-based libraries do
  w2_*               VGG16-GAP (13 convs, no 5th maxpool), batch 1, 224x224, A = features.29
"""
import argparse
import json
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def small_gap_net(classes=3):
    m = nn.Module()
    m.features = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU())
    m.classifier = nn.Linear(128, classes)
    return m


def vgg16_gap(classes=3):
    cfg = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512]
    layers, c = [], 3
    for v in cfg:
        if v == 'M':
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    m = nn.Module()
    m.features = nn.Sequential(*layers)  # features.29 = conv5_3's ReLU
    m.classifier = nn.Linear(512, classes)
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode='fan_out', nonlinearity='relu')
            nn.init.zeros_(mod.bias)
    nn.init.normal_(m.classifier.weight, 0, 0.01)
    nn.init.zeros_(m.classifier.bias)
    return m


def forward(m, x, hook=None):
    """features -> GAP -> linear; `hook(A)` may replace the last feature map A."""
    a = m.features(x)
    if hook is not None:
        a = hook(a) or a
    return m.classifier(a.mean(dim=(2, 3))), a


def measure(plan, fn, per_block):
    warmup, blocks, iters = plan
    for _ in range(warmup):
        fn()
    v = []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        v.append(per_block(time.perf_counter() - t0, iters))
    return statistics.median(v), min(v), max(v)


def ms(s, iters):
    return 1e3 * s / iters


def cam(m, x, with_raw=False):
    with torch.no_grad():
        logits, a = forward(m, x)
        c = int(logits[0].argmax())
        w = m.classifier.weight[c]
        raw = torch.einsum('k,khw->hw', w, a[0])
        up = F.interpolate(raw[None, None], size=x.shape[2:], mode='bilinear', align_corners=False)[0, 0]
        return (up, raw) if with_raw else up


def gradcam(m, x, with_raw=False):
    # Forward below A without a tape, A as a leaf: autograd.grad runs only the layers above A.
    with torch.no_grad():
        a0 = m.features(x)
    a = a0.detach().requires_grad_(True)
    logits = m.classifier(a.mean(dim=(2, 3)))
    c = int(logits[0].argmax())
    (g,) = torch.autograd.grad(logits[0, c], a)
    w = g[0].mean(dim=(1, 2))
    raw = F.relu(torch.einsum('k,khw->hw', w, a[0].detach()))
    up = F.interpolate(raw[None, None], size=x.shape[2:], mode='bilinear', align_corners=False)[0, 0]
    return (up, raw) if with_raw else up


def gradcam_full(m, x):
    keep = {}

    def hook(a):
        a.retain_grad()
        keep['a'] = a

    logits, _ = forward(m, x, hook)
    c = int(logits[0].argmax())
    m.zero_grad()
    logits[0, c].backward()
    a = keep['a']
    w = a.grad[0].mean(dim=(1, 2))
    with torch.no_grad():
        raw = F.relu(torch.einsum('k,khw->hw', w, a[0]))
        return F.interpolate(raw[None, None], size=x.shape[2:], mode='bilinear', align_corners=False)[0, 0]


def check_identity(m, x):
    """CAM == Grad-CAM * (h*w) on a GAP -> linear head (compared at the layer's resolution:
    ReLU does not commute with the upsampling)."""
    c = F.relu(cam(m, x, True)[1])
    g = gradcam(m, x, True)[1]
    hw = g.shape[0] * g.shape[1]
    err = float((c - g * hw).norm() / c.norm().clamp_min(1e-30))
    assert err < 1e-4, f'CAM vs Grad-CAM*hw relative error {err}'
    return err


def row(key, st, unit):
    print(f'  {key:<20} {st[0]:12.3f} {unit:<5}  [{st[1]:.3f} .. {st[2]:.3f}]', flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--json')
    ap.add_argument('--only', choices=['w1', 'w2'])
    ap.add_argument('--quick', action='store_true')
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    print(f'pytorch {torch.__version__}: {torch.get_num_threads()} threads{" (quick)" if args.quick else ""}')
    res, ranges, checks = {}, {}, {}

    def put(key, st, unit):
        res[key], ranges[key] = st[0], [st[1], st[2]]
        row(key, st, unit)

    if args.only in (None, 'w1'):
        torch.manual_seed(1)
        net = small_gap_net()
        g = torch.Generator().manual_seed(42)
        batches = [torch.rand(32, 3, 64, 64, generator=g) * 2 - 1 for _ in range(20)]
        labels = [torch.randint(0, 3, (32,), generator=g) for _ in range(20)]
        print('W1 small-gap 3x64x64, batch 32')
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        step = [0]

        def train_step():
            b = step[0] % 20
            step[0] += 1
            opt.zero_grad()
            logits, _ = forward(net, batches[b])
            F.cross_entropy(logits, labels[b]).backward()
            opt.step()

        tp = (5, 3, 20) if args.quick else (20, 7, 20)
        put('w1_train_ips', measure(tp, train_step, lambda s, it: 20 * 32 / s), 'img/s')
        checks['w1_train_peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        net.eval()
        ib = [0]

        def infer():
            with torch.no_grad():
                logits, _ = forward(net, batches[ib[0] % 20])
                ib[0] += 1
                F.softmax(logits, 1)

        put('w1_infer_ips', measure(tp, infer, lambda s, it: 20 * 32 / s), 'img/s')

        gi = torch.Generator().manual_seed(7)
        img = torch.rand(1, 3, 64, 64, generator=gi) * 2 - 1
        checks['w1_cam_gradcam_rel_err'] = check_identity(net, img)
        gf = gradcam_full(net, img)
        gl = gradcam(net, img)
        err = float((gf - gl).norm() / gl.norm().clamp_min(1e-30))
        assert err < 1e-4, f'full-backward Grad-CAM differs ({err})'
        ap_ = (10, 3, 20) if args.quick else (30, 9, 50)
        put('w1_cam_ms', measure(ap_, lambda: cam(net, img), ms), 'ms')
        put('w1_gradcam_ms', measure(ap_, lambda: gradcam(net, img), ms), 'ms')
        put('w1_gradcam_full_ms', measure(ap_, lambda: gradcam_full(net, img), ms), 'ms')

    if args.only in (None, 'w2'):
        torch.manual_seed(2)
        vgg = vgg16_gap().eval()
        g = torch.Generator().manual_seed(43)
        img = torch.rand(1, 3, 224, 224, generator=g) * 2 - 1
        print('W2 vgg16-gap 3x224x224, batch 1')
        checks['w2_cam_gradcam_rel_err'] = check_identity(vgg, img)
        wp = (1, 3, 1) if args.quick else (2, 5, 2)

        def fwd():
            with torch.no_grad():
                forward(vgg, img)

        put('w2_fwd_ms', measure(wp, fwd, ms), 'ms')
        put('w2_gradcam_ms', measure(wp, lambda: gradcam(vgg, img), ms), 'ms')
        put('w2_gradcam_full_ms', measure(wp, lambda: gradcam_full(vgg, img), ms), 'ms')

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'peak resident memory: {rss:.1f} MiB')
    if args.json:
        out = dict(framework='pytorch ' + torch.__version__, threads=args.threads, quick=args.quick,
                   peak_rss_mb=rss, checks=checks, ranges=ranges, **res)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=2)
            f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
