"""The safety log: a private, local record of the safety system's verdicts. Never sent anywhere.

One JSON line per verdict: time, stage, allowed, category, classifier, score. No message text is kept.
The user can view it (``haven-cli safety log``, the settings panel) and clear it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["SafetyLog", "SafetyRecord"]

log = logging.getLogger(__name__)

MAX_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SafetyRecord:
    time: str
    stage: str
    allowed: bool
    category: str | None
    classifier: str
    score: float | None


class SafetyLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def record(self, stage: str, allowed: bool, category: str | None, classifier: str,
               score: float | None) -> None:
        entry = SafetyRecord(datetime.now(UTC).isoformat(timespec="seconds"), stage, allowed, category, classifier,
                             None if score is None else round(score, 4))
        line = json.dumps(asdict(entry)) + "\n"
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self.path.exists() and self.path.stat().st_size > MAX_BYTES:
                    os.replace(self.path, self.path.with_suffix(".1.jsonl"))
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as handle:
                    handle.write(line)
            except OSError as exc:  # the log is a record, never a reason to fail a turn
                log.warning("could not write the safety log: %s", exc)

    def entries(self) -> list[SafetyRecord]:
        out: list[SafetyRecord] = []
        with self._lock:
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except OSError:
                return []
        for line in lines:
            with contextlib.suppress(ValueError, TypeError):
                out.append(SafetyRecord(**json.loads(line)))
        return out

    def clear(self) -> None:
        with self._lock:
            for path in (self.path, self.path.with_suffix(".1.jsonl")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
