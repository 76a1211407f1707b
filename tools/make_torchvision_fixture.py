#!/usr/bin/env python3
"""Writes tests/fixtures/torchvision_reference.safetensors: what torchvision's own ResNet-18 and
VGG-16 (Debian python3-torchvision) compute, for tests/test_torch_import.cpp to compare glimpse's
resnet18-gap and vgg16-gap against after importing the same weights under torchvision's names.

    /usr/bin/python3 tools/make_torchvision_fixture.py

The two networks hold 11.7M + 138M parameters, far too many to commit. Their weights are instead a
pure function of (state_dict key, element index) -- `fill` below, integer arithmetic only, so the
C++ test regenerates them bit for bit -- and the fixture keeps only what torchvision computed
(about 0.3 MB):
  input [2, 3, 64, 64]                 the images (the same integer hash)
  resnet18.layer4 [2, 512, 2, 2]       torchvision resnet18(num_classes=3): output of layer4
  resnet18.logits [2, 3]               its fc(avgpool(layer4))  (= glimpse's GAP + Linear)
  vgg16.features29 [2, 512, 4, 4]      torchvision vgg16: output of features[:30] (conv5_3's ReLU)
and, in the metadata, each network's state_dict keys and shapes in torchvision's order
("resnet18.keys", "vgg16.keys": JSON [[key, [shape]], ...]), num_batches_tracked included, so the
test builds the file a user's converter would give from torchvision's real names.
The forward runs in float64 on the float32 weights and images; eval mode (running statistics).
"""
import json
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "torchvision_reference.safetensors")
M32 = 0xFFFFFFFF


def fnv1a(key):
    h = 0x811C9DC5
    for b in key.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & M32
    return h


def uniform(key, n):
    """n values in [-1, 1): a 32-bit integer hash (murmur3's finaliser) of (fnv1a(key), index)."""
    x = (torch.arange(n, dtype=torch.int64) + ((fnv1a(key) * 0x9E3779B1) & M32)) & M32
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & M32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & M32
    x = x ^ (x >> 16)
    return (x.to(torch.float64) / 2.0**32 * 2.0 - 1.0).to(torch.float32)


def fill(key, shape):
    """The value of state_dict[key]: He-uniform convolutions and linears, batch norm near identity."""
    n = 1
    for d in shape:
        n *= d
    u = uniform(key, n)
    if key.endswith("running_var"):
        v = 1.0 + 0.25 * (u + 1.0)
    elif key.endswith("running_mean") or key.endswith("bias"):
        v = 0.1 * u
    elif len(shape) == 1:  # batch-norm weight
        v = 1.0 + 0.2 * u
    else:  # conv / linear weight [out, in, ...]: bound sqrt(6 / fan_in)
        v = u * (6.0 / (n // shape[0])) ** 0.5
    return v.to(torch.float32).reshape(shape)


def load_formula_weights(model):
    state = model.state_dict()
    keys = []
    for k, t in state.items():
        keys.append([k, list(t.shape)])
        if not k.endswith("num_batches_tracked"):
            t.copy_(fill(k, list(t.shape)))
    return keys


def main():
    images = uniform("input", 2 * 3 * 64 * 64).reshape(2, 3, 64, 64) * 2.0
    tensors, meta = [("input", "F32", [2, 3, 64, 64], images.flatten().tolist())], {}

    resnet = torchvision.models.resnet18(weights=None, num_classes=3)
    meta["resnet18.keys"] = json.dumps(load_formula_weights(resnet))
    resnet = resnet.double().eval()
    vgg = torchvision.models.vgg16(weights=None)
    meta["vgg16.keys"] = json.dumps(load_formula_weights(vgg))
    vgg = vgg.double().eval()
    with torch.no_grad():
        x = images.double()
        r = resnet
        f = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        f = r.layer4(r.layer3(r.layer2(r.layer1(f))))
        logits = r.fc(torch.flatten(r.avgpool(f), 1))
        assert torch.allclose(logits, resnet(x))
        v = vgg.features[:30](x)
    tensors += [
        ("resnet18.layer4", "F32", list(f.shape), f.float().flatten().tolist()),
        ("resnet18.logits", "F32", list(logits.shape), logits.float().flatten().tolist()),
        ("vgg16.features29", "F32", list(v.shape), v.float().flatten().tolist()),
    ]
    meta["source"] = "torch %s, torchvision %s (tools/make_torchvision_fixture.py)" % (
        torch.__version__, torchvision.__version__)
    write_safetensors(OUT, tensors, meta)
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
