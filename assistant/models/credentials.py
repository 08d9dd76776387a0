"""Secrets Haven keeps for the user: in the OS keyring where one works, else a private file (0600).

:class:`SecretStore` is one secret: read from an environment variable first (when it has one), then the
keyring (service ``Haven``), then its private file under the config folder. Three kinds use it:

* :class:`TokenStore`: the Hugging Face token for gated models (``HF_TOKEN``, file ``hf-token``);
* the API token of ``haven-cli serve`` (:mod:`assistant.server.token`: ``HAVEN_API_TOKEN``, ``api-token``);
* the key of a remote server (:mod:`assistant.remote.registry`: file ``remote-keys/NAME``).

Where no keyring backend exists (a headless Linux machine, a test), the file is the store, and
:meth:`SecretStore.where` says so in words for the confirmation message.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from pathlib import Path

from assistant.errors import ConfigError
from assistant.paths import AppPaths

__all__ = ["SecretStore", "TokenStore"]

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


class SecretStore:
    """One secret. ``account``: its name in the keyring; ``file_name``: its private file under the config
    folder; ``env``: an environment variable that, when set, wins (and is never written)."""

    def __init__(self, paths: AppPaths, *, account: str, file_name: str, env: str | None = None,
                 what: str = "secret", use_keyring: bool = True) -> None:
        self._file = paths.config_dir / file_name
        self._account = account
        self._env = env
        self._what = what
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

    def from_environment(self) -> str | None:
        value = os.environ.get(self._env, "").strip() if self._env else ""
        return value or None

    def get(self) -> str | None:
        env = self.from_environment()
        if env:
            return env
        if self._keyring is not None:
            with contextlib.suppress(Exception):
                value = self._keyring.get_password(SERVICE, self._account)  # type: ignore[attr-defined]
                if value:
                    return str(value)
        try:
            return self._file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def set(self, value: str) -> str:
        """Store the secret; returns where it went, for the confirmation message."""
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise ConfigError(f"That does not look like a {self._what} (it is empty or contains spaces).")
        if self._keyring is not None:
            try:
                self._keyring.set_password(SERVICE, self._account, value)  # type: ignore[attr-defined]
                with contextlib.suppress(FileNotFoundError):
                    self._file.unlink()  # an older copy in the file must not outlive the keyring's
                return self.where()
            except Exception as exc:  # a locked or broken keyring: fall back to the file
                log.warning("keyring refused the %s (%s); using a private file", self._what, exc)
                self._keyring = None
        try:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                self._file.unlink()
            fd = os.open(self._file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(value + "\n")
        except OSError as exc:
            raise ConfigError(f"Haven could not save the {self._what} to {self._file} "
                              f"({exc.strerror or exc}).") from exc
        return self.where()

    def clear(self) -> None:
        if self._keyring is not None:
            with contextlib.suppress(Exception):
                self._keyring.delete_password(SERVICE, self._account)  # type: ignore[attr-defined]
        with contextlib.suppress(FileNotFoundError):
            self._file.unlink()


class TokenStore(SecretStore):
    """The Hugging Face token: ``HF_TOKEN``, then the keyring, then ``<config>/hf-token``."""

    def __init__(self, paths: AppPaths, *, use_keyring: bool = True) -> None:
        super().__init__(paths, account=ACCOUNT, file_name="hf-token", env="HF_TOKEN",
                         what="Hugging Face token", use_keyring=use_keyring)
