"""What this computer has: CPU cores, memory, and an accelerator llama.cpp could offload to.

Everything here is a best effort that never raises: an unknown value is ``None`` and callers fall back
to safe choices (CPU only, one thread per physical core).
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import psutil

__all__ = [
    "Fit", "GpuInfo", "HardwareInfo", "ModelShape", "detect_hardware", "fit_for", "kv_cache_bytes",
    "memory_needed", "physical_cores",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GpuInfo:
    name: str
    backend: str           # "cuda", "vulkan", "metal", ...
    total_bytes: int | None
    free_bytes: int | None


@dataclass(frozen=True, slots=True)
class HardwareInfo:
    physical_cores: int
    logical_cores: int
    total_ram_bytes: int
    available_ram_bytes: int
    system: str
    machine: str
    gpus: tuple[GpuInfo, ...]

    def describe(self) -> str:
        gib = 1024**3
        cpu = f"{self.physical_cores} cores ({self.logical_cores} threads), {self.total_ram_bytes / gib:.1f} GiB RAM"
        if not self.gpus:
            return cpu + ", no GPU detected"
        return cpu + ", " + ", ".join(f"{g.name} ({g.backend})" for g in self.gpus)


def physical_cores() -> int:
    """Physical cores: llama.cpp runs fastest with one thread per core, not per hyper-thread."""
    try:
        count = psutil.cpu_count(logical=False)
    except Exception:  # psutil cannot read /proc in some sandboxes
        count = None
    return max(1, count or os.cpu_count() or 1)


def _nvidia_gpus() -> list[GpuInfo]:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        out = subprocess.run(
            [tool, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("nvidia-smi failed: %s", exc)
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            gpus.append(GpuInfo(parts[0], "cuda", int(parts[1]) * 1024**2, int(parts[2]) * 1024**2))
    return gpus


def detect_hardware(gpus: Sequence[GpuInfo] | None = None) -> HardwareInfo:
    """This computer. ``gpus``: the GPUs llama.cpp itself found (``assistant.native_runtime.gpu_infos``),
    which are exactly those offload can use, each with its own memory; without them (no llama.cpp loaded
    yet), a best guess from nvidia-smi and the platform."""
    memory = psutil.virtual_memory()
    system, machine = platform.system(), platform.machine()
    if gpus is None:
        gpus = _nvidia_gpus()
        if system == "Darwin" and machine == "arm64":
            # Apple silicon shares memory between CPU and GPU; Metal may use most of it.
            gpus.append(GpuInfo("Apple silicon GPU", "metal", memory.total, memory.available))
    return HardwareInfo(
        physical_cores=physical_cores(),
        logical_cores=psutil.cpu_count(logical=True) or 1,
        total_ram_bytes=memory.total,
        available_ram_bytes=memory.available,
        system=system,
        machine=machine,
        gpus=tuple(gpus),
    )


# --- memory needed, and whether a model fits -----------------------------------------------------

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
