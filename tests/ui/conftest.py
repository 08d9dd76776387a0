"""UI tests: offscreen Qt, and no test may leave a QThread running."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def no_thread_left_running(qtbot) -> Iterator[None]:
    from ui.workers import live_threads

    yield
    qtbot.waitUntil(lambda: not live_threads(), timeout=10_000)
    assert not live_threads(), "a test left a QThread running"


@pytest.fixture
def haven(qtbot, qapp):
    """The real app on the real starter model, with its window shown."""
    from ui.app import HavenApp

    app = HavenApp(qapp)
    qtbot.addWidget(app.window)
    app.window.show()
    qtbot.waitUntil(lambda: app.window.session is not None, timeout=30_000)
    yield app
    app.window.close()
    app.shutdown()
