"""The user's settings: one JSON file with a ``schema_version``, loaded forgivingly, written atomically.

A corrupt or wrong-typed file never crashes Haven: it is copied beside itself as
``settings.json.corrupt-<timestamp>`` and replaced by defaults, and the caller gets a warning to show.
A single out-of-range value is clamped and reported the same way, keeping the rest of the file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError
from assistant.files import keep_corrupt_copy, write_atomically

__all__ = ["DEFAULT_SERVER_PORT", "GpuOffload", "LoadedSettings", "Settings", "Theme", "load_settings", "save_settings"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


class Theme(StrEnum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


class GpuOffload:
    """Values of ``Settings.gpu_layers``: ``AUTO`` decides from the hardware, ``ALL`` offloads every layer."""

    AUTO = -2
    ALL = -1
    NONE = 0


# (minimum, maximum) for every numeric setting; values outside are clamped with a warning.
BOUNDS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "top_k": (0, 1000),
    "min_p": (0.0, 1.0),
    "repeat_penalty": (1.0, 2.0),
    "max_tokens": (16, 32768),
    "context_length": (512, 131072),
    "gpu_layers": (GpuOffload.AUTO, 1000),
    "threads": (0, 256),
    "server_port": (1, 65535),
}

DEFAULT_SERVER_PORT = 8765


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the user can set. ``threads == 0`` means one per physical core."""

    default_model: str | None = None
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int = 512
    context_length: int = 4096
    gpu_layers: int = GpuOffload.AUTO
    threads: int = 0
    theme: Theme = Theme.SYSTEM
    user_instructions: str = ""
    safety_guard_model: bool = False
    # The OpenAI-compatible server (docs/server.md): off by default, on this computer only unless the
    # user names another address; the API's conversations are kept only when the user asks.
    server_enabled: bool = False
    server_host: str = "127.0.0.1"
    server_port: int = DEFAULT_SERVER_PORT
    server_store_conversations: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            data[f.name] = value.value if isinstance(value, StrEnum) else value
        # Keys written by a newer Haven are kept, so a downgrade does not erase them.
        for key, value in self.extra.items():
            data.setdefault(key, value)
        return data


@dataclass(frozen=True, slots=True)
class LoadedSettings:
    settings: Settings
    warnings: tuple[str, ...] = ()


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Return ``value`` converted to the type of ``default``, or raise TypeError/ValueError."""
    if isinstance(default, Theme):
        return Theme(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false")
        return value
    if isinstance(default, int):
        # An infinite or NaN float is not a whole number (int() of it would raise OverflowError).
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            raise TypeError(f"{name} must be a whole number")
        return int(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise TypeError(f"{name} must be a number")
        try:
            return float(value)
        except OverflowError:  # a whole number too large for a float: clamped like any other out-of-range value
            return math.inf if value > 0 else -math.inf
    if isinstance(default, str) or default is None:
        if value is None and default is None:
            return None
        if not isinstance(value, str):
            raise TypeError(f"{name} must be text")
        return value
    raise TypeError(f"{name} has an unsupported type")


def _clamp(name: str, value: Any, warnings: list[str]) -> Any:
    bounds = BOUNDS.get(name)
    if bounds is None or not isinstance(value, int | float):
        return value
    low, high = bounds
    if low <= value <= high:
        return value
    clamped = type(value)(min(max(value, low), high))
    warnings.append(f"The setting {name} was {value}, outside {low}..{high}; Haven uses {clamped}.")
    return clamped


def settings_from_json(data: Any) -> LoadedSettings:
    """Build settings from parsed JSON. Raises TypeError/ValueError when the file as a whole is unusable."""
    if not isinstance(data, dict):
        raise TypeError("the file does not hold a JSON object")
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError("schema_version must be a whole number")
    defaults = Settings()
    known = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    warnings: list[str] = []
    for name in known:
        if name in data:
            coerced = _coerce(name, data[name], getattr(defaults, name))
            values[name] = _clamp(name, coerced, warnings)
    extra = {k: v for k, v in data.items() if k not in known and k != "schema_version"}
    return LoadedSettings(Settings(**values, extra=extra), tuple(warnings))


def load_settings(path: Path) -> LoadedSettings:
    """Read settings; a missing file gives defaults, a broken one is backed up and replaced by defaults."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LoadedSettings(Settings())
    except (OSError, UnicodeDecodeError) as exc:
        return _replace_broken(path, f"it could not be read ({exc})")
    try:
        return settings_from_json(json.loads(text))
    except (ValueError, TypeError) as exc:
        return _replace_broken(path, str(exc))
    except RecursionError:
        return _replace_broken(path, "it is nested too deeply to be a settings file")


def _replace_broken(path: Path, reason: str) -> LoadedSettings:
    backup = keep_corrupt_copy(path)
    kept = f" A copy of the old file is at {backup}." if backup else ""
    defaults = Settings()
    try:
        save_settings(path, defaults)
    except ConfigError as exc:
        log.warning("could not rewrite settings after corruption: %s", exc)
    message = f"Your settings file could not be used ({reason}), so Haven went back to the defaults.{kept}"
    log.warning(message)
    return LoadedSettings(defaults, (message,))


def save_settings(path: Path, settings: Settings) -> None:
    """Write atomically: a temporary file in the same folder, flushed to disk, then renamed over the old one."""
    payload = json.dumps(settings.to_json(), indent=2, sort_keys=True) + "\n"
    try:
        write_atomically(path, payload)
    except OSError as exc:
        raise ConfigError(
            f"Haven could not save your settings to {path} ({exc.strerror or exc}). "
            "Check that the folder is writable and the disk is not full."
        ) from exc
