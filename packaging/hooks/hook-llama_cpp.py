"""PyInstaller hook for ``llama_cpp`` (llama-cpp-python), which ships none of its own.

The bindings load ``lib/libllama.so`` (``llama.dll``, ``libllama.dylib``) through ctypes from a path
computed at run time, so PyInstaller's import analysis never sees the native libraries: without this
hook a frozen Haven starts and then fails with "Shared library with base name 'llama' not found".
``collect_dynamic_libs`` keeps them in ``llama_cpp/lib/``, where ``llama_cpp`` looks for them; the
libraries they link (libggml*, and on Linux libgomp) are then found by PyInstaller's binary analysis.

Haven's builds set ``GGML_BACKEND_DL`` (scripts/llama_build.py): the CPU code (one
``libggml-cpu-<variant>.so`` per x86-64 level in a release) and each GPU backend (``libggml-vulkan.so``,
``ggml-cuda.dll``, ``libggml-metal.so``) are CMake MODULE libraries that ggml dlopens from this folder at
run time; nothing links them, so binary analysis cannot find them either. They are collected here by
name: PyInstaller's patterns (``lib*.so``, ``*.dll``, ``*.dylib``) cover them on all three systems (a
MODULE library is ``lib<name>.so`` on macOS too, and has no version suffix), and build.py checks that the
bundle holds every one the installed package has (packaging/native_libraries.py). What they link in turn
(the CUDA runtime and cuBLAS) comes through binary analysis; the GPU driver's own libraries (the Vulkan
loader, libcuda) are dropped in haven.spec.
"""

from __future__ import annotations

from PyInstaller.utils.hooks import collect_dynamic_libs

binaries = collect_dynamic_libs("llama_cpp")

# The OpenAI-compatible server pulls in FastAPI, uvicorn and friends; Haven never starts it.
excludedimports = ["llama_cpp.server"]
