"""Writes small but real GGUF files (version 3: header, metadata, tensor infos, aligned tensor data)."""

from __future__ import annotations

import struct
from pathlib import Path

ALIGNMENT = 32


def _string(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _value(value: object) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I?", 7, value)
    if isinstance(value, int):
        return struct.pack("<II", 4, value)
    if isinstance(value, float):
        return struct.pack("<If", 6, value)
    if isinstance(value, str):
        return struct.pack("<I", 8) + _string(value)
    raise TypeError(type(value))


def gguf_bytes(metadata: dict[str, object], tensor_bytes: int, seed: int = 1) -> bytes:
    """A GGUF with ``metadata`` and one F32 tensor holding ``tensor_bytes`` of deterministic data."""
    count = max(tensor_bytes // 4, 1)
    out = bytearray(b"GGUF")
    out += struct.pack("<IQQ", 3, 1, len(metadata))
    for key, value in metadata.items():
        out += _string(key) + _value(value)
    out += _string("weights") + struct.pack("<I", 1) + struct.pack("<Q", count) + struct.pack("<IQ", 0, 0)
    out += b"\0" * (-len(out) % ALIGNMENT)
    state = seed
    data = bytearray()
    while len(data) < count * 4:  # a cheap deterministic pseudo-random stream (not compressible)
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        data += state.to_bytes(8, "little")
    out += data[: count * 4]
    return bytes(out)


def write_gguf(path: Path, tensor_bytes: int = 1024 * 1024, name: str = "tiny test model", seed: int = 1) -> Path:
    metadata = {
        "general.architecture": "llama", "general.name": name, "general.license": "apache-2.0",
        "llama.block_count": 2, "llama.context_length": 512, "llama.embedding_length": 64,
        "llama.attention.head_count": 4, "llama.attention.head_count_kv": 2,
    }
    path.write_bytes(gguf_bytes(metadata, tensor_bytes, seed))
    return path
