"""The API's bearer token: ``HAVEN_API_TOKEN`` when set, else the stored one (the OS keyring or the
private file ``<config>/api-token``), else a new random one, stored on first use so that the settings
window can show it and it stays the same between runs."""

from __future__ import annotations

import secrets

from assistant.models.credentials import SecretStore
from assistant.paths import AppPaths

__all__ = ["API_TOKEN_ENV", "ApiToken"]

API_TOKEN_ENV = "HAVEN_API_TOKEN"


class ApiToken:
    def __init__(self, paths: AppPaths, *, use_keyring: bool = True) -> None:
        self._store = SecretStore(paths, account="api-token", file_name="api-token", env=API_TOKEN_ENV,
                                  what="API token", use_keyring=use_keyring)

    def get(self) -> str:
        """The token, generating and storing one the first time."""
        token = self._store.get()
        if token is None:
            token = self.renew()
        return token

    def peek(self) -> str | None:
        """The token if there is one yet, without creating it."""
        return self._store.get()

    def renew(self) -> str:
        """A new random token, replacing the stored one (clients using the old one get 401 from now on)."""
        token = "haven-" + secrets.token_urlsafe(32)
        self._store.set(token)
        return token

    def from_environment(self) -> bool:
        return self._store.from_environment() is not None

    def where(self) -> str:
        return f"the environment variable {API_TOKEN_ENV}" if self.from_environment() else self._store.where()
