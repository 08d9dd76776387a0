"""The transcript's safety invariant: nothing the output filter has not released is ever drawn; model output
never loads a resource, never runs HTML, and a link opens only on click and only for http(s)."""

from __future__ import annotations

import itertools
import re
import string
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

from assistant.session import ChatSession, TextReleased, TurnResult
from assistant.store import Store
from tests.fakes import FakeEngine, WordPolicy
from ui.chat_view import ChatView, ViewMessage
from ui.markdown import MarkdownRenderer, SafeDocument
from ui.theme import DARK, LIGHT

# Words without Markdown meaning, so the rendered text of a reply must be exactly its released text.
WORDS = st.text(alphabet=string.ascii_letters + ",;?!'", min_size=1, max_size=9)
FORBIDDEN = "Forbiddenword"


def drawn(view: ChatView, row: int) -> str:
    """What the view has drawn for a message: the plain text of its rendered documents."""
    view.render_now()
    cache = view.messages[row].cache
    assert cache is not None
    return " ".join("".join(doc.toPlainText() for doc in cache.segments).split())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(WORDS, min_size=1, max_size=40), cuts=st.lists(st.integers(0, 400), max_size=12),
       block_at=st.none() | st.integers(0, 12))
def test_the_drawn_reply_is_exactly_what_the_filter_released(qapp, words: list[str], cuts: list[int],
                                                              block_at: int | None) -> None:
    text = " ".join(words)
    points = sorted({0, len(text), *(c for c in cuts if c < len(text))})
    pieces = [text[a:b] for a, b in itertools.pairwise(points)]
    if block_at is not None:  # a piece the output filter stops: it and everything after must never be drawn
        pieces.insert(min(block_at, len(pieces)), f" {FORBIDDEN} ")
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "c.sqlite3") as store:
        session = ChatSession(FakeEngine(pieces), store, WordPolicy(output_word=FORBIDDEN), model_id="fake")
        view = ChatView()
        view.resize(700, 500)
        view.add(ViewMessage("user", "Hi"))
        view.add(ViewMessage("assistant", "", complete=False))
        released: list[str] = []
        for event in session.send("Hi"):
            if isinstance(event, TextReleased):
                released.append(event.text)
                view.append_text(event.text)
                shown = drawn(view, 1)
                assert shown == " ".join("".join(released).split()), "drawn while streaming = released so far"
                assert FORBIDDEN not in shown
            elif isinstance(event, TurnResult):
                view.replace_last(ViewMessage("assistant", event.reply, event.complete, event.blocked,
                                              event.category))
                final = drawn(view, 1)
                if event.blocked:
                    assert final == " ".join(event.reply.split()) and FORBIDDEN not in final
                else:
                    assert final == " ".join("".join(released).split()) == " ".join(text.split())
        view.deleteLater()


HOSTILE = (
    "![local](file:///etc/passwd) ![remote](http://example.com/track.png) <img src='http://example.com/x.png'> "
    "<script>alert(1)</script> <style>body{background:url(http://example.com/b.png)}</style> "
    "[web](https://example.com/page) [js](javascript:alert(1)) [file](file:///etc/passwd) "
    "[data](data:text/html,<script>alert(1)</script>) [rel](secrets.txt) <a href='https://evil.example'>x</a>"
)


def anchors(html: str) -> list[str]:
    return re.findall(r'<a href="([^"]*)"', html)


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=300) | st.sampled_from([HOSTILE, "```\n<img src=x>\n```", "$<b>x</b>$"]))
def test_any_model_text_renders_without_tags_of_its_own(text: str) -> None:
    renderer = MarkdownRenderer()
    for theme in (LIGHT, DARK):
        html = renderer.render(text, theme).html
        assert "<img" not in html and "<script" not in html and "<style" not in html and "<iframe" not in html
        assert all(href.startswith(("http://", "https://", "haven-copy:")) for href in anchors(html)), html


def test_hostile_reply_loads_nothing_and_opens_only_web_links_on_click(qtbot, monkeypatch) -> None:
    asked: list[str] = []
    original = SafeDocument.loadResource

    def recording(self: SafeDocument, kind: int, name: QUrl) -> object:
        asked.append(name.toString())
        return original(self, kind, name)

    opened: list[str] = []
    monkeypatch.setattr(SafeDocument, "loadResource", recording)
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    view = ChatView()
    qtbot.addWidget(view)
    refused: list[str] = []
    view.refused_link.connect(refused.append)
    view.set_messages([ViewMessage("assistant", HOSTILE, message_id=1)])
    view.show()
    qtbot.wait(50)
    text = view.toPlainText()
    assert "<script>alert(1)</script>" in text and "<img src=" in text, "raw HTML is shown as text"
    assert "[image: remote]" in text and "![local](file:///etc/passwd)" in text, "images are words"
    assert opened == [] and refused == [], "nothing happens by itself"
    assert asked == [], "no resource was even asked for"
    assert SafeDocument().loadResource(2, QUrl("http://example.com/x.png")) is None
    cache = view.messages[0].cache
    assert cache is not None
    hrefs = set()
    for doc in cache.segments:
        block = doc.begin()
        while block.isValid():
            iterator = block.begin()
            while not iterator.atEnd():
                href = iterator.fragment().charFormat().anchorHref()
                if href:
                    hrefs.add(href)
                iterator += 1
            block = block.next()
    assert hrefs == {"https://example.com/page"}, "only the web link is a link"
    for url in ("https://example.com/page", "javascript:alert(1)", "file:///etc/passwd", "secrets.txt"):
        view._open_link(0, url)
    assert opened == ["https://example.com/page"] and len(refused) == 3
