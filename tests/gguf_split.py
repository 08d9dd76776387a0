"""Writes a real GGUF model as a split set, the way llama.cpp's ``gguf-split`` does.

The first part keeps every metadata entry; every part gains ``split.no`` (u16, 0-based), ``split.count`` (u16)
and ``split.tensors.count`` (i32, all tensors of the model), and holds a run of consecutive tensors whose data
offsets are rebased to its own data section. llama.cpp, given the first part, finds the others by the name
``PREFIX-%05d-of-%05d.gguf`` and checks each one's ``split.no``.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests.gguf_patch import _Reader

U16, I32, U32 = 2, 5, 4


def _kv(key: str, type_tag: int, fmt: str, value: int) -> bytes:
    raw = key.encode()
    return struct.pack("<Q", len(raw)) + raw + struct.pack("<I", type_tag) + struct.pack(fmt, value)


def split_gguf(source: Path, folder: Path, prefix: str, parts: int) -> list[Path]:
    data = source.read_bytes()
    r = _Reader(data)
    assert data[:4] == b"GGUF"
    r.pos = 4
    version, n_tensors, n_kv = r.unpack("<I"), r.unpack("<Q"), r.unpack("<Q")
    kvs: list[bytes] = []
    alignment, alignment_kv = 32, b""
    for _ in range(n_kv):
        start = r.pos
        key = r.string()
        type_tag = r.unpack("<I")
        if key == "general.alignment":
            alignment = r.unpack("<I")
            alignment_kv = data[start : r.pos]
        else:
            r.skip_value(type_tag)
        kvs.append(data[start : r.pos])
    infos: list[tuple[bytes, int]] = []
    for _ in range(n_tensors):
        start = r.pos
        r.string()
        dims = r.unpack("<I")
        r.pos += 8 * dims + 4  # dimensions, then the type
        before_offset = r.pos
        infos.append((data[start:before_offset], r.unpack("<Q")))
    data_start = r.pos + (-r.pos % alignment)
    data_size = len(data) - data_start
    per_part = -(-n_tensors // parts)
    groups = [infos[i : i + per_part] for i in range(0, n_tensors, per_part)]
    assert len(groups) == parts, "the model has too few tensors for that many parts"
    written = []
    for index, group in enumerate(groups):
        base = group[0][1]
        end = groups[index + 1][0][1] if index + 1 < len(groups) else data_size
        split_kvs = [_kv("split.no", U16, "<H", index), _kv("split.count", U16, "<H", parts),
                     _kv("split.tensors.count", I32, "<i", n_tensors)]
        entries = (kvs if index == 0 else ([alignment_kv] if alignment_kv else [])) + split_kvs
        out = bytearray(b"GGUF") + struct.pack("<IQQ", version, len(group), len(entries))
        for entry in entries:
            out += entry
        for head, offset in group:
            out += head + struct.pack("<Q", offset - base)
        out += b"\0" * (-len(out) % alignment)
        out += data[data_start + base : data_start + end]
        path = folder / f"{prefix}-{index + 1:05d}-of-{parts:05d}.gguf"
        path.write_bytes(bytes(out))
        written.append(path)
    return written
