#!/usr/bin/env python3
"""Writes tests/fixtures/independent.safetensors with the pure-Python writer of
tools/safetensors_writer.py. tests/test_safetensors.cpp checks glimpse reads back exactly these
values; change both together.

    python3 tools/make_safetensors_fixture.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_writer import write_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "independent.safetensors")

TENSORS = [
    # name, dtype, shape, values (row-major)
    ("matrix", "F32", [2, 3], [1.0, -2.0, 3.5, 0.1, -0.0, 1e-3]),
    # inf, -inf, NaN and the smallest float32 subnormal (bits 0x00000001)
    ("specials", "F32", [4], [float("inf"), float("-inf"), float("nan"), 1.401298464324817e-45]),
    ("image", "F32", [1, 2, 2, 2], [0.5 * i for i in range(8)]),
    ("scalar", "F32", [], [42.0]),
    ("empty", "F32", [0, 3], []),
    # converted to float32 by glimpse's reader: F16 (incl. its smallest subnormal 2^-24 and max
    # 65504), BF16, F64
    ("half", "F16", [4], [1.0, -2.5, 65504.0, 2.0 ** -24]),
    ("bfloat", "BF16", [2], [1.5, -3.0]),
    ("double", "F64", [2], [0.1, -7.25]),
]

METADATA = {"source": "tools/make_safetensors_fixture.py", "note": "UTF-8 ok: \u00e9\u00e8 \u03bb"}


def main():
    # Data section in reverse header order: a reader must follow data_offsets, not header order.
    order = [t[0] for t in reversed(TENSORS)]
    write_safetensors(OUT, TENSORS, METADATA, data_order=order)
    print("wrote %s (%d bytes)" % (OUT, os.path.getsize(OUT)))


if __name__ == "__main__":
    main()
