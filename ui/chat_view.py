"""The conversation transcript: Markdown rendered safely, re-rendered at most ~8 times a second.

Model output never loads anything: remote or local resources (images, style sheets) are refused, raw
HTML in a reply is shown as text, and a link opens only when clicked, only for http(s), in the system
browser.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QTextDocument
from PySide6.QtWidgets import QTextBrowser, QWidget

__all__ = ["ChatView", "ViewMessage"]

RENDER_INTERVAL_MS = 120
MARKDOWN = QTextDocument.MarkdownFeature.MarkdownDialectGitHub | QTextDocument.MarkdownFeature.MarkdownNoHTML


@dataclass
class ViewMessage:
    role: str                 # "user" or "assistant"
    content: str
    complete: bool = True
    blocked: bool = False
    category: str | None = None


def _close_fences(text: str) -> str:
    """A reply cut off inside a code block must not turn the rest of the transcript into code."""
    fences = sum(1 for line in text.splitlines() if line.lstrip().startswith(("```", "~~~")))
    return text + "\n```" if fences % 2 else text


class SafeBrowser(QTextBrowser):
    """A QTextBrowser that loads no resource at all."""

    refused_link = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._open)

    def loadResource(self, kind: int, name: QUrl) -> object:
        return None

    def _open(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)
        else:
            self.refused_link.emit(url.toString())


class ChatView(SafeBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Conversation")
        self.messages: list[ViewMessage] = []
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(RENDER_INTERVAL_MS)
        self._timer.timeout.connect(self._render_if_dirty)
        self._timer.start()

    def set_messages(self, messages: list[ViewMessage]) -> None:
        self.messages = messages
        self.render_now()

    def add(self, message: ViewMessage) -> None:
        self.messages.append(message)
        self.render_now()

    def append_text(self, text: str) -> None:
        """Streaming: add text to the last reply; the view catches up on the next render tick."""
        if self.messages and self.messages[-1].role == "assistant":
            self.messages[-1].content += text
            self._dirty = True

    def replace_last(self, message: ViewMessage) -> None:
        if self.messages:
            self.messages[-1] = message
        self.render_now()

    def markdown(self) -> str:
        parts = []
        for m in self.messages:
            who = "You" if m.role == "user" else "Haven"
            note = ""
            if m.blocked:
                note = f" · safety notice ({m.category})" if m.category else " · safety notice"
            elif not m.complete:
                note = " · stopped"
            body = _close_fences(m.content) if m.content else "…"
            parts.append(f"**{who}**{note}\n\n{body}\n")
        return "\n\n---\n\n".join(parts)

    def render_now(self) -> None:
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        self.document().setMarkdown(self.markdown(), MARKDOWN)
        if at_bottom:
            bar.setValue(bar.maximum())
        self._dirty = False

    def _render_if_dirty(self) -> None:
        if self._dirty:
            self.render_now()
