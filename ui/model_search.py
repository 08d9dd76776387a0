"""The model manager's "Search Hugging Face" panel: GGUF repositories by keyword, OWNER/NAME or pasted link,
every quantization with its size and this computer's fit label, the recommended file starred.

Searches and access checks run on a worker (``ui.workers``); a picked file goes to the app's one download
queue (verified against the hub's LFS sha256, resumable, pausable like catalog downloads). A gated repository
gets a sentence and a button that opens its page, where the licence is accepted; the stored token is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from assistant.hardware import HardwareInfo
from assistant.models import DownloadQueue, DownloadSpec
from assistant.models.search import GatedError, HubFile, HubRepo, HubSearch, SearchSort, model_id_for, parse_query
from ui.workers import TaskWorker, start

__all__ = ["ModelSearchPanel"]

FIT_WORDS = {"yes": "fits", "tight": "tight", "no": "won't fit"}
COLUMNS = ("Model / file", "Size", "This computer", "Downloads", "Licence")


def _size(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"


@dataclass(frozen=True, slots=True)
class _Outcome:
    repos: list[HubRepo]
    gated: GatedError | None = None


class ModelSearchPanel(QWidget):
    def __init__(self, search: HubSearch, hardware: HardwareInfo, queue: DownloadQueue, *, context_length: int,
                 gpu_offload: bool = False, open_url: Callable[[QUrl], object] = QDesktopServices.openUrl,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._search, self._hardware, self._queue = search, hardware, queue
        self._context, self._offload, self._open_url = context_length, gpu_offload, open_url
        self.repos: list[HubRepo] = []
        self.gated_page: str | None = None
        self._workers: list[TaskWorker] = []
        self.query = QLineEdit()
        self.query.setPlaceholderText("Search Hugging Face: a word (qwen coder), OWNER/NAME, or a pasted link")
        self.query.setAccessibleName("Search Hugging Face")
        self.query.returnPressed.connect(self.run_search)
        self.sort = QComboBox()
        self.sort.addItem("Most downloaded", SearchSort.DOWNLOADS)
        self.sort.addItem("Recently updated", SearchSort.RECENT)
        self.sort.setAccessibleName("Sort by")
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.run_search)
        self.results = QTreeWidget()
        self.results.setAccessibleName("Search results")
        self.results.setColumnCount(len(COLUMNS))
        self.results.setHeaderLabels(COLUMNS)
        self.results.header().setStretchLastSection(False)
        self.results.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            self.results.header().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.results.itemSelectionChanged.connect(self._selection_changed)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setMinimumHeight(self.details.fontMetrics().lineSpacing() * 4)
        self.open_page = QPushButton("Open the model's page")
        self.open_page.setAccessibleName("Open the model's page")
        self.open_page.clicked.connect(self.open_model_page)
        self.download_button = QPushButton("Download this file")
        self.download_button.setAccessibleName("Download this file")
        self.download_button.clicked.connect(self.download_selected)
        top = QHBoxLayout()
        top.addWidget(self.query, 1)
        top.addWidget(self.sort)
        top.addWidget(self.search_button)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_page)
        buttons.addStretch(1)
        buttons.addWidget(self.download_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)
        layout.addWidget(self.details)
        layout.addLayout(buttons)
        self._selection_changed()

    # -- searching -----------------------------------------------------------------------------

    def run_search(self) -> None:
        text = self.query.text().strip()
        if not text:
            self.status.setText("Type a word, OWNER/NAME or a Hugging Face link, then press Search.")
            return
        sort = SearchSort(self.sort.currentData())
        search, hardware, context, offload = self._search, self._hardware, self._context, self._offload

        def work() -> _Outcome:
            repos = search.search(text, sort=sort, limit=20)
            gated = None
            if len(repos) == 1 and parse_query(text).repo is not None:
                try:
                    search.check_access(repos[0])
                except GatedError as exc:
                    gated = exc
            return _Outcome(search.label(repos, hardware, context, gpu_offload=offload), gated)

        self.status.setText(f"Searching for {text}…")
        self.search_button.setEnabled(False)
        self._run(work, self._searched)

    def _run(self, call: Callable[[], object], done: Callable[[object], None]) -> None:
        worker = TaskWorker(call)
        worker.result.connect(done)          # bound methods: delivered on the UI thread
        worker.failed.connect(self._failed)
        worker.done.connect(self._finished)
        self._workers.append(worker)
        start(worker, worker.run)

    def _finished(self) -> None:
        worker = self.sender()
        if worker in self._workers:
            self._workers.remove(worker)  # type: ignore[arg-type]
        self.search_button.setEnabled(True)

    def _failed(self, sentence: str, _details: str) -> None:
        self.status.setText(sentence)

    def _searched(self, outcome: object) -> None:
        assert isinstance(outcome, _Outcome)
        self.show_results(outcome.repos)
        if outcome.gated is not None:
            self._show_gated(outcome.gated)

    def show_results(self, repos: list[HubRepo]) -> None:
        self.repos = repos
        self.gated_page = None
        self.results.clear()
        for repo in repos:
            licence = (repo.license or "unknown") + ("  (gated)" if repo.gated else "")
            top = QTreeWidgetItem([repo.repo, "", "", f"{repo.downloads:,}", licence])
            top.setData(0, Qt.ItemDataRole.UserRole, (repo.repo, None))
            for quant, files in repo.quant_groups().items():
                for f in files:
                    name = f"{quant}  ·  {f.file}" + (f"  ({len(f.parts)} parts)" if len(f.parts) > 1 else "")
                    child = QTreeWidgetItem([name + ("  ★ recommended" if f.recommended else ""), _size(f.size_bytes),
                                             FIT_WORDS[f.fits.value], "", ""])
                    child.setData(0, Qt.ItemDataRole.UserRole, (repo.repo, f.file))
                    top.addChild(child)
            self.results.addTopLevelItem(top)
            top.setExpanded(len(repos) <= 3)
        self.status.setText(f"{len(repos)} repositories with GGUF files." if repos else
                            "No GGUF models on the hub match that search.")
        first = next((r for r in repos if r.recommended), None)
        if first is not None and first.recommended is not None:
            self.select_file(first.repo, first.recommended.file)

    # -- selection -----------------------------------------------------------------------------

    def selected(self) -> tuple[HubRepo | None, HubFile | None]:
        items = self.results.selectedItems()
        if not items:
            return None, None
        repo_id, file = items[0].data(0, Qt.ItemDataRole.UserRole)
        repo = next((r for r in self.repos if r.repo == repo_id), None)
        chosen = next((f for f in repo.files if f.file == file), None) if repo and file else None
        return repo, chosen

    def select_file(self, repo_id: str, file: str) -> None:
        for i in range(self.results.topLevelItemCount()):
            top = self.results.topLevelItem(i)
            for j in range(top.childCount()):
                if top.child(j).data(0, Qt.ItemDataRole.UserRole) == (repo_id, file):
                    top.setExpanded(True)
                    self.results.setCurrentItem(top.child(j))

    def _selection_changed(self) -> None:
        repo, chosen = self.selected()
        self.download_button.setEnabled(chosen is not None)
        self.open_page.setEnabled(repo is not None)
        if repo is None:
            self.details.setText("")
            return
        lines = [f"<b>{repo.repo}</b> · licence: {repo.license or 'not stated (read the model page)'}"]
        if repo.gated:
            lines.append("This model is gated: accept its licence on its page with your Hugging Face account, and "
                         "save your access token in Haven, before downloading.")
        if chosen is not None:
            lines.append(f"{chosen.quant}: {_size(chosen.size_bytes)}, needs about {_size(chosen.memory_needed_bytes)} "
                         f"of memory here ({FIT_WORDS[chosen.fits.value]}); verified against the hub's sha256.")
        if repo.template_note:
            lines.append(repo.template_note)
        self.details.setText("<br>".join(lines))

    def _show_gated(self, error: GatedError) -> None:
        self.gated_page = error.page
        self.status.setText(str(error))
        self.open_page.setText("Open the model's page to accept its licence")
        self.open_page.setEnabled(True)

    def open_model_page(self) -> None:
        repo, _ = self.selected()
        page = self.gated_page or (repo.page if repo else None)
        if page and page.startswith(("https://", "http://")):
            self._open_url(QUrl(page))

    # -- downloading ---------------------------------------------------------------------------

    def download_selected(self) -> None:
        repo, chosen = self.selected()
        if repo is None or chosen is None:
            return
        search = self._search

        def check() -> _Outcome:
            try:
                search.check_access(repo, chosen)
            except GatedError as exc:
                return _Outcome([repo], exc)
            return _Outcome([repo])

        self._pending = (repo, chosen)
        self._run(check, self._access_checked)

    def _access_checked(self, outcome: object) -> None:
        assert isinstance(outcome, _Outcome)
        if outcome.gated is not None:
            self._show_gated(outcome.gated)
            return
        repo, chosen = self._pending
        spec = DownloadSpec(
            model_id=model_id_for(chosen.file), repo=repo.repo, file=chosen.file, revision=repo.revision or "main",
            sha256=chosen.sha256, size_bytes=chosen.size_bytes, name=f"{repo.repo.split('/')[-1]} {chosen.quant}",
            license=repo.license or "", endpoint=self._search.endpoint)
        self._queue.submit(spec)
        self.status.setText(f"Downloading {chosen.file} ({_size(chosen.size_bytes)}, licence "
                            f"{repo.license or 'not stated'}); it is verified before it is installed.")
