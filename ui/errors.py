"""One place where errors reach the user: a sentence saying what to do, the details behind an expander.

``install_excepthook`` routes any exception that escapes a slot here, so it never kills the app.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from PySide6.QtWidgets import QMessageBox, QWidget

from assistant.errors import HavenError

__all__ = ["install_excepthook", "show_error"]

log = logging.getLogger(__name__)


def show_error(parent: QWidget | None, message: str, details: str = "") -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Warning, "Haven", message, QMessageBox.StandardButton.Ok, parent)
    if details:
        box.setDetailedText(details)
    box.setAccessibleName("Error")
    box.open()  # non-blocking: the UI thread keeps running
    return box


def install_excepthook(parent: QWidget | None) -> None:
    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        details = "".join(traceback.format_exception(kind, exc, tb))
        log.error("uncaught exception in the UI:\n%s", details)
        message = str(exc) if isinstance(exc, HavenError) else (
            f"Something went wrong ({kind.__name__}: {exc}). Haven is still running; the details help "
            "when reporting it.")
        show_error(parent, message, details)

    sys.excepthook = hook
