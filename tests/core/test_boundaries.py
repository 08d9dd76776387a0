"""The architecture's rules: the core loads no Qt, and only the engine touches llama_cpp."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "assistant"


def test_importing_the_core_loads_no_qt() -> None:
    code = (
        "import sys, assistant, assistant.cli, assistant.session, assistant.engine, assistant.store;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'ui')];"
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_import_assistant_is_cheap() -> None:
    code = "import sys, assistant; assert 'llama_cpp' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_only_the_engine_imports_llama_cpp() -> None:
    """The engine is the package assistant/engine/; bench/raw.py is the one exception by design: the
    benchmark's baseline is the bare library. (import-linter checks the same at package level.)"""
    importers = sorted(
        str(p.relative_to(CORE)) for p in CORE.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+llama_cpp\b", p.read_text(), re.MULTILINE)
    )
    outside = [p for p in importers if not p.startswith("engine/")]
    assert outside == ["bench/raw.py"]
    assert "engine/runtime.py" in importers
