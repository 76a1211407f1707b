#!/usr/bin/env python3
"""Writes tests/fixtures/glimpse_torch_round_trip.safetensors: the logits of the PyTorch twins of
glimpse's five architectures (tools/glimpse_torch.py), for tests/test_torch_import.cpp to check that
glimpse, given the same weights under the same names, computes the same -- so a glimpse checkpoint
loaded into those modules (load_glimpse) is the same network.

    /usr/bin/python3 tools/make_round_trip_fixture.py

Weights: make_torchvision_fixture.fill(key, shape) for every state_dict key (num_batches_tracked
aside), regenerated bit for bit by the C++ test, so no weights are committed. Per architecture:
  <arch>.input [2, 3, S, S], <arch>.logits [2, 3]   (S = 32; float64 forward, eval mode)
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from glimpse_torch import ARCHS  # noqa: E402
from make_torchvision_fixture import fill, uniform  # noqa: E402
from safetensors_writer import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "glimpse_torch_round_trip.safetensors")
SIZE = 32


def main():
    tensors = []
    for arch, make in ARCHS.items():
        model = make(3)
        with torch.no_grad():
            for k, t in model.state_dict().items():
                if not k.endswith("num_batches_tracked"):
                    t.copy_(fill(k, list(t.shape)))
        x = uniform(arch + ".input", 2 * 3 * SIZE * SIZE).reshape(2, 3, SIZE, SIZE) * 2.0
        with torch.no_grad():
            logits = model.double().eval()(x.double())
        tensors += [(arch + ".input", "F32", list(x.shape), x.flatten().tolist()),
                    (arch + ".logits", "F32", list(logits.shape), logits.float().flatten().tolist())]
    write_safetensors(OUT, tensors, {"source": "torch %s (tools/make_round_trip_fixture.py)" % torch.__version__})
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
