"""A minimal safetensors writer in pure Python (json + struct only), independent of glimpse's C++
writer and of the `safetensors` package, so that fixtures written with it test glimpse's reader
against the specification rather than against itself.

Format (https://github.com/huggingface/safetensors): 8-byte little-endian u64 header length N, N
bytes of UTF-8 JSON {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}}, padded
with spaces to a multiple of 8, then the tensors' little-endian bytes, contiguous, no gaps.
"""
import json
import struct

# dtype -> (bytes per element, function packing a list of Python floats)
_PACKERS = {
    "F32": (4, lambda v: struct.pack("<%df" % len(v), *v)),
    "F64": (8, lambda v: struct.pack("<%dd" % len(v), *v)),
    "F16": (2, lambda v: struct.pack("<%de" % len(v), *v)),
    # bfloat16 = the upper half of a float32 (truncated; give values exactly representable in bf16)
    "BF16": (2, lambda v: b"".join(struct.pack("<f", x)[2:4] for x in v)),
}


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def write_safetensors(path, tensors, metadata=None, data_order=None):
    """tensors: list of (name, dtype, shape, flat list of floats), written to the header in this
    order. data_order: optional list of the names giving the order of the data section (to check
    that a reader does not assume header order == data order)."""
    by_name = {}
    for name, dtype, shape, values in tensors:
        assert name not in by_name, "duplicate tensor name %r" % name
        assert name != "__metadata__"
        assert dtype in _PACKERS, "unsupported dtype %r" % dtype
        assert len(values) == numel(shape), "%s: %d values for shape %r" % (name, len(values), shape)
        size, pack = _PACKERS[dtype]
        data = pack(list(values))
        assert len(data) == size * numel(shape)
        by_name[name] = (dtype, list(shape), data)

    order = data_order if data_order is not None else [t[0] for t in tensors]
    assert sorted(order) == sorted(by_name), "data_order must list every tensor once"
    offsets, pos = {}, 0
    for name in order:
        n = len(by_name[name][2])
        offsets[name] = (pos, pos + n)
        pos += n

    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, _, _, _ in tensors:
        dtype, shape, _ = by_name[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": list(offsets[name])}
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)

    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            f.write(by_name[name][2])
