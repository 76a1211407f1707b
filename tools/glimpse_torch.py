#!/usr/bin/env python3
"""glimpse's models as PyTorch modules, with the same state_dict names, and a loader for glimpse
checkpoints: a network trained in glimpse continues its life in PyTorch.

    /usr/bin/python3 tools/glimpse_torch.py model.safetensors      # loads it, prints the logits of noise

    from glimpse_torch import load_glimpse
    model, meta = load_glimpse("model.safetensors")   # eval mode; meta: the checkpoint's metadata
    probs = model(x).softmax(1)                       # x: [N, 3, S, S], normalised as glimpse does

The architectures (layers/models.h): small-gap, bn-gap, bn-gap-fine, vgg16-gap, resnet18-gap.
load_state_dict runs strict, so PyTorch itself refuses a missing key, an unexpected key or a
shape that differs, naming the key and both shapes. tests/test_torch_import.cpp checks the other
way round: weights of these modules (tools/make_round_trip_fixture.py) loaded into glimpse give
the logits PyTorch gave.
"""
import json
import struct
import sys

import torch
import torch.nn as nn
import torchvision


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


class GapNet(nn.Module):
    """features -> gap -> classifier (small-gap, bn-gap, bn-gap-fine, vgg16-gap)."""

    def __init__(self, features, width, num_classes):
        super().__init__()
        self.features = features
        self.gap = GlobalAvgPool()
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.gap(self.features(x)))


def small_gap(num_classes):
    return GapNet(nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU()), 128, num_classes)


def bn_gap(num_classes, fine=False):
    layers, c, pools = [], 3, 0
    for v in (32, 0, 32, 32, 0, 64, 64, 0, 128, 128):
        if v == 0:
            pools += 1
            if not fine or pools < 3:
                layers.append(nn.MaxPool2d(2))
            continue
        d = 2 if fine and pools == 3 else 1
        layers += [nn.Conv2d(c, v, 3, padding=d, dilation=d, bias=False), nn.BatchNorm2d(v), nn.ReLU()]
        c = v
    return GapNet(nn.Sequential(*layers), 128, num_classes)


def vgg16_gap(num_classes):
    features = list(torchvision.models.vgg16(weights=None).features.children())[:30]  # drop the 5th pool
    features += [nn.Conv2d(512, 512, 3, padding=1), nn.ReLU()]  # the extra conv (features.30)
    return GapNet(nn.Sequential(*features), 512, num_classes)


def resnet18_gap(num_classes):
    # torchvision's resnet18 is glimpse's resnet18-gap (AdaptiveAvgPool2d(1) + flatten = GAP); its
    # num_batches_tracked buffers are not in glimpse's files, so they are left out of the strict load.
    return torchvision.models.resnet18(weights=None, num_classes=num_classes)


ARCHS = {"small-gap": small_gap, "bn-gap": bn_gap, "bn-gap-fine": lambda k: bn_gap(k, fine=True),
         "vgg16-gap": vgg16_gap, "resnet18-gap": resnet18_gap}


def read_safetensors(path):
    """(tensors, metadata) of a safetensors file (F32 only, as glimpse writes)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        if e["dtype"] != "F32":
            raise ValueError("%s: %s has dtype %s; glimpse writes F32" % (path, name, e["dtype"]))
        a, b = e["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(e["shape"])
    return tensors, meta


def load_glimpse(path):
    tensors, meta = read_safetensors(path)
    if meta.get("arch") not in ARCHS:
        raise ValueError("%s: architecture %r; known: %s" % (path, meta.get("arch"), ", ".join(ARCHS)))
    model = ARCHS[meta["arch"]](int(meta["classes"]))
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state[k] = v  # PyTorch's own counter; glimpse has none
    model.load_state_dict(state, strict=True)
    return model.eval(), meta


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    model, meta = load_glimpse(sys.argv[1])
    size = int(meta["input_size"])
    with torch.no_grad():
        logits = model(torch.randn(2, 3, size, size))
    print("%s: %s, %s classes at %d px; logits of two noise images:\n%s"
          % (sys.argv[1], meta["arch"], meta["classes"], size, logits))
