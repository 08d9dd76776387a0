"""The llama.cpp and Jinja boundary: the only package that imports ``llama_cpp``.

* ``runtime``: :class:`Engine`, one chat model on its own thread, streaming generation.
* ``loading``: how a ``Llama`` is built, shared by both and by the self-test.
* ``selftest``: :class:`NativeCheck`, proof in a child process that a load plan does not crash.
* ``native``: llama.cpp's log, its run-time-loaded backends and their devices.
* ``chat_format`` and ``template_limits``: a model's chat template, rendered in a bounded sandbox.
"""

from assistant.engine.native import Device, RuntimeReport, gpu_infos, runtime_report
from assistant.engine.runtime import (
    Engine,
    GenerationStats,
    LoadOptions,
    ModelInfo,
    SamplingParams,
    StopReason,
    describe_runtime,
    gpu_offload_supported,
)
from assistant.engine.selftest import NativeCheck

__all__ = [
    "Device", "Engine", "GenerationStats", "LoadOptions", "ModelInfo", "NativeCheck",
    "RuntimeReport", "SamplingParams", "StopReason", "describe_runtime", "gpu_infos", "gpu_offload_supported",
    "runtime_report",
]
