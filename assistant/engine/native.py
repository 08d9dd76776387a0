"""llama.cpp's native side as the process sees it: its log, which backends are loaded, which devices they
offer, and the model parameters ``llama_cpp.Llama`` cannot be given.

Logs. llama.cpp has one process-wide log hook; :func:`route_native_logs` sends it to Python's logging
(``assistant.llama_cpp``) instead of the terminal, and loads the backends, so every Llama is built after it.

Backends. Haven's builds compile ggml with ``GGML_BACKEND_DL`` (scripts/llama_build.py): the CPU code
(one library per x86-64 level in a release) and each GPU backend (Vulkan, CUDA) are separate libraries
that must be loaded before the first model. ggml's own default search looks beside the *executable*
(python, or the frozen app) and in the current folder, which is neither where pip nor PyInstaller put
them, so :func:`load_backends` points it at ``llama_cpp/lib``. ggml then picks the best CPU library the
processor can run, and skips a GPU backend whose driver is missing without an error: that is how one
bundle runs on any x86-64 CPU, with or without a GPU. A build without ``GGML_BACKEND_DL`` has its
backends linked in, and this is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import platform
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp.llama_cpp as llama_cpp_lib
from llama_cpp import _ggml

from assistant.hardware import GpuInfo

__all__ = [
    "Device", "RuntimeReport", "StderrToLog", "build_fingerprint", "devices", "gpu_infos", "load_backends",
    "model_params", "route_native_logs", "runtime_report",
]

log = logging.getLogger(__name__)
native_log = logging.getLogger("assistant.llama_cpp")

# enum ggml_backend_dev_type (ggml-backend.h)
_DEVICE_KINDS = {0: "cpu", 1: "gpu", 2: "igpu", 3: "accel"}


@dataclass(frozen=True, slots=True)
class Device:
    name: str          # ggml's device name: "CPU", "Vulkan0", "CUDA0", "Metal" ...
    description: str   # the hardware: "NVIDIA GeForce RTX 4070", "Intel(R) Xeon(R) ..." ...
    kind: str          # "cpu", "gpu", "igpu" or "accel"
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True, slots=True)
class RuntimeReport:
    """What Settings shows: the llama.cpp build, the devices it found, and the CPU code in use."""

    llama_cpp_version: str
    devices: tuple[Device, ...]
    cpu_features: tuple[str, ...]  # instruction sets of the CPU library ggml picked ("AVX2", "AVX512" ...)

    @property
    def gpus(self) -> tuple[Device, ...]:
        return tuple(d for d in self.devices if d.kind in ("gpu", "igpu"))

    def describe(self) -> str:
        gpus = ", ".join(f"{d.name} ({d.description})" for d in self.gpus)
        cpu = "CPU" + (f" ({', '.join(self.cpu_features)})" if self.cpu_features else "")
        return f"{gpus} and {cpu}" if gpus else f"{cpu}; no GPU backend found"


@functools.cache
def _libggml() -> Any:
    """The ggml library libllama itself uses. libllama links ggml by its soname (libggml.so.0,
    libggml.0.dylib); a wheel stores that name as a separate copy of libggml.so, and loading the copy
    (as ``llama_cpp._ggml`` does) gives a second ggml with a registry libllama never sees."""
    folder = Path(_ggml.libggml_base_path)
    for pattern in ("libggml.so.[0-9]", "libggml.so.[0-9][0-9]", "libggml.[0-9].dylib", "libggml.[0-9][0-9].dylib"):
        for candidate in sorted(folder.glob(pattern)):
            return ctypes.CDLL(str(candidate))
    return _ggml.libggml  # ggml.dll on Windows: one file, one library


def _bind(name: str, restype: Any, argtypes: list[Any]) -> Any:
    function = getattr(_libggml(), name, None)
    if function is not None:
        function.restype, function.argtypes = restype, argtypes
    return function


_load_lock = threading.Lock()


def load_backends() -> None:
    """Load ggml's run-time backends from llama_cpp/lib once per process (see the module docstring)."""
    _install_log_hook()  # ggml says which library it loaded: that belongs in the log, not on stderr
    with _load_lock:
        count = _bind("ggml_backend_reg_count", ctypes.c_size_t, [])
        load_from = _bind("ggml_backend_load_all_from_path", None, [ctypes.c_char_p])
        if count is None or load_from is None or count() > 0:
            return  # backends linked in, or already loaded
        folder = Path(_ggml.libggml_base_path)
        load_from(str(folder).encode())
        if count() == 0:
            log.error("no llama.cpp backend could be loaded from %s", folder)
        else:
            log.info("%d llama.cpp backends loaded from %s", count(), folder)


def devices() -> tuple[Device, ...]:
    """Every device the loaded backends offer, with its memory (free memory is a snapshot)."""
    load_backends()
    count = _bind("ggml_backend_dev_count", ctypes.c_size_t, [])
    get = _bind("ggml_backend_dev_get", ctypes.c_void_p, [ctypes.c_size_t])
    name = _bind("ggml_backend_dev_name", ctypes.c_char_p, [ctypes.c_void_p])
    description = _bind("ggml_backend_dev_description", ctypes.c_char_p, [ctypes.c_void_p])
    kind = _bind("ggml_backend_dev_type", ctypes.c_int, [ctypes.c_void_p])
    memory = _bind("ggml_backend_dev_memory", None,
                   [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_size_t)])
    if None in (count, get, name, description, kind, memory):
        return ()
    found = []
    for index in range(count()):
        device = get(index)
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        memory(device, ctypes.byref(free), ctypes.byref(total))
        found.append(Device(
            name=(name(device) or b"").decode(errors="replace"),
            description=(description(device) or b"").decode(errors="replace").strip(),
            kind=_DEVICE_KINDS.get(kind(device), "accel"),
            total_bytes=int(total.value), free_bytes=int(free.value),
        ))
    return tuple(found)


def gpu_infos() -> tuple[GpuInfo, ...]:
    """The GPUs llama.cpp can offload to, for :func:`assistant.hardware.detect_hardware`: their memory is
    what the model manager's fit labels and automatic offload measure a model against."""
    found = []
    for device in devices():
        if device.kind in ("gpu", "igpu"):
            backend = device.name.rstrip("0123456789").lower() or "gpu"  # "Vulkan0" -> "vulkan", "Metal" -> "metal"
            found.append(GpuInfo(device.description or device.name, backend, device.total_bytes or None,
                                 device.free_bytes or None))
    return tuple(found)


def _cpu_features(system_info: str) -> tuple[str, ...]:
    """The instruction sets llama.cpp reports as used (``"CPU : SSE3 = 1 | AVX = 1 | ..."``)."""
    features = []
    for part in system_info.split("|"):
        key, _, value = part.rpartition("=")
        key = key.split(":")[-1].strip()
        if key and value.strip() == "1" and key.isupper():
            features.append(key)
    return tuple(features)


def runtime_report() -> RuntimeReport:
    load_backends()
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return RuntimeReport(
        llama_cpp_version=str(getattr(llama_cpp, "__version__", "unknown")),
        devices=devices(), cpu_features=_cpu_features(info),
    )


@functools.cache
def build_fingerprint() -> str:
    """Names the exact llama.cpp build and this processor: a self-test result holds only for both."""
    folder = Path(_ggml.libggml_base_path)
    libraries = sorted(
        f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in folder.iterdir() if p.is_file()
    )
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith(("model name", "flags")):
                cpu += "|" + line.partition(":")[2].strip()
            if line.startswith("flags"):
                break
    load_backends()
    system_info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return "\n".join([getattr(llama_cpp, "__version__", "?"), *libraries, cpu, system_info])


# llama-cpp-python's Llama() builds its llama_model_params from llama_model_default_params() and takes
# no argument for some fields Haven must set (use_extra_bufts: whether weights may be repacked into the
# CPU's extra buffer types, AMX among them). The factory is wrapped while one Llama is constructed; the
# lock keeps two constructions (the chat model on the engine thread, the safety encoder on another)
# from seeing each other's fields.
_params_lock = threading.Lock()


@contextlib.contextmanager
def model_params(**fields: Any) -> Iterator[None]:
    with _params_lock:
        original = llama_cpp_lib.llama_model_default_params

        def with_fields() -> Any:
            params = original()
            for key, value in fields.items():
                setattr(params, key, value)
            return params

        llama_cpp_lib.llama_model_default_params = with_fields
        try:
            yield
        finally:
            llama_cpp_lib.llama_model_default_params = original


# --- native logging ----------------------------------------------------------------------------
# llama.cpp has one process-wide log hook; the ctypes callback must stay referenced for as long as
# the library may call it, hence a module-level holder (the one piece of module state here).
# ggml_log_level in current ggml.h: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5 (continue the last line).
_LEVELS = {0: logging.CRITICAL, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_log_hook: list[Any] = []


def route_native_logs() -> None:
    """llama.cpp's log to Python's logging, then the backends loaded: call before any Llama()."""
    _install_log_hook()
    load_backends()  # before any Llama(): llama_backend_init would otherwise search the wrong folders


def _install_log_hook() -> None:
    if _log_hook:
        return
    last = [logging.DEBUG]

    def forward(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        lvl = last[0] if level == 5 else _LEVELS.get(level, logging.DEBUG)
        last[0] = lvl
        message = text.decode("utf-8", errors="replace").rstrip()
        if message and native_log.isEnabledFor(lvl):
            native_log.log(lvl, "%s", message)

    callback = llama_cpp.llama_log_callback(forward)
    _log_hook.append(callback)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


class StderrToLog(io.TextIOBase):
    """llama-cpp-python prints load-time chatter with print(file=sys.stderr); send it to the log."""

    def write(self, text: str) -> int:
        if text.strip():
            native_log.debug("%s", text.rstrip())
        return len(text)
