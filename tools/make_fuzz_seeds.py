#!/usr/bin/env python3
"""Writes the small valid seeds of the safetensors and checkpoint fuzzers (tests/fuzz/corpus/
safetensors/seed_*.safetensors, tests/fuzz/corpus/checkpoint/seed_*.safetensors), with a
checksum computed here, in Python, from the format written in core/io/safetensors.h: a second,
independent implementation of glimpse.checksum. tests/test_checkpoint_integrity.cpp loads every
seed and expects the ones with a checksum to verify; change both together.

    python3 tools/make_fuzz_seeds.py
"""
import json
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ST = os.path.join(ROOT, "tests", "fuzz", "corpus", "safetensors")
CK = os.path.join(ROOT, "tests", "fuzz", "corpus", "checkpoint")
SIZE = {"F32": 4, "F16": 2, "F64": 8, "BF16": 2}
PACK = {"F32": "f", "F16": "e", "F64": "d"}


def u64(x):
    return struct.pack("<Q", x)


def s(b):
    b = b.encode("utf-8") if isinstance(b, str) else b
    return u64(len(b)) + b


def glimpse_checksum(metadata, entries, data):
    """entries: {name: (dtype, shape, begin, end)}; data: the whole data section."""
    stream = s("glimpse.safetensors.checksum.v1") + u64(len(metadata))
    for k in sorted(metadata, key=lambda k: k.encode("utf-8")):
        stream += s(k) + s(metadata[k])
    stream += u64(len(entries))
    for name in sorted(entries, key=lambda n: n.encode("utf-8")):
        dtype, shape, begin, end = entries[name]
        stream += s(name) + s(dtype) + u64(len(shape)) + b"".join(u64(d) for d in shape) + u64(begin) + u64(end)
    stream += data
    return "crc32:%08x" % (zlib.crc32(stream) & 0xFFFFFFFF)


def write(path, tensors, metadata, checksum=True, data_order=None):
    """tensors: list of (name, dtype, shape, values), in header order; data in data_order."""
    by = {t[0]: t for t in tensors}
    order = data_order or [t[0] for t in tensors]
    entries, data = {}, b""
    for name in order:
        _, dtype, shape, values = by[name]
        raw = struct.pack("<%d%s" % (len(values), PACK[dtype]), *values)
        n = 1
        for d in shape:
            n *= d
        assert len(raw) == n * SIZE[dtype]
        entries[name] = (dtype, list(shape), len(data), len(data) + len(raw))
        data += raw
    meta = dict(metadata)
    if checksum:
        meta["glimpse.checksum"] = glimpse_checksum(metadata, entries, data)
    header = {}
    if meta:
        header["__metadata__"] = meta
    for name, dtype, shape, _ in tensors:
        e = entries[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [e[2], e[3]]}
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(u64(len(text)) + text + data)
    assert os.path.getsize(path) < 2048 or CK in path, path


def main():
    os.makedirs(ST, exist_ok=True)
    os.makedirs(CK, exist_ok=True)
    # F32 with metadata; data section in another order than the header (the checksum sorts by name).
    write(os.path.join(ST, "seed_f32_metadata.safetensors"),
          [("w", "F32", [2, 3], [1.0, -2.0, 3.5, 0.25, -0.0, 1e-3]), ("b", "F32", [3], [0.5, 1.5, -1.0]),
           ("s", "F32", [], [42.0])],
          {"format": "glimpse", "version": "1", "note": "seed"}, data_order=["s", "b", "w"])
    # F16 (and an F64) with a checksum.
    write(os.path.join(ST, "seed_f16.safetensors"),
          [("half", "F16", [4], [1.0, -2.5, 65504.0, 2.0 ** -24]), ("double", "F64", [2], [0.1, -7.25])], {})
    # Empty tensors (zero-sized dims), no checksum: a file as PyTorch writes it.
    write(os.path.join(ST, "seed_empty_tensor.safetensors"),
          [("empty", "F32", [0, 3], []), ("zero", "F32", [2, 0, 4], []), ("one", "F32", [1], [7.0])], {},
          checksum=False)

    # Melanoma-style checkpoints. A whole one is too big for a seed (small-gap, the smallest
    # architecture, has 93,635 parameters: 374 KB at any input size), so these carry the app's full
    # metadata and only the classifier: they drive metadata validation, the check against the
    # classifier's shape and the model construction, and are refused by the strict load.
    meta = {"app": "melanoma", "arch": "small-gap", "input_size": "16", "classes": "3",
            "class_names": "melanoma,nevus,seborrheic_keratosis", "epoch": "1", "epochs": "2",
            "optimizer_step": "4", "optimizer": "adam", "schedule": "cosine", "lr": "0.003", "seed": "7",
            "data": "data", "hair_removal": "0", "color_constancy": "0", "val_auc_mean": "0.500000",
            "mask_guidance": "0", "format": "glimpse", "version": "1", "module": "SmallGapNet"}
    head = [("classifier.weight", "F32", [3, 128], [((i * 37) % 17 - 8) / 64.0 for i in range(3 * 128)]),
            ("classifier.bias", "F32", [3], [0.1, -0.1, 0.0])]
    write(os.path.join(CK, "seed_small_gap_head_only.safetensors"), head, meta)
    write(os.path.join(CK, "seed_small_gap_head_only_unverified.safetensors"), head, meta, checksum=False)


if __name__ == "__main__":
    main()
