"""``python -m tests.llama_server ARGS``: llama-cpp-python's own OpenAI-compatible server
(``python -m llama_cpp.server ARGS``), the separate engine the remote-model tests talk to, started the way
this project's llama.cpp build needs: its backends are run-time libraries that must be loaded first, and on
a CPU with AMX the weights must not be repacked into llama.cpp's extra buffers (HOUSE_STYLE's measured
facts: a decode of more than one token crashes). Haven's engine does both itself (assistant/engine/native.py).
"""

from __future__ import annotations

import runpy
import sys

from assistant.engine.native import load_backends, model_params

if __name__ == "__main__":
    load_backends()
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    with model_params(use_extra_bufts=False):
        runpy.run_module("llama_cpp.server", run_name="__main__")
