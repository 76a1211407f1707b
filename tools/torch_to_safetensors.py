#!/usr/bin/env python3
"""Converts a PyTorch state_dict (.pth / .pt) to safetensors for `melanoma train --init`.

    /usr/bin/python3 tools/torch_to_safetensors.py resnet18-f37072fd.pth resnet18.safetensors

Needs python3-torch (Debian); never needed by the build, and it downloads nothing: fetch the weights
yourself (see docs/interop.md). The file is read with torch.load(weights_only=True), so a pickle
cannot run code. Accepted: a state_dict, or a dict holding one under "state_dict" or "model" (the
usual training checkpoints); a "module." prefix (DataParallel) is removed. Every floating tensor is
written as float32 under its own name; BatchNorm's num_batches_tracked counters are dropped (glimpse
keeps no such counter); any other non-float entry is refused, by name. glimpse maps torchvision's
names onto resnet18-gap and vgg16-gap (interop/torch_import.h).
"""
import json
import os
import struct
import sys

import torch


def state_dict_of(obj, path):
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj:
        sys.exit("%s: not a state_dict (a dict of tensors); got %s" % (path, type(obj).__name__))
    return obj


def convert(src, dst):
    state = state_dict_of(torch.load(src, map_location="cpu", weights_only=True), src)
    tensors, dropped = [], 0
    for name, t in state.items():
        if name.startswith("module."):
            name = name[len("module."):]
        if name.endswith("num_batches_tracked"):
            dropped += 1
            continue
        if not torch.is_tensor(t) or not t.is_floating_point():
            sys.exit("%s: '%s' is not a floating-point tensor (%s); glimpse stores float32 only"
                     % (src, name, getattr(t, "dtype", type(t).__name__)))
        tensors.append((name, t.detach().to(torch.float32).contiguous()))

    header, offset = {"__metadata__": {"source": "pytorch", "converted_from": os.path.basename(src)}}, 0
    for name, t in tensors:
        size = t.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:  # written beside, then renamed: a crash leaves no half file
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, t in tensors:
            f.write(t.numpy().astype("<f4", copy=False).tobytes())
    os.replace(tmp, dst)
    print("wrote %s: %d tensors (%d num_batches_tracked dropped), %.1f MB"
          % (dst, len(tensors), dropped, os.path.getsize(dst) / 1e6))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    convert(sys.argv[1], sys.argv[2])
