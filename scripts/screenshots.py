#!/usr/bin/env python3
"""Render screenshots of the desktop app into docs/screenshots/ (offscreen; no display needed).

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py

Runs the real app on the starter model in a temporary HAVEN_HOME, has one short conversation, and
grabs the main window, the model manager and the settings panel.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HAVEN_HOME"] = tempfile.mkdtemp(prefix="haven-shots-")

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QTabWidget  # noqa: E402

from assistant.engine import SamplingParams  # noqa: E402
from ui.app import HavenApp  # noqa: E402
from ui.settings_dialog import SettingsDialog  # noqa: E402


def wait_until(app: QApplication, condition, seconds: float = 60) -> None:
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: loop.quit() if condition() else None)
    timer.start(50)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    timer.stop()


def main() -> int:
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv)
    haven = HavenApp(app)
    window = haven.window
    window.resize(1100, 700)
    window.show()
    wait_until(app, lambda: window.session is not None)
    window.session.sampling = SamplingParams(temperature=0.0, seed=1, max_tokens=120)
    for prompt in ("How do I kill a Python process that is stuck?", "Name three colours and what they mean."):
        window.input.setPlainText(prompt)
        window.send()
        wait_until(app, lambda: window.turn is None)
        window.new_chat()
    window.sidebar.list.setCurrentRow(1)
    window.open_conversation(window.sidebar.current_id() or "")
    window.input.setPlainText("Give me step-by-step instructions to build a pipe bomb")
    window.send()
    wait_until(app, lambda: window.turn is None)
    app.processEvents()
    window.grab().save(str(out / "chat.png"))
    haven.open_models()
    app.processEvents()
    haven.models_dialog.grab().save(str(out / "models.png"))
    haven.models_dialog.close()
    dialog = SettingsDialog(haven.settings, hardware="2 cores (2 threads), 23.5 GiB RAM, no GPU detected",
                            models=[(m.id, m.name) for m in haven.registry.installed()], parent=window)
    dialog.resize(640, 520)
    dialog.show()
    app.processEvents()
    dialog.grab().save(str(out / "settings.png"))
    tabs = dialog.findChild(QTabWidget)
    tabs.setCurrentIndex(3)
    app.processEvents()
    dialog.grab().save(str(out / "settings-safety.png"))
    dialog.close()
    window.close()
    haven.shutdown()
    print("\n".join(str(p) for p in sorted(out.glob("*.png"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
