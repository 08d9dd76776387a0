"""How much memory a model needs, and whether it fits this computer: the one estimate that the model
manager's fit labels and the engine's automatic GPU offload both use."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from assistant.hardware import HardwareInfo

__all__ = ["Fit", "ModelShape", "fit_for", "kv_cache_bytes", "memory_needed"]


MiB = 1024**2
# llama.cpp's compute buffers, the runtime and Haven itself: measured ~100 MiB of compute buffer for the
# starter model at 2048 tokens of context; 7B models need a few hundred MiB, so a fixed allowance is kept.
RUNTIME_OVERHEAD_BYTES = 400 * MiB
# Share of RAM a model may use and still leave the system and other apps comfortable, or just about.
COMFORTABLE_SHARE, TIGHT_SHARE = 0.60, 0.85


class Fit(StrEnum):
    YES = "yes"
    TIGHT = "tight"
    NO = "no"


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What sizes the KV cache: layers, key/value heads and the dimension of one head."""

    layers: int
    kv_heads: int
    head_dim: int

    @classmethod
    def from_gguf_metadata(cls, metadata: dict[str, object]) -> ModelShape | None:
        arch = str(metadata.get("general.architecture", ""))

        def number(key: str) -> int:
            value = metadata.get(f"{arch}.{key}")
            return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0

        layers, heads = number("block_count"), number("attention.head_count")
        kv_heads = number("attention.head_count_kv") or heads
        head_dim = number("attention.key_length") or (number("embedding_length") // heads if heads else 0)
        if layers <= 0 or kv_heads <= 0 or head_dim <= 0:
            return None
        return cls(layers, kv_heads, head_dim)


def kv_cache_bytes(shape: ModelShape, context_length: int, bytes_per_value: int = 2) -> int:
    """n_layer x n_ctx x n_head_kv x head_dim x 2 (keys and values) x bytes (f16 cache: 2)."""
    return shape.layers * context_length * shape.kv_heads * shape.head_dim * 2 * bytes_per_value


def memory_needed(file_size: int, shape: ModelShape | None, context_length: int) -> int:
    """Bytes of memory to run a model: its weights, its KV cache at ``context_length``, and overhead."""
    kv = kv_cache_bytes(shape, context_length) if shape is not None else file_size // 8
    return file_size + kv + RUNTIME_OVERHEAD_BYTES


def fit_for(needed: int, hardware: HardwareInfo, *, gpu_offload: bool = False) -> Fit:
    """fits / tight / won't fit, against GPU memory when offload is possible and known, else RAM."""
    gpu_total = max((g.total_bytes or 0) for g in hardware.gpus) if hardware.gpus else 0
    if gpu_offload and gpu_total and not any(g.backend == "metal" for g in hardware.gpus):
        budget = gpu_total
    else:
        budget = hardware.total_ram_bytes
    if needed <= budget * COMFORTABLE_SHARE:
        return Fit.YES
    if needed <= budget * TIGHT_SHARE:
        return Fit.TIGHT
    return Fit.NO
