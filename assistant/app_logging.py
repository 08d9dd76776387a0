"""Logging set-up for the entry points (``haven`` and ``haven-cli``); library modules only get loggers.

Kept apart from the CLI so the desktop app can configure logging without importing every command.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys

from assistant.paths import AppPaths

__all__ = ["configure_logging"]


def configure_logging(paths: AppPaths | None, debug: bool) -> None:
    """Everything to the log file (INFO, or DEBUG with --debug); to stderr only with --debug."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    if sys.stderr is not None:  # None in a windowed Windows app
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.DEBUG if debug else logging.CRITICAL + 1)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
    if paths is not None:
        try:
            paths.log_dir.mkdir(parents=True, exist_ok=True)
            handler = logging.handlers.RotatingFileHandler(
                paths.log_file, maxBytes=2_000_000, backupCount=2, encoding="utf-8")
        except OSError:
            return
        handler.setLevel(logging.DEBUG if debug else logging.INFO)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
