#!/usr/bin/env python3
"""Render screenshots of the desktop app into docs/screenshots/ (offscreen; no display needed).

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots.py

Runs the real app on the starter model in a temporary HAVEN_HOME and grabs the main window in the light
and the dark theme (chat-light.png, chat-dark.png), the model manager and the settings panel.

The window shows one conversation written into the store beforehand, because the tiny starter model does
not write Markdown with code, a table and maths, nor think: a reasoning model's reply with its thinking,
a regenerated reply ("2 / 2") and a code block. The last exchange of it is a real turn of the starter
model, typed into the window and streamed through the safety filter.
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
from PySide6.QtWidgets import QAbstractSlider, QApplication, QTabWidget  # noqa: E402

from assistant.engine import SamplingParams  # noqa: E402
from assistant.settings import Theme  # noqa: E402
from ui.app import HavenApp, apply_theme  # noqa: E402
from ui.settings_dialog import SettingsDialog  # noqa: E402
from ui.theme import current_theme  # noqa: E402


def wait_until(app: QApplication, condition, seconds: float = 60) -> None:
    loop = QEventLoop()
    timer = QTimer()
    timer.timeout.connect(lambda: loop.quit() if condition() else None)
    timer.start(50)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    timer.stop()


QUESTION = "What is the mean of a column in a CSV file, and how do I compute it in Python?"
REASONING = ("The user wants the arithmetic mean of one column. Show the formula, then the standard library "
             "way (csv + statistics), and a small table of what each step gives.")
REPLIES = (
    "The mean is the sum of the values divided by how many there are.",
    "The **mean** of a column $x_1, \\dots, x_n$ is\n\n$$\\bar{x} = \\frac{1}{n} \\sum_{i=1}^{n} x_i$$\n\n"
    "With the standard library only:\n\n```python\nimport csv\nimport statistics\n\n"
    "with open(\"sales.csv\", newline=\"\") as file:\n    values = [float(row[\"amount\"]) "
    "for row in csv.DictReader(file)]\n\nprint(statistics.mean(values))\n```\n\n"
    "| step | gives |\n|---|---|\n| `csv.DictReader` | one dict per row |\n"
    "| list comprehension | the column as floats |\n| `statistics.mean` | $\\bar{x}$ |\n\n"
    "For large files, [pandas](https://pandas.pydata.org) reads the column with `pd.read_csv`.",
)


def seed(database: Path) -> None:
    """The conversation the window opens: a question answered twice (the second a reasoning model's)."""
    from assistant.chat import StopReason
    from assistant.store import ReplyUpdate, Store

    with Store(database) as store:
        conversation = store.create_conversation("smollm2-135m-instruct", title="Mean of a CSV column")
        question = store.add_user_message(conversation.id, QUESTION)
        for number, reply in enumerate(REPLIES):
            reply_id = store.start_reply(conversation.id, "qwen3-4b-thinking" if number else "smollm2-135m-instruct",
                                         parent_id=question)
            store.finish_reply(reply_id, ReplyUpdate(content=reply, complete=True, stop_reason=StopReason.END,
                                                     reasoning=REASONING if number else "",
                                                     reasoning_ms=2300.0 if number else None))


def main() -> int:
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    from assistant.paths import AppPaths

    seed(AppPaths.from_environment().ensure().database_file)
    app = QApplication(sys.argv)
    haven = HavenApp(app)
    window = haven.window
    window.resize(1200, 820)
    window.show()
    wait_until(app, lambda: window.session is not None)
    window.session.sampling = SamplingParams(temperature=0.0, seed=1, max_tokens=60)
    window.sidebar.list.setCurrentRow(0)
    window.open_conversation(window.sidebar.current_id() or "")
    window.input.setPlainText("Thanks! Name three colours.")
    window.send()
    wait_until(app, lambda: window.turn is None, seconds=300)
    chat = window.chat
    chat.setFocus()
    chat.setCurrentIndex(chat.model().index(1, 0))  # the keyboard on the reply: its actions show
    chat.verticalScrollBar().triggerAction(QAbstractSlider.SliderAction.SliderToMinimum)  # as a person scrolls
    for theme, name in ((Theme.LIGHT, "chat-light.png"), (Theme.DARK, "chat-dark.png")):
        apply_theme(app, theme)
        chat.set_theme(current_theme())
        wait_until(app, lambda: False, seconds=0.3)
        chat.verticalScrollBar().triggerAction(QAbstractSlider.SliderAction.SliderToMinimum)
        wait_until(app, lambda: False, seconds=0.3)
        window.grab().save(str(out / name))
    apply_theme(app, Theme.LIGHT)
    chat.set_theme(current_theme())
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
