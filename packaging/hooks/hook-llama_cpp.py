"""PyInstaller hook for ``llama_cpp`` (llama-cpp-python), which ships none of its own.

The bindings load ``lib/libllama.so`` (``llama.dll``, ``libllama.dylib``) through ctypes from a path
computed at run time, so PyInstaller's import analysis never sees the native libraries: without this
hook a frozen Haven starts and then fails with "Shared library with base name 'llama' not found".
``collect_dynamic_libs`` keeps them in ``llama_cpp/lib/``, where ``llama_cpp`` looks for them; the
libraries they link (libggml*, and on Linux libgomp) are then found by PyInstaller's binary analysis.
"""

from __future__ import annotations

from PyInstaller.utils.hooks import collect_dynamic_libs

binaries = collect_dynamic_libs("llama_cpp")

# The OpenAI-compatible server pulls in FastAPI, uvicorn and friends; Haven never starts it.
excludedimports = ["llama_cpp.server"]
