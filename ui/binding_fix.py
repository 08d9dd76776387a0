"""A guard against a PySide6 binding bug that would otherwise crash Haven on Python 3.11.

PySide6/shiboken6 6.12.0 returns ``None`` from every wrapped C++ method that returns ``void`` without
taking a reference to it, so each such call (``QFont.setBold``, ``QWidget.resize``,
``QTextDocument.setHtml``, ...) lowers ``None``'s reference count by one; a signal's ``emit()`` does the
same to ``True``. On Python 3.12 and later these objects are immortal and nothing happens; on 3.11 the
count reaches zero after some thousands of calls and the interpreter aborts with "none_dealloc:
deallocating None" (or "bool_dealloc"). The transcript makes such calls for every message it paints, so
it reached that point within seconds; a turn worker emitting text 30 times a second, within minutes.

:func:`protect_none` gives ``None``, ``True`` and ``False`` a reference count no process can use up, as
Python 3.12 does for every immortal object. They are never meant to be freed, so this changes nothing
else. ``tests/ui/test_binding_fix.py`` shows the bug and the guard.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["protect_none"]

IMMORTAL = 1 << 40  # far more references than a process can lose; ob_refcnt is a Py_ssize_t at offset 0


def protect_none() -> None:
    """Make ``None``, ``True`` and ``False`` effectively immortal where Python does not (3.11)."""
    if sys.version_info >= (3, 12):
        return
    for singleton in (None, True, False):
        count = ctypes.c_ssize_t.from_address(id(singleton))
        if count.value < IMMORTAL:
            count.value += IMMORTAL
