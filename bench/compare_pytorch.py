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
  w3_*               attribution throughput on the W1 net, one call on a batch of 32 images, in ms
                     per image (definitions in apps/glimpse-bench/main.cpp): Integrated Gradients
                     (64 steps), SmoothGrad (16 samples), occlusion (8x8, stride 4), Score-CAM,
                     deletion + insertion curves (16 steps), localize's per-image metric set. The
                     perturbed copies go through the network in the same chunks as glimpse's (64
                     copies per pass; Score-CAM 32), written as a PyTorch user would (torch ops,
                     no per-pixel Python loops).
"""
import argparse
import json
import math
import os
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


# ---- W3: attribution throughput -------------------------------------------------------------

def normalize_maps(m):
    """Per image min-max to [0, 1] over the last two dims; a constant map gives zeros."""
    lo = m.amin(dim=(-2, -1), keepdim=True)
    hi = m.amax(dim=(-2, -1), keepdim=True)
    rng = hi - lo
    return torch.where(rng > 0, (m - lo) / rng.clamp_min(1e-30), torch.zeros_like(m))


def input_grad(m, xs, targets):
    xs = xs.detach().requires_grad_(True)
    logits, _ = forward(m, xs)
    sel = logits.gather(1, targets[:, None]).sum()
    (g,) = torch.autograd.grad(sel, xs)
    return g


def predicted(m, x):
    with torch.no_grad():
        return forward(m, x)[0].argmax(1)


def w3_ig(m, x, steps=64, chunk=64):
    n = x.shape[0]
    t = predicted(m, x)
    acc = torch.zeros_like(x)
    per = max(1, chunk // n)
    for k0 in range(0, steps + 1, per):
        ks = list(range(k0, min(steps + 1, k0 + per)))
        a = torch.tensor([k / steps for k in ks])
        xs = (a[:, None, None, None, None] * x[None]).reshape(-1, *x.shape[1:])  # zero baseline
        g = input_grad(m, xs, t.repeat(len(ks))).reshape(len(ks), *x.shape)
        w = torch.tensor([(0.5 if k in (0, steps) else 1.0) / steps for k in ks])
        acc += (w[:, None, None, None, None] * g).sum(0)
    raw = x * acc
    return normalize_maps(raw.sum(1).abs())


def w3_smoothgrad(m, x, samples=16, noise=0.15, chunk=64, seed=0):
    n = x.shape[0]
    t = predicted(m, x)
    flat = x.reshape(n, -1)
    sigma = noise * (flat.amax(1) - flat.amin(1))
    gen = torch.Generator().manual_seed(seed)
    acc = torch.zeros_like(x)
    per = max(1, chunk // n)
    for s0 in range(0, samples, per):
        ns = min(per, samples - s0)
        z = torch.randn(ns, 1, *x.shape[1:], generator=gen)  # one field per sample, shared by the images
        xs = (x[None] + sigma[None, :, None, None, None] * z).reshape(-1, *x.shape[1:])
        acc += input_grad(m, xs, t.repeat(ns)).reshape(ns, *x.shape).sum(0)
    acc /= samples
    return normalize_maps(acc.abs().amax(1))


def window_starts(size, win, stride):
    s = list(range(0, size - win + 1, stride))
    if s[-1] != size - win:
        s.append(size - win)
    return s


def w3_occlusion(m, x, win=8, stride=4, chunk=64):
    n, c, h, w = x.shape
    with torch.no_grad():
        logits, _ = forward(m, x)
        t = logits.argmax(1)
        score = logits.gather(1, t[:, None])[:, 0]
        ys, xs_ = window_starts(h, win, stride), window_starts(w, win, stride)
        wm = torch.zeros(len(ys) * len(xs_), h, w)
        for i, y0 in enumerate(ys):
            for j, x0 in enumerate(xs_):
                wm[i * len(xs_) + j, y0:y0 + win, x0:x0 + win] = 1
        keep = 1 - wm[:, None]  # [W, 1, h, w]
        cover = wm.sum(0)
        nw = len(wm)
        tk = t.repeat_interleave(nw)
        drops = []
        for k0 in range(0, n * nw, chunk):  # the copies of each chunk only (fill 0), image-major
            ks = torch.arange(k0, min(n * nw, k0 + chunk))
            lg, _ = forward(m, x[ks // nw] * keep[ks % nw])
            drops.append(lg.gather(1, tk[ks, None])[:, 0])
        d = score.repeat_interleave(nw) - torch.cat(drops)
        out = (d.reshape(n, -1) @ wm.reshape(len(wm), -1)).reshape(n, h, w) / cover
        return normalize_maps(out)


def w3_scorecam(m, x, chunk=32):
    n, c, h, w = x.shape
    with torch.no_grad():
        logits, a = forward(m, x)
        t = logits.argmax(1)
        k = a.shape[1]
        raws = []
        for i in range(n):
            ai = a[i]
            live = (ai.reshape(k, -1) != 0).any(1).nonzero()[:, 0]
            masks = normalize_maps(F.interpolate(ai[:, None], size=(h, w), mode='bilinear',
                                                 align_corners=False)[:, 0])
            wts = torch.zeros(k)
            for b0 in range(0, len(live), chunk):
                idx = live[b0:b0 + chunk]
                p = F.softmax(forward(m, x[i][None] * masks[idx][:, None])[0], 1)
                wts[idx] = p[:, t[i]]
            raws.append(F.relu(torch.einsum('k,khw->hw', wts, ai)))
        up = F.interpolate(torch.stack(raws)[:, None], size=(h, w), mode='bilinear', align_corners=False)[:, 0]
        return normalize_maps(up)


def gaussian_blur(x, sigma):
    r = int(math.ceil(3 * sigma))
    k = torch.exp(-0.5 * torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / sigma ** 2)
    k = k / k.sum()
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode='replicate'), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode='replicate'), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def w3_curves(m, x, maps, t, steps=16, sigma=5 * 64 / 224, chunk=64):
    """Deletion (zero baseline) and insertion (blur) AUCs of every image: [n], [n]."""
    n, c, h, w = x.shape
    hw = h * w
    with torch.no_grad():
        order = torch.sort(maps.reshape(n, hw), dim=1, descending=True, stable=True)[1]
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(hw).expand(n, hw))
        counts = torch.tensor([round(k / steps * hw) for k in range(steps + 1)])
        taken = (rank[:, None, :] < counts[None, :, None]).float()[:, :, None]  # [n, S+1, 1, hw]
        xf = x.reshape(n, 1, c, hw)
        blur = gaussian_blur(x, sigma).reshape(n, 1, c, hw)
        dele = xf * (1 - taken)                    # pixels taken are set to 0
        ins = blur * (1 - taken) + xf * taken      # pixels taken come from the image
        copies = torch.cat([dele, ins], 1).reshape(-1, c, h, w)  # [n * 2(S+1), c, h, w]
        tk = t.repeat_interleave(2 * (steps + 1))
        probs = []
        for k0 in range(0, copies.shape[0], chunk):
            lg, _ = forward(m, copies[k0:k0 + chunk])
            probs.append(F.softmax(lg, 1).gather(1, tk[k0:k0 + chunk, None])[:, 0])
        p = torch.cat(probs).reshape(n, 2, steps + 1)
        auc = ((p[..., :-1] + p[..., 1:]) / 2).sum(-1) / steps
        return auc[:, 0], auc[:, 1]


def disc_mask(i, side):
    cx, cy, r = 20 + (7 * i) % 24, 20 + (11 * i) % 24, 8 + i % 12
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r)


def w3_localize(m, x, maps, t, masks, side):
    """localize's per-image metric set (see glimpse-bench): 19 thresholds, fixed 0.5, energy,
    pointing game, and both curves."""
    dele, ins = w3_curves(m, x, maps, t)
    n = x.shape[0]
    thr = torch.tensor([0.05 * k for k in range(1, 20)] + [0.5])
    tol = 15.0 / 224.0 * side
    mp = maps.reshape(n, -1)
    g = torch.stack(masks).reshape(n, -1)
    # every image at once: [n, 20 thresholds, hw]
    pred = mp[:, None] >= thr[None, :, None]
    gb = g[:, None]
    inter = (pred & gb).sum(2).float()
    a, b = pred.sum(2).float(), gb.sum(2).float()
    dice = torch.where(a + b > 0, 2 * inter / (a + b).clamp_min(1), torch.ones_like(a))
    uni = (pred | gb).sum(2).float()
    iou = torch.where(uni > 0, inter / uni.clamp_min(1), torch.ones_like(a))
    e = mp.clamp_min(0)
    es = e.sum(1)
    energy = torch.where(es > 0, (e * g).sum(1) / es.clamp_min(1e-30), torch.zeros_like(es))
    peak = mp.argmax(1)
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing='ij')
    dist = torch.hypot((xx.reshape(1, -1) - (peak % side)[:, None]).double(),
                       (yy.reshape(1, -1) - (peak // side)[:, None]).double())
    dist = torch.where(g, dist, torch.full_like(dist, math.inf)).amin(1)
    return float(dice.sum() + iou.sum() + energy.sum() + (dist <= tol).sum() + dele.sum() + ins.sum())


def gradcam_maps(m, x):
    with torch.no_grad():
        a0 = m.features(x)
    a = a0.detach().requires_grad_(True)
    logits = m.classifier(a.mean(dim=(2, 3)))
    t = logits.argmax(1)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), a)
    raw = F.relu((g.mean(dim=(2, 3))[:, :, None, None] * a.detach()).sum(1))
    up = F.interpolate(raw[:, None], size=x.shape[2:], mode='bilinear', align_corners=False)[:, 0]
    return normalize_maps(up), t


def row(key, st, unit):
    print(f'  {key:<20} {st[0]:12.3f} {unit:<5}  [{st[1]:.3f} .. {st[2]:.3f}]', flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--json')
    ap.add_argument('--only', choices=['w1', 'w2', 'w3', 'w3g'])  # w3g: W3's IG and SmoothGrad only
    ap.add_argument('--quick', action='store_true')
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    print(f'pytorch {torch.__version__}: {torch.get_num_threads()} threads{" (quick)" if args.quick else ""}')
    res, ranges, checks = {}, {}, {}
    # The instruction sets PyTorch was capped at (bench/compare.sh TORCH_ISA=avx2), recorded with the results.
    for var in ('ATEN_CPU_CAPABILITY', 'ONEDNN_MAX_CPU_ISA', 'OPENBLAS_CORETYPE'):
        if var in os.environ:
            checks[var] = os.environ[var]
            print(f'  {var}={os.environ[var]}')

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

    if args.only in (None, 'w3', 'w3g'):
        torch.manual_seed(1)
        net = small_gap_net().eval()
        g = torch.Generator().manual_seed(44)
        n, side = 32, 64
        x = torch.rand(n, 3, side, side, generator=g) * 2 - 1
        print(f'W3 attribution throughput, small-gap 3x64x64, batch {n} (ms per image)')
        plan = (0, 1, 1) if args.quick else (1, 3, 1)
        per_image = lambda s, it: 1e3 * s / (it * n)
        maps, t = gradcam_maps(net, x)
        masks = [disc_mask(i, side) for i in range(n)]
        put('w3_ig_ms', measure(plan, lambda: w3_ig(net, x), per_image), 'ms')
        put('w3_smoothgrad_ms', measure(plan, lambda: w3_smoothgrad(net, x), per_image), 'ms')
        if args.only != 'w3g':  # w3g: the two forward + input-backward methods only
            put('w3_occlusion_ms', measure(plan, lambda: w3_occlusion(net, x), per_image), 'ms')
            put('w3_scorecam_ms', measure(plan, lambda: w3_scorecam(net, x), per_image), 'ms')
            put('w3_curves_ms', measure(plan, lambda: w3_curves(net, x, maps, t), per_image), 'ms')
            put('w3_localize_ms', measure(plan, lambda: w3_localize(net, x, maps, t, masks, side), per_image), 'ms')

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
