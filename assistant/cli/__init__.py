"""``haven-cli``: ``main`` holds the parser, the exit codes and the chat and history commands; one module
per other command group (``models``, ``safety``, ``bench``)."""

from assistant.cli.main import main

__all__ = ["main"]
