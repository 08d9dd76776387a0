"""The user's Hugging Face token, for gated models: in the OS keyring where one works, else a private file.

Precedence when reading: the ``HF_TOKEN`` environment variable, then the keyring, then the file
``<config>/hf-token`` (created with permissions 0600, so only the user can read it).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

from assistant.errors import ConfigError
from assistant.paths import AppPaths

__all__ = ["TokenStore"]

log = logging.getLogger(__name__)

SERVICE = "Haven"
ACCOUNT = "huggingface-token"


def _usable_keyring() -> object | None:
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    return keyring


class TokenStore:
    def __init__(self, paths: AppPaths, *, use_keyring: bool = True) -> None:
        self._file = paths.config_dir / "hf-token"
        self._use_keyring = use_keyring

    @functools.cached_property
    def _keyring(self) -> object | None:
        """Found on first use: detecting the keyring backend takes a few hundred ms (its plugins load)."""
        return _usable_keyring() if self._use_keyring else None

    @property
    def file(self) -> Path:
        return self._file

    def where(self) -> str:
        return "the system keyring" if self._keyring is not None else f"the private file {self._file}"

    def get(self) -> str | None:
        env = os.environ.get("HF_TOKEN", "").strip()
        if env:
            return env
        if self._keyring is not None:
            with contextlib.suppress(Exception):
                value = self._keyring.get_password(SERVICE, ACCOUNT)  # type: ignore[attr-defined]
                if value:
                    return str(value)
        try:
            return self._file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def set(self, token: str) -> str:
        """Store the token; returns where it went, for the confirmation message."""
        token = token.strip()
        if not token or any(c.isspace() for c in token):
            raise ConfigError("That does not look like a Hugging Face token (it is empty or contains spaces).")
        if self._keyring is not None:
            try:
                self._keyring.set_password(SERVICE, ACCOUNT, token)  # type: ignore[attr-defined]
                return self.where()
            except Exception as exc:  # a locked or broken keyring: fall back to the file
                log.warning("keyring refused the token (%s); using a private file", exc)
                self._keyring = None
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self._file.unlink()
            fd = os.open(self._file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(token + "\n")
        except OSError as exc:
            raise ConfigError(f"Haven could not save the token to {self._file} ({exc.strerror or exc}).") from exc
        return self.where()

    def clear(self) -> None:
        if self._keyring is not None:
            with contextlib.suppress(Exception):
                self._keyring.delete_password(SERVICE, ACCOUNT)  # type: ignore[attr-defined]
        with contextlib.suppress(FileNotFoundError):
            self._file.unlink()
