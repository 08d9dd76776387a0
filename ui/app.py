"""``haven``: the one place the desktop app's objects are built and wired together."""

from __future__ import annotations

import logging
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from assistant.app_logging import configure_logging
from assistant.core import Core
from assistant.engine import Engine, describe_runtime, gpu_infos
from assistant.errors import HavenError
from assistant.hardware import detect_hardware
from assistant.models import (
    Downloader,
    DownloadQueue,
    DownloadSpec,
    DownloadState,
    JobSnapshot,
    TokenStore,
    load_catalog,
)
from assistant.models.catalog import Use, recommend_by_use
from assistant.paths import AppPaths
from assistant.remote import RemoteEngine
from assistant.server import ApiServer, ApiService, ApiToken, exposure_warning
from assistant.session import ChatSession
from assistant.settings import Settings, Theme, save_settings
from ui.errors import install_excepthook, show_error
from ui.main_window import MainWindow
from ui.models_dialog import DownloadBridge, ModelsDialog
from ui.settings_dialog import SettingsDialog
from ui.shutdown import CleanExit, end_with_running_threads
from ui.theme import DARK, LIGHT, current_theme, palette_for, style_sheet
from ui.workers import TaskWorker, live_threads, start

__all__ = ["HavenApp", "main"]

log = logging.getLogger(__name__)


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Settings choose light or dark, or (the default) follow the OS; the window's style sheet follows.
    Where the platform cannot switch to the scheme asked for (X11 without a desktop portal, the offscreen
    platform), Haven sets a palette in that scheme itself."""
    scheme = {Theme.DARK: Qt.ColorScheme.Dark, Theme.LIGHT: Qt.ColorScheme.Light}.get(theme, Qt.ColorScheme.Unknown)
    hints = app.styleHints()
    hints.setColorScheme(scheme)
    if scheme == Qt.ColorScheme.Unknown:
        app.setPalette(QPalette())  # the platform's own
    elif hints.colorScheme() != scheme:
        app.setPalette(palette_for(DARK if scheme == Qt.ColorScheme.Dark else LIGHT))
    app.setStyleSheet(style_sheet(current_theme()))


class HavenApp(QObject):
    """Owns the core objects for the app's lifetime; the window only shows them."""

    def __init__(self, app: QApplication) -> None:
        super().__init__()
        self.app = app
        self.core = Core.open()  # folders, settings, store and registry, built as the CLI builds them
        self.paths, self.store, self.registry = self.core.paths, self.core.store, self.core.registry
        self.engine = Engine()
        self.catalog = load_catalog()
        self.hardware = detect_hardware(gpu_infos())  # the GPUs llama.cpp can use, with their memory
        self.downloads = DownloadQueue(Downloader(self.paths, self.registry, token_source=TokenStore(self.paths).get))
        self.download_bridge = DownloadBridge(self.downloads)
        self.download_bridge.changed.connect(self._download_changed)
        self.model_id = self.registry.default_id(self.settings.default_model)
        self._closing = False
        self._shut_down = False
        self.api: ApiServer | None = None  # Settings → Server, on the loaded model
        self.remote: RemoteEngine | None = None  # the engine of a model on an added server
        self.window = MainWindow(self.store)
        self.window.settings_opener = self.open_settings
        self.window.models_opener = self.open_models
        self.window.model_switcher = self.switch_model
        install_excepthook(self.window)
        apply_theme(app, self.settings.theme)
        self.window.chat.set_theme(current_theme())
        app.styleHints().colorSchemeChanged.connect(self._scheme_changed)  # the OS switched light/dark
        for warning in self.core.take_warnings():
            show_error(self.window, warning)
        self._welcome()
        self.load_model()

    def _scheme_changed(self, _scheme: Qt.ColorScheme) -> None:
        self.app.setStyleSheet(style_sheet(current_theme()))  # the transcript follows on its own

    def _welcome(self) -> None:
        """First run: the starter model is ready; recommend the best model that fits this computer."""
        if self.store.list_conversations():
            return
        picks = recommend_by_use(self.catalog.chat_models(), self.hardware, self.settings.context_length,
                                 gpu_offload=self.settings.gpu_layers != 0)
        best = picks[Use.GENERAL]
        if best is None or self.registry.find(best.id) is not None:
            return
        others = "; ".join(f"{u.label.lower()}: {e.name}" for u, e in picks.items() if e and u is not Use.GENERAL)
        self.window.show_welcome(
            f"Welcome to Haven. You are chatting with a tiny demo model. For this computer we recommend "
            f"<b>{best.name}</b> ({best.display_size / 1e9:.1f} GB): {best.description}"
            + (f" Also good here, for {others} (see the model manager)." if others else ""),
            lambda: self._download_recommended(best.id))

    def _download_recommended(self, model_id: str) -> None:
        entry = self.catalog.get(model_id)
        if entry is not None:
            self.downloads.submit(DownloadSpec.from_catalog(entry))
            self.open_models(select=model_id)

    def _download_changed(self, job: JobSnapshot) -> None:
        if job.state is DownloadState.COMPLETED:
            self.window.statusBar().showMessage(f"{job.spec.name or job.spec.model_id} is installed.", 8000)
        elif job.state is DownloadState.FAILED and job.error:
            self.window.statusBar().showMessage(job.error, 15000)

    def open_models(self, select: str | None = None) -> None:
        def spec_for(model_id: str) -> DownloadSpec:
            entry = self.catalog.get(model_id)
            if entry is None:
                raise ValueError(model_id)
            return DownloadSpec.from_catalog(entry)

        dialog = ModelsDialog(self.catalog, self.registry, self.hardware, self.downloads, self.download_bridge,
                              context_length=self.settings.context_length, default_id=lambda: self.model_id,
                              set_default=self.set_default_model, spec_for=spec_for, parent=self.window,
                              paths=self.paths, use_model=self.use_model)
        if select:
            dialog.select(select)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        self.models_dialog = dialog

    def switch_model(self, model_id: str) -> None:
        """A conversation continues with the model it was held with, when that model is still installed."""
        known = self.registry.find(model_id) is not None or self.core.is_remote(model_id)
        if not known or model_id == self.model_id or self.window.turn is not None:
            return
        self.model_id = model_id
        self.load_model()

    def set_default_model(self, model_id: str) -> None:
        new = self.settings.replace(default_model=model_id)
        save_settings(self.paths.settings_file, new)
        self.settings = new
        if model_id != self.model_id and self.window.turn is None:
            self.model_id = model_id
            self.load_model()

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        self.core.settings = value

    def use_model(self, model_id: str) -> None:
        """Chat with ``model_id`` now (the model manager's "Chat with it", for a server's model too)."""
        if self.window.turn is None:
            self.model_id = model_id
            self.load_model()

    def load_model(self) -> None:
        self._stop_server()
        if self.remote is not None:
            self.remote.close()
            self.remote = None
        self.window.session = None
        if self.core.is_remote(self.model_id):
            model_id, name = self.model_id, self.model_id
            self.window.set_ready(False, f"Connecting to {name}…")

            def load() -> ChatSession:
                session, self.remote = self.core.open_remote_session(model_id)
                return session
        else:
            model = self.registry.get(self.model_id)
            name = model.name
            self.window.set_ready(False, f"Loading {model.name}…")

            def load() -> ChatSession:
                return self.core.open_session(model.id, self.engine)[0]

        worker = TaskWorker(load)
        # Bound methods of this QObject, not lambdas: PySide6 calls a lambda on the emitting (worker)
        # thread, while a QObject's method is queued to the thread the object lives in, the UI thread.
        self._loading_label = name
        worker.result.connect(self._loaded)
        worker.failed.connect(self._failed)
        start(worker, worker.run)

    def _loaded(self, session: ChatSession) -> None:
        if not self._closing:
            self.window.attach_session(session, self._loading_label)
            info = self.engine.model
            notes = self.core.take_warnings()  # e.g. a guard model that could not be used
            if info is not None and info.runtime_notice:  # the self-test stepped down: say so, once per load
                notes.append(info.runtime_notice)
            if notes:
                self.window.statusBar().showMessage(" ".join(notes), 15_000)
            log.info("ready: %s", self._loading_label)  # what tests starting `haven` wait for
            self._sync_server()

    def _stop_server(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None

    def _sync_server(self) -> None:
        """Settings → Server: the API on the loaded model when switched on (started again after a change)."""
        self._stop_server()
        session, settings = self.window.session, self.settings
        if not settings.server_enabled or session is None or self._closing:
            return
        service = ApiService(session.engine, session.policy, model_id=self.model_id, sampling=self.core.sampling(),
                             store=self.store if settings.server_store_conversations else None)
        try:
            self.api = ApiServer(service, ApiToken(self.paths).get, host=settings.server_host,
                                 port=settings.server_port)
            self.api.start()
        except HavenError as exc:
            service.close()
            self.api = None
            show_error(self.window, f"Haven's API did not start: {exc}")
            return
        warning = exposure_warning(settings.server_host, self.api.port)
        self.window.statusBar().showMessage(f"Haven's API is on at {self.api.base_url}." +
                                            (f" {warning}" if warning else ""), 15_000)
        log.info("API on at %s", self.api.base_url)

    def _failed(self, message: str, details: str) -> None:
        if not self._closing:
            show_error(self.window, message, details)

    def open_settings(self) -> None:
        models = [(m.id, m.name) for m in self.registry.installed()]
        dialog = SettingsDialog(self.settings, hardware=self.hardware.describe(), models=models, paths=self.paths,
                                runtime=describe_runtime(self.engine.model), parent=self.window)
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
        server_changed = any(getattr(new, f) != getattr(self.settings, f) for f in (
            "server_enabled", "server_host", "server_port", "server_store_conversations"))
        self.settings = new
        apply_theme(self.app, new.theme)
        self.window.chat.set_theme(current_theme())
        if reload_needed and self.window.turn is None:
            self.model_id = model_id
            self.load_model()
        elif self.window.session is not None:
            self.window.session.sampling = self.core.sampling()
            self.window.session.user_instructions = new.user_instructions
            if server_changed:
                self._sync_server()

    def shutdown(self) -> None:
        """Let background work finish (a turn is already stopped by the window), then free the model.

        Called from ``aboutToQuit`` (``ui/shutdown.py``) and again after the event loop: only once counts."""
        if self._shut_down:
            return
        self._shut_down = True
        self._closing = True
        self.downloads.close()  # a running download pauses; its partial file is kept for next time
        self._stop_server()
        if self.remote is not None:
            self.remote.close()
        for thread in live_threads():
            thread.wait(2000)
        self.engine.close()
        self.store.close()
        log.info("shut down: the model and the conversation store are closed")


def quit_when_loaded(app: QApplication, haven: HavenApp, limit_ms: int = 60_000) -> None:
    """``--smoke-test`` (packaging/ runs it on a built bundle): exit 0 once the window is up and the model
    loaded, 1 if an error is shown or that takes longer than ``limit_ms``."""
    def check() -> None:
        if haven.window.isVisible() and haven.window.session is not None:
            if sys.stdout is not None:  # None in a windowed Windows build
                print(f"smoke test: window {haven.window.windowTitle()!r} shown, model loaded", flush=True)
            app.exit(0)
        elif (dialog := app.activeModalWidget()) is not None:
            if sys.stderr is not None:
                print(f"smoke test: {getattr(dialog, 'text', dialog.windowTitle)()}", file=sys.stderr, flush=True)
            app.exit(1)

    timer = QTimer(app)
    timer.timeout.connect(check)
    timer.start(100)
    QTimer.singleShot(limit_ms, lambda: app.exit(1))


def cannot_start(message: str, *, dialog: bool = True) -> int:
    """Haven cannot set itself up: say why in a dialog (a GUI app may have no console) and exit with 1."""
    log.error("Haven cannot start: %s", message)
    if sys.stderr is not None:
        print(f"error: {message}", file=sys.stderr, flush=True)
    if dialog:
        QMessageBox.critical(None, "Haven", message)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    # In the frozen app, the llama.cpp self-test's child process (assistant.engine.selftest) starts as this
    # same executable: freeze_support runs the child's work and exits before any window exists.
    multiprocessing.freeze_support()
    arguments = list(argv or sys.argv)
    if "--bench-probe" in arguments:  # haven-cli bench times the real app: `haven --bench-probe TOKENS FILE`
        from ui import bench_probe

        at = arguments.index("--bench-probe")
        return bench_probe.main(int(arguments[at + 1]), Path(arguments[at + 2]))
    if "--bench-probe-long" in arguments:  # the long-conversation probe: `haven --bench-probe-long FILE`
        from ui import bench_probe

        at = arguments.index("--bench-probe-long")
        return bench_probe.main(0, Path(arguments[at + 1]), long_conversation=True)
    configure_logging(AppPaths.from_environment(), debug="--debug" in (argv or sys.argv))
    app = QApplication(list(argv or sys.argv))
    app.setApplicationName("Haven")
    app.setApplicationDisplayName("Haven")
    try:
        haven = HavenApp(app)
    except HavenError as exc:  # its folders or database cannot be used: a sentence, not a silent exit
        return cannot_start(str(exc), dialog="--smoke-test" not in (argv or sys.argv))
    haven.window.show()
    # SIGTERM/SIGINT/SIGHUP and the end of the desktop session close the window and shut down cleanly.
    clean_exit = CleanExit(app, haven.window, haven.shutdown)
    if "--smoke-test" in (argv or sys.argv):
        quit_when_loaded(app, haven)
    code = app.exec()
    haven.shutdown()
    clean_exit.close()
    end_with_running_threads(int(code))
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
