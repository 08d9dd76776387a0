"""The conversation transcript: one list item per message, each rendered on its own.

Evidence for this design is in docs/app.md ("The transcript"). In short: a ``QListView`` over a
``QStandardItemModel`` whose items carry only their height (``SizeHintRole``) and the text a screen reader
reads; :class:`~ui.message_item.MessageDelegate` paints the message from a cached, laid-out document.
Layout of the whole list is Qt's own C++ over those heights, so a conversation of thousands of messages
opens at the cost of the messages on screen; heights of the others are estimates until they come near
the viewport. While a reply streams only that message is re-rendered, at most every
:data:`RENDER_INTERVAL_MS`, and only its unfinished tail.

Safety: the view shows only what it is given (the window passes it the session's released text and
nothing else); model output is rendered by :mod:`ui.markdown` (no raw HTML, no images) into documents
that load no resource; a link opens only on click, only for http(s), in the system browser.

Keys with the transcript focused: Up/Down move between messages, Ctrl+C copies the message, Enter opens
it for selecting text, T shows or hides its thinking, Alt+Left/Alt+Right switch branches, and the menu key
(or Shift+F10) lists every action of the message; the window's Message menu has the same actions.
"""

from __future__ import annotations

from collections import deque

from PySide6.QtCore import (
    QAbstractAnimation,
    QEasingCurve,
    QEvent,
    QPoint,
    QPropertyAnimation,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QFont,
    QGuiApplication,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from ui.markdown import MarkdownRenderer
from ui.message_actions import MessageInput
from ui.message_item import (
    Estimator,
    Layout,
    MessageDelegate,
    RenderCache,
    ViewMessage,
    estimate_height,
    layout,
    render,
    spoken,
)
from ui.theme import Theme, current_theme

__all__ = ["ChatView", "ViewMessage"]

RENDER_INTERVAL_MS = 80       # a streaming reply re-renders at most this often
KEEP_RENDERED = 300           # messages whose documents are kept; older ones are rendered again when seen
FOLLOW_SLACK = 24             # within this many pixels of the bottom counts as "at the bottom"
SCROLL_MS = 140               # the smooth scroll to a reply's new text
PAD_X = 20                    # a point inside every row, for indexAt
WARM_UP = "*a* $x^2$\n\n```python\nx = 1\n```\n\n| a |\n|---|\n| 1 |\n"


class ChatView(MessageInput, QListView):
    """The transcript. ``messages`` is the list shown; the window changes it through the methods below."""

    refused_link = Signal(str)            # a click on a link that is not http(s)
    copied = Signal(str)                  # what was copied, for the status bar
    edit_requested = Signal(int)          # a user message's id
    regenerate_requested = Signal(int)    # a reply's id
    branch_requested = Signal(int, int)   # a message's id, -1 or +1
    delete_requested = Signal(int)        # a message's id: it and what follows it on its branch

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("transcript")
        self.setAccessibleName("Conversation")
        self.setAccessibleDescription("Messages, oldest first. Up and Down move between them; the menu key "
                                      "lists the actions of a message.")
        self.messages: list[ViewMessage] = []
        self.theme: Theme = current_theme()
        self.zoom = 0                     # text size steps from the default
        self._base_font = QFont(self.font())
        self._renderer = MarkdownRenderer()
        # Items hold only a height and what a screen reader reads: layout of the list stays in Qt's C++.
        self._model = QStandardItemModel(self)
        self.setModel(self._model)
        self.setItemDelegate(MessageDelegate(self))
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # Always there, so the width does not change (and every message with it) when a conversation grows.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setMouseTracking(True)
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_Hover)
        self.setUniformItemSizes(False)
        self.setSpacing(0)
        self.verticalScrollBar().setSingleStep(24)
        self._rendered: deque[ViewMessage] = deque()
        self._follow = True
        self._width = 0
        self._stream_dirty = False
        self._stream_timer = QTimer(self)
        self._stream_timer.setInterval(RENDER_INTERVAL_MS)
        self._stream_timer.timeout.connect(self._render_stream)
        self._prefetch = QTimer(self)
        self._prefetch.setSingleShot(True)
        self._prefetch.setInterval(0)
        self._prefetch.timeout.connect(self._render_near_viewport)
        self._scroll = QPropertyAnimation(self.verticalScrollBar(), b"value", self)
        self._scroll.setDuration(SCROLL_MS)
        self._scroll.setEasingCurve(QEasingCurve.Type.OutCubic)
        bar = self.verticalScrollBar()
        bar.actionTriggered.connect(self._user_scrolled)
        bar.rangeChanged.connect(self._range_changed)
        bar.valueChanged.connect(lambda _value: self._prefetch.start())
        hints = QGuiApplication.styleHints()
        hints.colorSchemeChanged.connect(self._scheme_changed)
        QTimer.singleShot(0, self._warm_up)

    def _warm_up(self) -> None:
        """Load the parser's and the highlighter's lazily imported parts while the window is idle, not
        when the first conversation is opened (~100 ms the first time)."""
        self._renderer.render(WARM_UP, self.theme)

    # -- what the window calls --------------------------------------------------------------------

    def set_messages(self, messages: list[ViewMessage]) -> None:
        """Show a conversation (the branch on screen), scrolled to its end."""
        self._stream_timer.stop()
        self._stream_dirty = False
        self.messages = list(messages)
        self._rendered.clear()
        estimator = Estimator.for_font(self.message_font(), self._viewport_width())
        self._model.clear()
        items = []
        for message in self.messages:
            item = QStandardItem()
            item.setSizeHint(QSize(1, estimate_height(message, estimator)))
            item.setData(spoken(message), Qt.ItemDataRole.AccessibleTextRole)
            items.append(item)
        if items:
            self._model.invisibleRootItem().appendRows(items)
        self._render_tail()
        self._follow = True
        self.scrollToBottom()

    def add(self, message: ViewMessage) -> None:
        self.messages.append(message)
        item = QStandardItem()
        item.setData(spoken(message), Qt.ItemDataRole.AccessibleTextRole)
        item.setSizeHint(QSize(1, self._height(len(self.messages) - 1)))
        self._model.appendRow(item)
        if not message.complete:
            self._stream_timer.start()
        self._follow = True
        self._to_bottom(smooth=False)

    def append_text(self, text: str) -> None:
        """Streaming: add released text to the last reply; it is drawn on the next render tick."""
        if self.messages and self.messages[-1].role == "assistant":
            self.messages[-1].content += text
            self._stream_dirty = True

    def append_reasoning(self, text: str) -> None:
        """Streaming: add released thinking text to the last reply (shown in its collapsed block)."""
        if self.messages and self.messages[-1].role == "assistant":
            self.messages[-1].reasoning += text
            self._stream_dirty = True

    def replace_last(self, message: ViewMessage) -> None:
        """The reply is final: render it once, whole."""
        if not self.messages:
            return
        self._stream_timer.stop()
        self._stream_dirty = False
        previous = self.messages[-1]
        message.reasoning_open = previous.reasoning_open
        if not message.reasoning and previous.reasoning and not message.blocked:
            message.reasoning = previous.reasoning
        if message.reasoning_ms is None:
            message.reasoning_ms = previous.reasoning_ms
        self.messages[-1] = message
        row = len(self.messages) - 1
        self._spoken(row)
        self._set_height(row, self._height(row))
        if self._follow:
            self._to_bottom(smooth=True)

    def show_branch(self, messages: list[ViewMessage]) -> None:
        """Show ``messages``, the branch on screen now (after a turn, an edit, a regenerate or a switch):
        the messages it shares with what is shown keep their rendering; the rest are replaced."""
        keep = 0
        for old, new in zip(self.messages, messages, strict=False):
            same_id = old.message_id == new.message_id or (old.message_id is None and old.role == new.role)
            if not same_id or old.content != new.content or old.complete != new.complete:
                break
            for name in ("message_id", "created", "model", "sibling_index", "sibling_count", "reasoning_ms",
                         "blocked", "category"):
                setattr(old, name, getattr(new, name))
            if new.reasoning and old.reasoning != new.reasoning:
                old.reasoning, old.cache = new.reasoning, None
            keep += 1
        self.truncate(keep)
        for message in messages[keep:]:
            self.add(message)
        for row in range(keep):
            self._spoken(row)
            if self.messages[row].cache is not None:
                self._set_height(row, self._height(row))
        self.viewport().update()

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` messages (an edit or a regenerate replaces what follows)."""
        if rows < len(self.messages):
            self._model.removeRows(rows, len(self.messages) - rows)
            del self.messages[rows:]

    def set_reasoning_time(self, duration_ms: float) -> None:
        if self.messages and self.messages[-1].role == "assistant":
            self.messages[-1].reasoning_ms = duration_ms
            self._stream_dirty = True

    def pop(self) -> ViewMessage | None:
        if not self.messages:
            return None
        message = self.messages.pop()
        self._model.removeRow(len(self.messages))
        return message

    def render_now(self) -> None:
        """Render the streaming reply now (tests, and the end of a turn)."""
        self._render_stream(force=True)

    def toPlainText(self) -> str:
        """The transcript as rendered text: what a person sees, message by message."""
        parts = []
        for row in range(len(self.messages)):
            cache = self._cache(row)
            parts.append("".join(doc.toPlainText() for doc in cache.segments))
        return "\n\n".join(parts)

    def message_font(self) -> QFont:
        font = QFont(self._base_font)
        size = self._base_font.pointSizeF() if self._base_font.pointSizeF() > 0 else 10.0
        font.setPointSizeF(max(6.0, size + self.zoom))
        return font

    def zoom_by(self, steps: int) -> None:
        """Ctrl+= / Ctrl+- (steps of one point), Ctrl+0 (``steps=0``: back to the default size)."""
        self.zoom = 0 if steps == 0 else max(-4, min(16, self.zoom + steps))
        self._relayout_all()

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        self._relayout_all()

    def current_row(self) -> int:
        """The message the keyboard is on; the last message when none is."""
        row = self.currentIndex().row()
        return row if 0 <= row < len(self.messages) else len(self.messages) - 1

    def code_blocks(self, row: int) -> list[str]:
        return list(self._cache(row).code_blocks) if 0 <= row < len(self.messages) else []

    def is_streaming(self, row: int) -> bool:
        return row == len(self.messages) - 1 and not self.messages[row].complete and self._stream_timer.isActive()

    @property
    def following(self) -> bool:
        """True while new text scrolls the transcript; False once the person scrolled up."""
        return self._follow

    # -- for the delegate ------------------------------------------------------------------------

    def prepared(self, row: int, rect: QRect) -> tuple[ViewMessage, RenderCache, Layout]:
        message = self.messages[row]
        cache = self._cache(row)
        lay = layout(message, cache, self.message_font(), self._viewport_width(), rect.top(), self.is_streaming(row))
        if lay.height != cache.height:
            cache.height = lay.height
            QTimer.singleShot(0, lambda r=row: self._set_height(r, self._height(r)) if r < len(self.messages) else None)
        return message, cache, lay

    # -- rendering and heights -------------------------------------------------------------------

    def _viewport_width(self) -> int:
        return max(200, self.viewport().width())

    def _cache(self, row: int) -> RenderCache:
        message = self.messages[row]
        cache = message.cache
        width = self._viewport_width()
        font = self.message_font()
        if cache is None or cache.width != width or cache.key != (self.theme.name, font.pointSizeF()):
            fresh = cache is None
            cache = render(message, self._renderer, self.theme, font, width)
            if fresh:
                self._rendered.append(message)
                while len(self._rendered) > KEEP_RENDERED:
                    self._rendered.popleft().cache = None
        return cache

    def _height(self, row: int) -> int:
        cache = self._cache(row)
        lay = layout(self.messages[row], cache, self.message_font(), self._viewport_width(), 0, self.is_streaming(row))
        cache.height = lay.height
        return lay.height

    def _spoken(self, row: int) -> None:
        item = self._model.item(row)
        if item is not None:
            item.setData(spoken(self.messages[row]), Qt.ItemDataRole.AccessibleTextRole)

    def _set_height(self, row: int, height: int) -> None:
        item = self._model.item(row)
        if item is None or item.sizeHint().height() == height:
            return
        before = item.sizeHint().height()
        above = not self._follow and self._first_visible_row() > row
        item.setSizeHint(QSize(1, height))
        if above and not self._follow:  # keep what is on screen still when a message above it changes size
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() + height - before)

    def _first_visible_row(self) -> int:
        index = self.indexAt(QPoint(PAD_X, 0))
        return index.row() if index.isValid() else 0

    def _render_tail(self) -> None:
        """Render the last messages that fill the viewport (and a bit more), so the end is exact at once."""
        budget = self.viewport().height() * 2
        row = len(self.messages) - 1
        while row >= 0 and budget > 0:
            height = self._height(row)
            self._model.item(row).setSizeHint(QSize(1, height))
            budget -= height
            row -= 1

    def _render_near_viewport(self) -> None:
        """Render the messages on screen and one screen above and below, so scrolling shows exact heights."""
        if not self.messages:
            return
        height = self.viewport().height()
        top = self.indexAt(QPoint(PAD_X, 0))
        if not top.isValid():
            return  # not laid out yet: the end was rendered by set_messages
        first = top.row()
        bottom = self.indexAt(QPoint(PAD_X, height - 1))
        last = bottom.row() if bottom.isValid() else len(self.messages) - 1
        span = max(1, last - first + 1)
        for row in range(max(0, first - span), min(len(self.messages), last + span + 1)):
            if self.messages[row].cache is None:
                self._set_height(row, self._height(row))

    def _render_stream(self, force: bool = False) -> None:
        if not (self._stream_dirty or force) or not self.messages:
            return
        self._stream_dirty = False
        row = len(self.messages) - 1
        message = self.messages[row]
        render(message, self._renderer, self.theme, self.message_font(), self._viewport_width())
        self._spoken(row)
        self._set_height(row, self._height(row))
        self.viewport().update(self.visualRect(self._model.index(row, 0)))  # only the reply being written
        if self._follow:
            self._to_bottom(smooth=True)

    def _relayout_all(self) -> None:
        for message in self.messages:
            message.cache = None
        self._rendered.clear()
        estimator = Estimator.for_font(self.message_font(), self._viewport_width())
        for row, message in enumerate(self.messages):
            self._model.item(row).setSizeHint(QSize(1, estimate_height(message, estimator)))
        self._render_near_viewport()
        self.viewport().update()

    # -- scrolling ----------------------------------------------------------------------------

    def _user_scrolled(self, _action: int) -> None:
        self._scroll.stop()  # the person's scroll wins over a smooth scroll under way
        QTimer.singleShot(0, self._update_follow)

    def _update_follow(self) -> None:
        bar = self.verticalScrollBar()
        self._follow = bar.value() >= bar.maximum() - FOLLOW_SLACK
        if not self._follow:
            self._scroll.stop()

    def wheelEvent(self, event: object) -> None:  # type: ignore[override]
        super().wheelEvent(event)  # type: ignore[arg-type]
        self._update_follow()

    def _range_changed(self, _minimum: int, _maximum: int) -> None:
        if self._follow:
            self._to_bottom(smooth=self._stream_timer.isActive())

    def _to_bottom(self, smooth: bool) -> None:
        bar = self.verticalScrollBar()
        if not smooth:
            self._scroll.stop()
            bar.setValue(bar.maximum())
            return
        if self._scroll.state() == QAbstractAnimation.State.Running and self._scroll.endValue() == bar.maximum():
            return
        self._scroll.stop()
        self._scroll.setStartValue(bar.value())
        self._scroll.setEndValue(bar.maximum())
        self._scroll.start()

    def resizeEvent(self, event: object) -> None:  # type: ignore[override]
        super().resizeEvent(event)  # type: ignore[arg-type]
        if self.viewport().width() != self._width:
            self._width = self.viewport().width()
            self._relayout_all()
            if self._follow:
                self._to_bottom(smooth=False)

    def _scheme_changed(self, _scheme: object) -> None:
        self.set_theme(current_theme())

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FontChange:
            self._base_font = QFont(self.font())
            self._relayout_all()
        return super().event(event)

