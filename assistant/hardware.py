"""What this computer has: CPU cores, memory, and the GPUs llama.cpp could offload to.

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

import psutil

__all__ = ["GpuInfo", "HardwareInfo", "detect_hardware", "physical_cores"]

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
    """This computer. ``gpus``: the GPUs llama.cpp itself found (``assistant.engine.native.gpu_infos``),
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
