"""A message opened for selecting text: a read-only text box laid over it, closed by Esc or leaving it.

The transcript paints its messages, so a person cannot drag a selection across one; this box shows the
same rendered document (a copy), lets any part be selected and copied, and follows the same link rules:
nothing is loaded, and only an http(s) link opens, on click.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRect, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QFocusEvent, QKeyEvent, QTextCursor, QTextDocumentFragment
from PySide6.QtWidgets import QFrame, QTextBrowser, QWidget

from ui.markdown import SafeDocument
from ui.message_item import RenderCache
from ui.theme import Theme

__all__ = ["SelectableText"]


class SelectableText(QTextBrowser):
    def __init__(self, parent: QWidget, document: SafeDocument, theme: Theme) -> None:
        super().__init__(parent)
        self.setAccessibleName("Message text")
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setDocument(document)
        self.setStyleSheet(f"QTextBrowser {{ background: {theme.background}; color: {theme.text}; "
                           f"border: 1px solid {theme.accent}; }}")
        self.anchorClicked.connect(self._open)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)

    def loadResource(self, kind: int, name: QUrl) -> object:
        return None

    def _open(self, url: QUrl) -> None:
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent) \
                and event.key() == Qt.Key.Key_Escape:
            event.accept()  # Esc closes this box; it is not the window's Stop
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self._close()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        self._close()

    def _close(self) -> None:
        parent = self.parentWidget()
        self.hide()
        self.deleteLater()
        if parent is not None and parent.parentWidget() is not None:
            parent.parentWidget().setFocus()  # back to the transcript

    @classmethod
    def show_over(cls, view: QWidget, cache: RenderCache, body: QRect, theme: Theme) -> SelectableText:
        document = SafeDocument()
        if len(cache.segments) == 1:
            document.setHtml(cache.segments[0].toHtml())
        else:  # a reply still streaming: its finished blocks and its tail
            cursor = QTextCursor(document)
            for segment in cache.segments:
                cursor.movePosition(QTextCursor.MoveOperation.End)
                cursor.insertFragment(QTextDocumentFragment(segment))
        document.setDefaultFont(cache.segments[0].defaultFont() if cache.segments else view.font())
        viewport = view.viewport()  # type: ignore[attr-defined]
        box = cls(viewport, document, theme)
        box.setGeometry(body.adjusted(-4, -4, 4, 4).intersected(viewport.rect()))
        box.show()
        box.setFocus()
        return box
