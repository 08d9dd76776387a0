"""Reading a GGUF file's header and metadata in pure Python, without loading the model.

Used to validate a file before llama.cpp touches it (magic, version, truncation) and to learn the
facts Haven needs before loading: architecture, trained context, layer count, chat template.
Large arrays (the vocabulary) are skipped, not kept.

Format facts from the GGUF specification in the ggml repository (docs/gguf.md): little-endian; magic
``GGUF``; version (uint32, 2 or 3); tensor count and metadata count (uint64); then key/value pairs whose
keys are length-prefixed strings and whose values carry a uint32 type tag.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from assistant.errors import ModelError

__all__ = ["GgufInfo", "read_gguf", "read_gguf_prefix"]

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
# Arrays longer than this are skipped (token lists); only their length is kept.
KEEP_ARRAY_ITEMS = 64
MAX_STRING_BYTES = 16 * 1024 * 1024
MAX_KEYS = 100_000
# llama.cpp's LLAMA_MAX_LAYERS. A layer count of 0 or above this stops the whole process with an assertion
# inside llama.cpp, so such a file is refused here, before llama.cpp sees it.
MAX_LAYERS = 512

# type tag -> struct format for scalar types
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


@dataclass(frozen=True, slots=True)
class GgufInfo:
    version: int
    tensor_count: int
    metadata: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", ""))

    def arch_value(self, suffix: str, default: int = 0) -> int:
        value = self.metadata.get(f"{self.architecture}.{suffix}", default)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default

    @property
    def context_length(self) -> int:
        return self.arch_value("context_length")

    @property
    def block_count(self) -> int:
        return self.arch_value("block_count")

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None


class _Truncated(Exception):
    pass


def _read(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise _Truncated
    return data


def _scalar(handle: BinaryIO, fmt: str) -> Any:
    return struct.unpack(fmt, _read(handle, struct.calcsize(fmt)))[0]


def _string(handle: BinaryIO) -> str:
    length = _scalar(handle, "<Q")
    if length > MAX_STRING_BYTES:
        raise ValueError(f"a metadata string claims {length} bytes")
    return _read(handle, length).decode("utf-8", errors="replace")


def _value(handle: BinaryIO, type_tag: int) -> Any:
    if type_tag in _SCALARS:
        return _scalar(handle, _SCALARS[type_tag])
    if type_tag == _STRING:
        return _string(handle)
    if type_tag == _ARRAY:
        item_type = _scalar(handle, "<I")
        count = _scalar(handle, "<Q")
        if item_type in _SCALARS and count > KEEP_ARRAY_ITEMS:
            handle.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
            return _SkippedArray(count)
        items = []
        for index in range(count):
            item = _value(handle, item_type)
            if index < KEEP_ARRAY_ITEMS:
                items.append(item)
        return items if count <= KEEP_ARRAY_ITEMS else _SkippedArray(count)
    raise ValueError(f"unknown metadata type {type_tag}")


class _SkippedArray(list[Any]):
    """Stands in for an array too long to keep; ``len()`` is 0, ``total`` is its real length."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total


def read_gguf(path: Path) -> GgufInfo:
    """Parse the header and metadata, or raise :class:`ModelError` with a sentence saying what is wrong."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            magic = handle.read(4)
            if magic != MAGIC:
                raise ModelError(
                    f"{path.name} is not a GGUF model file (it does not start with the GGUF signature). "
                    "Haven runs GGUF files; download the .gguf version of this model."
                )
            version = _scalar(handle, "<I")
            if version not in SUPPORTED_VERSIONS:
                raise ModelError(
                    f"{path.name} uses GGUF version {version}, which Haven does not read "
                    f"(it reads versions {', '.join(map(str, SUPPORTED_VERSIONS))})."
                )
            tensor_count = _scalar(handle, "<Q")
            key_count = _scalar(handle, "<Q")
            if key_count > MAX_KEYS:
                raise ValueError(f"the header claims {key_count} metadata entries")
            metadata: dict[str, Any] = {}
            for _ in range(key_count):
                key = _string(handle)
                metadata[key] = _value(handle, _scalar(handle, "<I"))
            if handle.tell() > size:
                raise _Truncated
    except _Truncated:
        raise ModelError(
            f"{path.name} is incomplete (the file ends inside its header). Download it again."
        ) from None
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelError(f"{path.name} is damaged: {exc}. Download it again.") from exc
    except FileNotFoundError:
        raise ModelError(f"The model file {path} does not exist.") from None
    except OSError as exc:
        raise ModelError(f"Haven cannot read the model file {path} ({exc.strerror or exc}).") from exc
    info = GgufInfo(version, tensor_count, metadata)
    _check_layers(path, info)
    return info


def _check_layers(path: Path, info: GgufInfo) -> None:
    layers = info.get(f"{info.architecture}.block_count")
    if layers is None:
        return
    if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= MAX_LAYERS:
        raise ModelError(
            f"{path.name} says the model has {layers!r} layers, which no model Haven can run has (1 to "
            f"{MAX_LAYERS}); the file is damaged or was made to crash model runners. Choose another model."
        )


def read_gguf_prefix(data: bytes) -> dict[str, Any]:
    """The metadata found in the first bytes of a GGUF file (a ranged read of a remote file): every key
    that fits in ``data``, in file order. Never raises: a damaged or foreign prefix gives what was read."""
    handle = io.BytesIO(data)
    metadata: dict[str, Any] = {}
    try:
        if handle.read(4) != MAGIC or _scalar(handle, "<I") not in SUPPORTED_VERSIONS:
            return metadata
        _scalar(handle, "<Q")
        key_count = min(_scalar(handle, "<Q"), MAX_KEYS)
        for _ in range(key_count):
            key = _string(handle)
            metadata[key] = _value(handle, _scalar(handle, "<I"))
            if handle.tell() > len(data):  # a skipped array ran past the end
                metadata.pop(key)
                break
    except (_Truncated, ValueError, struct.error, UnicodeDecodeError):
        pass
    return metadata
