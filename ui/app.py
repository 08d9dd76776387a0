"""``haven``: the one place the desktop app's objects are built and wired together."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QApplication

from assistant.cli import configure_logging
from assistant.engine import Engine, LoadOptions, SamplingParams
from assistant.hardware import detect_hardware
from assistant.models import ModelRegistry
from assistant.paths import AppPaths
from assistant.safety.factory import build_policy
from assistant.session import ChatSession
from assistant.settings import Settings, Theme, load_settings, save_settings
from assistant.store import Store
from ui.errors import install_excepthook, show_error
from ui.main_window import MainWindow
from ui.settings_dialog import SettingsDialog
from ui.workers import TaskWorker, live_threads, start

__all__ = ["HavenApp", "main"]

log = logging.getLogger(__name__)


def sampling_from(settings: Settings) -> SamplingParams:
    return SamplingParams(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k,
                          min_p=settings.min_p, repeat_penalty=settings.repeat_penalty,
                          max_tokens=settings.max_tokens)


def apply_theme(app: QApplication, theme: Theme) -> None:
    scheme = {Theme.DARK: Qt.ColorScheme.Dark, Theme.LIGHT: Qt.ColorScheme.Light}.get(theme, Qt.ColorScheme.Unknown)
    app.styleHints().setColorScheme(scheme)


class HavenApp(QObject):
    """Owns the core objects for the app's lifetime; the window only shows them."""

    def __init__(self, app: QApplication) -> None:
        super().__init__()
        self.app = app
        self.paths = AppPaths.from_environment().ensure()
        loaded = load_settings(self.paths.settings_file)
        self.settings = loaded.settings
        self.store = Store(self.paths.database_file)
        self.registry = ModelRegistry(self.paths)
        self.engine = Engine()
        self.model_id = self.registry.default_id(self.settings.default_model)
        self._closing = False
        self.window = MainWindow(self.store)
        self.window.settings_opener = self.open_settings
        install_excepthook(self.window)
        apply_theme(app, self.settings.theme)
        for warning in loaded.warnings:
            show_error(self.window, warning)
        self.load_model()

    def load_model(self) -> None:
        model = self.registry.get(self.model_id)
        settings = self.settings
        self.window.session = None
        self.window.set_ready(False, f"Loading {model.name}…")

        def load() -> ChatSession:
            self.engine.load(model.path, LoadOptions(
                context_length=settings.context_length, threads=settings.threads,
                gpu_layers=settings.gpu_layers, chat_format=model.chat_format))
            policy = build_policy(self.paths, settings, self.registry)
            return ChatSession(self.engine, self.store, policy, model_id=model.id, sampling=sampling_from(settings),
                               user_instructions=settings.user_instructions)

        worker = TaskWorker(load)
        worker.result.connect(lambda session: self._loaded(session, model.name))
        worker.failed.connect(lambda message, details: self._failed(message, details))
        start(worker, worker.run)

    def _loaded(self, session: ChatSession, label: str) -> None:
        if not self._closing:
            self.window.attach_session(session, label)

    def _failed(self, message: str, details: str) -> None:
        if not self._closing:
            show_error(self.window, message, details)

    def open_settings(self) -> None:
        models = [(m.id, m.name) for m in self.registry.installed()]
        dialog = SettingsDialog(self.settings, hardware=detect_hardware().describe(), models=models,
                                parent=self.window)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return
        new = dialog.result_settings()
        try:
            save_settings(self.paths.settings_file, new)
        except Exception as exc:
            show_error(self.window, str(exc))
            return
        model_id = self.registry.default_id(new.default_model)
        reload_needed = model_id != self.model_id or any(getattr(new, f) != getattr(self.settings, f) for f in (
            "context_length", "gpu_layers", "threads", "safety_guard_model"))
        self.settings = new
        apply_theme(self.app, new.theme)
        if reload_needed and self.window.turn is None:
            self.model_id = model_id
            self.load_model()
        elif self.window.session is not None:
            self.window.session.sampling = sampling_from(new)
            self.window.session.user_instructions = new.user_instructions

    def shutdown(self) -> None:
        """Let background work finish (a turn is already stopped by the window), then free the model."""
        self._closing = True
        for thread in live_threads():
            thread.wait(2000)
        self.engine.close()
        self.store.close()


def main(argv: Sequence[str] | None = None) -> int:
    configure_logging(AppPaths.from_environment(), debug="--debug" in (argv or sys.argv))
    app = QApplication(list(argv or sys.argv))
    app.setApplicationName("Haven")
    app.setApplicationDisplayName("Haven")
    haven = HavenApp(app)
    haven.window.show()
    code = app.exec()
    haven.shutdown()
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
