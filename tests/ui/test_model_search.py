"""The model manager's Search Hugging Face tab with real clicks against the local hub stand-in: results grouped
by quantization with fit labels, the recommended file, a gated repository's sentence and page button, a
download verified and installed; and the screenshot in docs/screenshots/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QUrl

from assistant.hardware import HardwareInfo
from assistant.models import Downloader, DownloadQueue, DownloadState, ModelRegistry, load_catalog
from assistant.models.fit import ModelShape, memory_needed
from assistant.models.search import HubSearch, model_id_for
from assistant.models.templates import template_problem
from assistant.paths import AppPaths
from tests.gguf_writer import gguf_bytes
from tests.hub_server import FakeHub, RepoMeta
from ui.models_dialog import DownloadBridge, ModelsDialog

QWEN, CODER, GATED = "bartowski/Qwen3-Tiny-GGUF", "someone/Tiny-Coder-GGUF", "meta-llama/Tiny-Guard-GGUF"
META = {"general.architecture": "llama", "general.name": "tiny", "llama.block_count": 2,
        "llama.context_length": 512, "llama.embedding_length": 64, "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2}
MiB = 1024 * 1024
# The docs' screenshot is refreshed only when asked (HAVEN_UPDATE_SCREENSHOTS=1): a test run on a clean
# clone leaves the tracked files as they were.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "model-search.png"


@pytest.fixture
def hub() -> Iterator[tuple[FakeHub, str]]:
    server = FakeHub()
    for i, (quant, size) in enumerate((("Q3_K_M", 1), ("Q4_K_M", 2), ("Q5_K_M", 3), ("Q8_0", 5))):
        server.add(QWEN, f"Qwen3-Tiny-{quant}.gguf", gguf_bytes(META, size * MiB, seed=i + 1))
    server.repos[QWEN] = RepoMeta(downloads=182_340, likes=311)
    server.add(CODER, "tiny-coder.Q4_K_M.gguf", gguf_bytes(META, 2 * MiB, seed=9))
    server.repos[CODER] = RepoMeta(downloads=2_150, likes=12, license="mit")
    server.add(GATED, "Tiny-Guard-Q4_K_M.gguf", gguf_bytes(META, MiB, seed=7))
    server.repos[GATED] = RepoMeta(downloads=90, gated="manual", license="llama3.2", accepted_tokens={"hf_ok"})
    url = server.start()
    yield server, url
    server.stop()


@pytest.fixture
def manager(qtbot, hub) -> Iterator[tuple[ModelsDialog, list[QUrl], DownloadQueue]]:
    _server, url = hub
    paths = AppPaths.from_environment().ensure()
    registry = ModelRegistry(paths)
    queue = DownloadQueue(Downloader(paths, registry))
    # A computer on which the Q4_K_M file just fits comfortably and the Q8_0 one does not.
    need = memory_needed(2 * MiB + 4096, ModelShape(2, 2, 16), 512)
    ram = int(need / 0.6) + MiB
    hardware = HardwareInfo(4, 8, ram, ram, "Linux", "x86_64", ())
    opened: list[QUrl] = []
    bridge = DownloadBridge(queue)  # kept alive for the test: the queue's listener is its signal
    dialog = ModelsDialog(load_catalog(), registry, hardware, queue, bridge, context_length=4096,
                          default_id=lambda: "smollm2-135m-instruct", set_default=lambda _id: None,
                          spec_for=lambda _id: None,  # type: ignore[arg-type,return-value]
                          search=HubSearch(None, lambda: None, url, template_check=template_problem), paths=paths)
    dialog.search_panel._open_url = opened.append
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.tabs.setCurrentWidget(dialog.search_panel)
    yield dialog, opened, queue
    queue.close()
    del bridge
    dialog.close()


def search(qtbot, dialog: ModelsDialog, text: str) -> None:
    panel = dialog.search_panel
    panel.query.setText(text)
    qtbot.mouseClick(panel.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.search_button.isEnabled() and "Searching" not in panel.status.text(),
                    timeout=20_000)


def test_search_shows_quantizations_with_fit_labels_and_the_recommended_file(qtbot, manager, tmp_path) -> None:
    dialog, _opened, _queue = manager
    panel = dialog.search_panel
    search(qtbot, dialog, "tiny")
    tree = panel.results
    assert [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())] == [QWEN, CODER, GATED]
    qwen = tree.topLevelItem(0)
    rows = [(qwen.child(j).text(0), qwen.child(j).text(2)) for j in range(qwen.childCount())]
    assert [r[0].split("  ·  ")[0] for r in rows] == ["Q3_K_M", "Q4_K_M", "Q5_K_M", "Q8_0"]
    assert dict((r[0].split("  ·  ")[0], r[1]) for r in rows)["Q8_0"] in ("tight", "won't fit")
    starred = [r[0] for r in rows if "★ recommended" in r[0]]
    assert len(starred) == 1 and starred[0].startswith("Q4_K_M")
    _repo, chosen = panel.selected()
    assert chosen is not None and chosen.quant == "Q4_K_M", "the recommended file is selected"
    assert "licence: apache-2.0" in panel.details.text()
    qtbot.waitUntil(lambda: panel.search_button.isEnabled(), timeout=5_000)
    shot = DOCS_SCREENSHOT if os.environ.get("HAVEN_UPDATE_SCREENSHOTS") == "1" else tmp_path / "model-search.png"
    assert dialog.grab().save(str(shot))


def test_a_gated_model_says_so_and_opens_its_page(qtbot, manager, hub) -> None:
    dialog, opened, _queue = manager
    _server, url = hub
    panel = dialog.search_panel
    search(qtbot, dialog, f"https://huggingface.co/{GATED}")
    assert f"{url}/{GATED}" in panel.status.text() and "accept the licence" in panel.status.text()
    assert "licence: llama3.2" in panel.details.text() or panel.selected()[0] is not None
    qtbot.mouseClick(panel.open_page, Qt.MouseButton.LeftButton)
    assert opened == [QUrl(f"{url}/{GATED}")]


def test_a_picked_file_is_downloaded_verified_and_installed(qtbot, manager) -> None:
    dialog, _opened, queue = manager
    panel = dialog.search_panel
    search(qtbot, dialog, CODER)
    panel.select_file(CODER, "tiny-coder.Q4_K_M.gguf")
    qtbot.mouseClick(panel.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(j.state is DownloadState.COMPLETED for j in queue.jobs()), timeout=20_000)
    [job] = queue.jobs()
    assert job.spec.sha256 is not None and job.spec.license == "mit"
    model = dialog._registry.get(model_id_for("tiny-coder.Q4_K_M.gguf"))
    assert model.sha256 == job.spec.sha256 and model.license == "mit"
    qtbot.waitUntil(lambda: model.id in [r.id for r in dialog.rows if r.installed], timeout=5_000)
