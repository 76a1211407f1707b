#!/usr/bin/env python3
"""Writes tests/fixtures/small_gap_reference.safetensors: the W1 network of BENCHMARKS.md (small GAP
net, 3 classes) in PyTorch, with its weights, a fixed input batch, the logits, the cross-entropy loss
and every parameter gradient, for tests/test_torch_reference.cpp to compare glimpse against.

    /usr/bin/python3 tools/make_torch_reference.py      # Debian's python3-torch

Keys (all F32):
  <state_dict name>          the weights, torch.manual_seed(0) default initialisation
  input [2,3,16,16]          U(-1, 1)
  targets [2]                class indices, as floats
  logits [2,3], loss [1]     forward; loss = cross_entropy(logits, targets), mean over the batch
  grad.<param name>          d loss / d param
  case2.class_weights [3]    the same with cross_entropy(..., weight=class_weights):
  case2.loss, case2.grad.*   the weighted mean sum_i w[y_i] l_i / sum_i w[y_i]
The forward and backward run in float64 on the float32 weights and input, so the stored references
are the float32 roundings of (nearly) exact values. The file is written by the pure-Python writer of
tools/safetensors_writer.py, not by torch or the safetensors package.
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "small_gap_reference.safetensors")

NUM_CLASSES = 3
TARGETS = [0, 2]
CLASS_WEIGHTS = [1.0, 2.0, 0.5]


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


class SmallGapNet(nn.Module):
    """glimpse's small_gap_net(num_classes): the same children and parameter names."""

    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU())
        self.gap = GlobalAvgPool()
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x):
        return self.classifier(self.gap(self.features(x)))


def flat(t):
    return t.detach().reshape(-1).tolist()


def entry(name, t):
    return (name, "F32", list(t.shape), flat(t.float()))


def run_case(model, x, targets, weight):
    model.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits, targets, weight=weight, reduction="mean")
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return logits.detach(), loss.detach(), grads


def main():
    torch.manual_seed(0)
    model = SmallGapNet(NUM_CLASSES)
    x32 = torch.rand(2, 3, 16, 16) * 2 - 1  # U(-1, 1), float32
    state32 = {n: t.detach().clone() for n, t in model.state_dict().items()}

    model = model.double()
    x = x32.double()
    targets = torch.tensor(TARGETS, dtype=torch.long)
    logits, loss, grads = run_case(model, x, targets, None)
    _, loss2, grads2 = run_case(model, x, targets, torch.tensor(CLASS_WEIGHTS, dtype=torch.float64))

    tensors = [entry(n, t) for n, t in state32.items()]
    tensors += [entry("input", x32), entry("targets", torch.tensor(TARGETS, dtype=torch.float32)),
                entry("logits", logits), entry("loss", loss.reshape(1))]
    tensors += [entry("grad." + n, g) for n, g in grads.items()]
    tensors += [entry("case2.class_weights", torch.tensor(CLASS_WEIGHTS)), entry("case2.loss", loss2.reshape(1))]
    tensors += [entry("case2.grad." + n, g) for n, g in grads2.items()]
    metadata = {"source": "tools/make_torch_reference.py", "torch": torch.__version__,
                "model": "small_gap_net(3)", "seed": "0", "compute_dtype": "float64"}
    write_safetensors(OUT, tensors, metadata)
    print("wrote %s (%d bytes, %d tensors); loss %.6f, case2 loss %.6f"
          % (OUT, os.path.getsize(OUT), len(tensors), loss.item(), loss2.item()))


if __name__ == "__main__":
    main()
