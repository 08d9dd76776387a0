"""Copies a real GGUF (the starter model) with chosen metadata values changed: hostile or absurd models
that llama.cpp can still open, for fault-injection tests.

Numbers are overwritten in place (same type, same size). A string may change length: the new value is
padded with spaces until the length changes by a multiple of the file's alignment, so the tensor data,
which starts at the next aligned offset after the header, moves by exactly that much and stays intact.
"""

from __future__ import annotations

import struct
from pathlib import Path

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        self.pos += length
        return self.data[self.pos - length : self.pos].decode("utf-8", errors="replace")

    def skip_value(self, type_tag: int) -> None:
        if type_tag in _SCALARS:
            self.pos += struct.calcsize(_SCALARS[type_tag])
        elif type_tag == _STRING:
            self.string()
        elif type_tag == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALARS:
                self.pos += struct.calcsize(_SCALARS[item_type]) * count
            else:
                for _ in range(count):
                    self.skip_value(item_type)
        else:
            raise ValueError(f"unknown GGUF type {type_tag}")


def _locate(data: bytes) -> tuple[dict[str, tuple[int, int, int]], int]:
    """key -> (type, value start, value end), and the alignment."""
    reader = _Reader(data)
    assert data[:4] == b"GGUF"
    reader.pos = 4
    reader.unpack("<I")  # version
    reader.unpack("<Q")  # tensor count
    count = reader.unpack("<Q")
    found: dict[str, tuple[int, int, int]] = {}
    for _ in range(count):
        key = reader.string()
        type_tag = reader.unpack("<I")
        start = reader.pos
        reader.skip_value(type_tag)
        found[key] = (type_tag, start, reader.pos)
    alignment = 32
    if "general.alignment" in found:
        _, start, _ = found["general.alignment"]
        alignment = struct.unpack_from("<I", data, start)[0]
    return found, alignment


def patched_copy(source: Path, target: Path, *, numbers: dict[str, int] | None = None,
                 strings: dict[str, str] | None = None) -> Path:
    data = bytearray(source.read_bytes())
    found, alignment = _locate(bytes(data))
    for key, value in (numbers or {}).items():
        type_tag, start, _ = found[key]
        struct.pack_into(_SCALARS[type_tag], data, start, value)
    # Strings last, from the end of the header backwards, so earlier offsets stay valid.
    for key, value in sorted((strings or {}).items(), key=lambda kv: found[kv[0]][1], reverse=True):
        type_tag, start, end = found[key]
        assert type_tag == _STRING, f"{key} is not a string"
        old_length = end - start - 8
        raw = value.encode("utf-8")
        raw += b" " * ((old_length - len(raw)) % alignment)
        data[start:end] = struct.pack("<Q", len(raw)) + raw
    target.write_bytes(bytes(data))
    return target
