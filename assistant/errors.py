"""Haven's exceptions: every one carries a sentence a person can act on.

The tree::

    HavenError                      base; ``str(err)`` is the user-facing sentence
    ├── ConfigError                 settings or data folder problems
    ├── ModelError                  a model file cannot be found, read or loaded
    │   └── ModelNotFoundError      no installed model has that id
    ├── ContextOverflowError        the message cannot fit the model's context window
    ├── GenerationError             llama.cpp failed while generating
    │   └── RemoteServerError       a remote model's server could not be reached or answered wrongly
    ├── StoreError                  the conversation database cannot be read or written
    │   └── ConversationNotFoundError
    └── UsageError                  a command was called the wrong way (CLI exit code 2)

Stop and cancel are outcomes, not errors: they never raise.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ContextOverflowError",
    "ConversationNotFoundError",
    "GenerationError",
    "HavenError",
    "ImportFileError",
    "MessageNotFoundError",
    "ModelError",
    "ModelNotFoundError",
    "RemoteServerError",
    "StoreError",
    "UsageError",
]


class HavenError(Exception):
    """Base class. The message is a complete sentence telling the user what happened and what to do."""


class ConfigError(HavenError):
    pass


class ModelError(HavenError):
    pass


class ModelNotFoundError(ModelError):
    pass


class ContextOverflowError(HavenError):
    """Raised before generation when the newest message cannot fit, whatever history is dropped."""

    def __init__(self, message: str, *, needed_tokens: int, available_tokens: int) -> None:
        super().__init__(message)
        self.needed_tokens = needed_tokens
        self.available_tokens = available_tokens


class GenerationError(HavenError):
    pass


class RemoteServerError(GenerationError):
    """A remote model's server (``haven-cli remote add``) was unreachable, timed out, refused the request or
    sent a stream Haven could not read. The sentence names the server; what was shown before is kept."""


class StoreError(HavenError):
    pass


class ConversationNotFoundError(StoreError):
    pass


class MessageNotFoundError(StoreError):
    """A message id that is not in the conversation named with it."""


class ImportFileError(HavenError):
    """A file ``haven-cli history import`` cannot import; nothing of it was imported."""


class UsageError(HavenError):
    pass
