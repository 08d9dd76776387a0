"""The model manager: the catalog with fit labels for this machine, the best pick per use, downloads with
progress, imports, a signed catalog refresh on request, a tab that searches Hugging Face
(:mod:`ui.model_search`), and a tab of servers whose models Haven may use (:mod:`ui.remote_servers`).

Downloads run in the app's one queue (they continue while you chat and when this window is closed);
this view only shows the queue's state and sends it pause / resume / cancel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from assistant.hardware import HardwareInfo
from assistant.models import (
    Catalog,
    DownloadQueue,
    DownloadSpec,
    DownloadState,
    JobSnapshot,
    ModelRegistry,
    ModelRow,
    TokenStore,
    model_rows,
)
from assistant.models.catalog import Use, load_catalog, recommend_by_use
from assistant.models.catalog_refresh import refresh_catalog
from assistant.models.search import HubSearch
from assistant.models.templates import template_problem
from assistant.paths import AppPaths
from assistant.remote import RemoteRegistry
from ui.errors import show_error
from ui.model_search import ModelSearchPanel
from ui.remote_servers import RemoteServersPanel
from ui.workers import TaskWorker, start

__all__ = ["DownloadBridge", "ModelsDialog"]

FIT_WORDS = {"yes": "fits", "tight": "tight", "no": "won't fit"}
COLUMNS = ("Model", "Size", "Memory needed", "This computer", "Licence", "Status")


def _gb(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"


class DownloadBridge(QObject):
    """Turns the download queue's callbacks (on its own thread) into a Qt signal for the UI thread."""

    changed = Signal(object)

    def __init__(self, queue: DownloadQueue) -> None:
        super().__init__()
        queue.subscribe(self.changed.emit)


def describe_job(job: JobSnapshot) -> str:
    if job.state is DownloadState.DOWNLOADING and job.total:
        left = f", {job.seconds_left:.0f} s left" if job.seconds_left is not None else ""
        return (f"{100 * job.downloaded / job.total:.0f}% · {job.bytes_per_second / 1e6:.1f} MB/s{left}")
    if job.state is DownloadState.FAILED:
        return "failed: " + (job.error or "")
    return job.state.value


class ModelsDialog(QDialog):
    def __init__(self, catalog: Catalog, registry: ModelRegistry, hardware: HardwareInfo, queue: DownloadQueue,
                 bridge: DownloadBridge, *, context_length: int, default_id: Callable[[], str],
                 set_default: Callable[[str], None], spec_for: Callable[[str], DownloadSpec],
                 parent: QWidget | None = None, search: HubSearch | None = None,
                 paths: AppPaths | None = None, use_model: Callable[[str], None] | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Haven models")
        self.resize(980, 520)
        self._catalog, self._registry, self._hardware = catalog, registry, hardware
        self._queue, self._context = queue, context_length
        self._default_id, self._set_default, self._spec_for = default_id, set_default, spec_for
        self.rows: list[ModelRow] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Models")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.cellDoubleClicked.connect(self._open_licence)
        self.summary = QLabel(f"This computer: {hardware.describe()}")
        self.description = QLabel("")
        self.description.setWordWrap(True)
        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for label, handler in (("Download", self.download), ("Pause", self.pause), ("Resume", self.resume),
                               ("Cancel", self.cancel), ("Set as default", self.make_default),
                               ("Delete", self.delete), ("Import GGUF…", self.import_file),
                               ("Licence", self.open_licence)):
            button = QPushButton(label)
            button.setAccessibleName(label)
            button.clicked.connect(handler)
            self.buttons[label] = button
            row.addWidget(button)
        self._paths = paths or AppPaths.from_environment()
        self.picks = QHBoxLayout()
        self.pick_buttons: dict[Use, QPushButton] = {}
        self.picks.addWidget(QLabel("Best for this computer:"))
        for use in Use:
            button = QPushButton(use.label)
            button.setAccessibleName(f"Recommended for {use.label}")
            button.clicked.connect(self._select_pick)
            button.setProperty("use", use.value)
            self.pick_buttons[use] = button
            self.picks.addWidget(button)
        self.picks.addStretch(1)
        self.refresh_button = QPushButton("Check for catalog updates")
        self.refresh_button.clicked.connect(self.refresh_catalog)
        self.picks.addWidget(self.refresh_button)
        catalog_tab = QWidget()
        catalog_layout = QVBoxLayout(catalog_tab)
        catalog_layout.addLayout(self.picks)
        catalog_layout.addWidget(self.table, 1)
        catalog_layout.addWidget(self.description)
        catalog_layout.addLayout(row)
        self.search_panel = ModelSearchPanel(
            search or HubSearch(self._paths.cache_dir, TokenStore(self._paths).get, template_check=template_problem),
            hardware, queue, context_length=context_length)
        self.tabs = QTabWidget()
        self.tabs.addTab(catalog_tab, "Catalog")
        self.tabs.addTab(self.search_panel, "Search Hugging Face")
        self.servers_panel = RemoteServersPanel(RemoteRegistry(self._paths), use_model)
        self.tabs.addTab(self.servers_panel, "Servers")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.tabs, 1)
        bridge.changed.connect(self._job_changed)  # a bound method: delivered on the UI thread
        self.refresh()

    # -- table ---------------------------------------------------------------------------------

    def _job(self, model_id: str) -> JobSnapshot | None:
        jobs = [j for j in self._queue.jobs() if j.spec.model_id == model_id]
        return jobs[-1] if jobs else None

    def _job_changed(self, _job: JobSnapshot) -> None:
        self.refresh()

    def refresh(self) -> None:
        selected = self.selected_id()
        self.rows = model_rows(self._catalog, self._registry, self._hardware, context_length=self._context,
                               default_id=self._default_id())
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            job = self._job(row.id)
            status = "installed" + (" · default" if row.default else "") if row.installed else (
                describe_job(job) if job else ("recommended" if row.recommended else "not installed"))
            values = (row.name + ("  ★ recommended" if row.recommended else ""), _gb(row.size_bytes),
                      _gb(row.ram_required_bytes), FIT_WORDS[row.fits.value], row.license, status)
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.ItemDataRole.UserRole, row.id)
                self.table.setItem(r, c, item)
            if row.id == selected:
                self.table.selectRow(r)
        self._show_picks()
        self._update_buttons()

    # -- recommendations and the catalog --------------------------------------------------------

    def _show_picks(self) -> None:
        picks = recommend_by_use(self._catalog.chat_models(), self._hardware, self._context)
        for use, button in self.pick_buttons.items():
            entry = picks[use]
            button.setText(f"{use.label}: {entry.name}" if entry else f"{use.label}: none fits")
            button.setEnabled(entry is not None)
            button.setProperty("model_id", entry.id if entry else None)

    def _select_pick(self) -> None:
        button = self.sender()
        model_id = button.property("model_id") if button is not None else None
        if model_id:
            self.select(str(model_id))

    def refresh_catalog(self) -> None:
        """Only on the user's click, on a worker: the signed catalog from the project's repository."""
        paths = self._paths
        worker = TaskWorker(lambda: refresh_catalog(paths))
        worker.result.connect(self._catalog_refreshed)
        worker.failed.connect(self._catalog_failed)
        self._refresh_worker = worker
        self.refresh_button.setEnabled(False)
        start(worker, worker.run)

    def _catalog_refreshed(self, result: object) -> None:
        self.refresh_button.setEnabled(True)
        self._catalog = load_catalog()
        self.description.setText(f"The catalog is up to date (version {getattr(result, 'version', '?')}).")
        self.refresh()

    def _catalog_failed(self, sentence: str, _details: str) -> None:
        self.refresh_button.setEnabled(True)
        self.description.setText(sentence)

    def selected_id(self) -> str | None:
        items = self.table.selectedItems()
        return str(items[0].data(Qt.ItemDataRole.UserRole)) if items else None

    def select(self, model_id: str) -> None:
        for r, row in enumerate(self.rows):
            if row.id == model_id:
                self.table.selectRow(r)

    def _selected_row(self) -> ModelRow | None:
        model_id = self.selected_id()
        return next((r for r in self.rows if r.id == model_id), None)

    def _update_buttons(self) -> None:
        row = self._selected_row()
        job = self._job(row.id) if row else None
        state = job.state if job else None
        active = state in (DownloadState.QUEUED, DownloadState.DOWNLOADING, DownloadState.VERIFYING)
        self.buttons["Download"].setEnabled(bool(row and not row.installed and row.id and not active
                                                 and state is not DownloadState.PAUSED))
        self.buttons["Pause"].setEnabled(state in (DownloadState.QUEUED, DownloadState.DOWNLOADING))
        self.buttons["Resume"].setEnabled(state in (DownloadState.PAUSED, DownloadState.FAILED))
        self.buttons["Cancel"].setEnabled(bool(job and not job.finished))
        self.buttons["Set as default"].setEnabled(bool(row and row.installed and not row.default))
        self.buttons["Delete"].setEnabled(bool(row and row.installed and "starter" not in row.tags))
        self.buttons["Licence"].setEnabled(bool(row and row.license_url))
        self.description.setText(row.description if row else "")

    # -- actions -------------------------------------------------------------------------------

    def download(self) -> None:
        if (model_id := self.selected_id()) is not None:
            self._queue.submit(self._spec_for(model_id))
            self.refresh()

    def pause(self) -> None:
        if (model_id := self.selected_id()) and (job := self._job(model_id)):
            self._queue.pause(job.id)

    def resume(self) -> None:
        if (model_id := self.selected_id()) and (job := self._job(model_id)):
            self._queue.resume(job.id)

    def cancel(self) -> None:
        if (model_id := self.selected_id()) and (job := self._job(model_id)):
            self._queue.cancel(job.id)

    def make_default(self) -> None:
        if (model_id := self.selected_id()) is not None:
            self._set_default(model_id)
            self.refresh()

    def delete(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        answer = QMessageBox.question(self, "Delete model", f"Delete {row.name} ({_gb(row.size_bytes)}) from this "
                                      "computer? An imported file is only forgotten, not deleted.")
        if answer == QMessageBox.StandardButton.Yes:
            try:
                self._registry.remove(row.id)
            except Exception as exc:
                show_error(self, str(exc))
            self.refresh()

    def import_file(self, path: str | None = None) -> None:
        chosen = path or QFileDialog.getOpenFileName(self, "Import a GGUF model", "", "GGUF models (*.gguf)")[0]
        if not chosen:
            return
        try:
            model = self._registry.import_file(Path(chosen))
        except Exception as exc:
            show_error(self, str(exc))
            return
        self.refresh()
        self.select(model.id)

    def open_licence(self) -> None:
        row = self._selected_row()
        if row and row.license_url.startswith("https://"):
            QDesktopServices.openUrl(QUrl(row.license_url))

    def _open_licence(self, _row: int, column: int) -> None:
        if COLUMNS[column] == "Licence":
            self.open_licence()
