"""Writing Haven's small JSON files safely: atomically, and never over a file that could not be read.

Settings (``settings.py``) and the list of installed models (``models/registry.py``) both use these, so a
crash or a full disk mid-write leaves the old file whole, and a file someone broke by hand is kept beside
itself as ``<name>.corrupt-<time>`` before Haven writes a fresh one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

__all__ = ["keep_corrupt_copy", "write_atomically"]


def write_atomically(path: Path, text: str) -> None:
    """A temporary file in the same folder, flushed to disk, then renamed over ``path``: a reader sees the
    old file or the new one, never half of one. Raises OSError (the caller says what to do in a sentence)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def keep_corrupt_copy(path: Path) -> Path | None:
    """Copy an unreadable ``path`` aside as ``<name>.corrupt-<time>``; the copy, or None if none was made."""
    backup = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        shutil.copy2(path, backup)
    except OSError:
        return None
    return backup
