"""A GPU backend whose driver is missing is skipped without a word, and Haven chats on the CPU.

This is what a release bundle meets on a computer without a GPU driver: ggml's Vulkan (or CUDA) backend
library is there, but the driver library it links cannot be found. No GPU is lent to this project's
machines, so the backend here is a stand-in with the same name and the same kind of dependency (built
with gcc against a "driver" library that is then deleted); the llama.cpp that loads it is the real one,
copied so that the stand-in can sit beside its libraries."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.skipif(
    not sys.platform.startswith("linux") or shutil.which("gcc") is None, reason="builds an ELF stand-in with gcc")]

BACKEND = "int ggml_backend_score(void) { return driver_score(); }\nvoid * ggml_backend_init(void) { return 0; }\n"


@pytest.fixture(scope="module")
def llama_cpp_with_an_unloadable_gpu_backend(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None and spec.origin is not None
    root = tmp_path_factory.mktemp("site")
    package = root / "llama_cpp"
    shutil.copytree(Path(spec.origin).parent, package, ignore=shutil.ignore_patterns("__pycache__", "server"))
    work = tmp_path_factory.mktemp("build")
    (work / "driver.c").write_text("int driver_score(void) { return 100; }\n")
    (work / "backend.c").write_text("int driver_score(void);\n" + BACKEND)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(work / "libhaven-test-gpu-driver.so"),
                    str(work / "driver.c")], check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(package / "lib" / "libggml-vulkan.so"),
                    str(work / "backend.c"), f"-L{work}", "-lhaven-test-gpu-driver"], check=True)
    (work / "libhaven-test-gpu-driver.so").unlink()  # the user has no GPU driver
    return root


def run(site: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **extra}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)


def test_the_missing_driver_is_skipped_silently_and_the_chat_runs_on_the_cpu(
        llama_cpp_with_an_unloadable_gpu_backend: Path) -> None:
    site = llama_cpp_with_an_unloadable_gpu_backend
    listed = run(site, "-c", "import llama_cpp, json; from assistant.engine import native as n; "
                             "print(json.dumps([llama_cpp.__file__, [d.kind for d in n.devices()], "
                             "n.runtime_report().describe()]))", LD_DEBUG="files")
    assert listed.returncode == 0, listed.stderr
    # glibc's loader log shows ggml really tried the stand-in, and that its driver was what it lacked.
    tried = [line for line in listed.stderr.splitlines() if "libggml-vulkan.so" in line]
    assert any("dynamically loaded by" in line for line in tried), listed.stderr[-3000:]
    assert any("libhaven-test-gpu-driver.so" in line and "needed by" in line for line in listed.stderr.splitlines())
    where, kinds, described = json.loads(listed.stdout)
    assert where.startswith(str(site)), "the copy with the stand-in backend is the llama.cpp in use"
    assert kinds == ["cpu"] and "no GPU backend" in described

    chat = run(site, "-m", "assistant", "chat", "--json", "--max-tokens", "8", "--seed", "1", "Name a colour.")
    assert chat.returncode == 0, chat.stderr
    assert json.loads(chat.stdout)["completion_tokens"] > 0
    assert "vulkan" not in chat.stderr.lower() and "error" not in chat.stderr.lower(), chat.stderr
