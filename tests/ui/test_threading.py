"""Widgets are touched only on the UI thread, whatever thread a result or a download event comes from.

PySide6 runs a lambda connected to a signal on the thread that emitted it, so results from workers must
go to bound methods of objects living on the UI thread. These tests catch the regression.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from ui.main_window import MainWindow
from ui.models_dialog import ModelsDialog


def _on_ui_thread() -> bool:
    return QThread.currentThread() is QApplication.instance().thread()


def test_a_loaded_model_is_attached_on_the_ui_thread(qtbot, qapp, monkeypatch) -> None:
    from ui.app import HavenApp

    seen: list[bool] = []
    original = MainWindow.attach_session

    def attach(self, session, label):
        seen.append(_on_ui_thread())
        original(self, session, label)

    monkeypatch.setattr(MainWindow, "attach_session", attach)
    app = HavenApp(qapp)
    qtbot.addWidget(app.window)
    qtbot.waitUntil(lambda: app.window.session is not None, timeout=30_000)
    assert seen == [True]
    app.window.close()
    app.shutdown()


def test_download_events_from_another_thread_refresh_the_dialog_on_the_ui_thread(qtbot, haven, monkeypatch) -> None:
    seen: list[bool] = []
    original = ModelsDialog.refresh

    def refresh(self):
        seen.append(_on_ui_thread())
        original(self)

    monkeypatch.setattr(ModelsDialog, "refresh", refresh)
    haven.open_models()
    seen.clear()
    emitter = threading.Thread(target=haven.download_bridge.changed.emit, args=(None,))
    emitter.start()
    emitter.join()
    qtbot.waitUntil(lambda: bool(seen), timeout=5_000)
    assert all(seen)
