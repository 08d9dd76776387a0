"""One message of the transcript: what it holds (:class:`ViewMessage`), how it is laid out and drawn
(:class:`MessageDelegate`), and its rendered documents (:class:`RenderCache`).

A message is rendered (Markdown to HTML to a laid-out :class:`~ui.markdown.SafeDocument`) the first time
it is drawn, or when it is near the visible part of the transcript, and kept until the width, the theme
or the text size changes. A reply still streaming is held as segments: its finished blocks are rendered
once each, and only the growing tail again on each update. Until a message is rendered its height is an
estimate from its length, so opening a long conversation costs layout only for what is on screen.

Layout of a message, top to bottom: a header line (who, the model for a reply, the time), the thinking
block of a reasoning model (one line, collapsed, with its duration), the body (replies full width in a
readable column, the user's own messages in a bubble on the right), and a row of actions (copy, edit or
regenerate, the branch arrows ``‹ 2 / 3 ›``), shown while the pointer is over the message or the
keyboard is on it (the arrows always, when there are branches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPoint, QRect, QRectF, Qt
from PySide6.QtGui import QAbstractTextDocumentLayout, QColor, QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from assistant.store import StoredMessage
from ui.markdown import MarkdownRenderer, SafeDocument, stable_prefix_end
from ui.theme import Theme

__all__ = ["Estimator", "Layout", "MessageDelegate", "RenderCache", "ViewMessage", "estimate_height", "render",
           "spoken", "view_messages"]

PAD = 16          # left and right of the column
GAP = 14          # between messages
BUBBLE_PAD = 10   # inside the user's bubble
MEASURE_CH = 80   # the column's width in average characters: a readable line length
ACTIONS = ("copy", "edit", "regenerate", "previous", "next")


@dataclass
class ViewMessage:
    role: str                 # "user" or "assistant"
    content: str
    complete: bool = True
    blocked: bool = False
    category: str | None = None
    message_id: int | None = None
    created: str = ""         # ISO time; shown as the local time of day
    model: str | None = None  # the model that wrote a reply
    sibling_index: int = 1    # 1-based place among the alternatives at this point of the conversation
    sibling_count: int = 1
    reasoning: str = ""       # released thinking text of a reasoning model (never sent back to it)
    reasoning_ms: float | None = None
    reasoning_open: bool = False
    cache: RenderCache | None = field(default=None, compare=False, repr=False)


@dataclass
class RenderCache:
    width: int
    key: tuple[str, float]                # theme name and font size it was rendered for
    segments: list[SafeDocument]          # one document once complete; finished blocks + tail while streaming
    code_blocks: list[str]
    stable_end: int = 0                   # streaming: the text rendered into all segments but the last
    stable_code: int = 0                  # streaming: code blocks in those segments
    reasoning: SafeDocument | None = None
    height: int = 0


@dataclass
class Layout:
    header: QRect
    thinking: QRect | None
    reasoning: QRect | None
    body: QRect                # where the documents are drawn
    bubble: QRect | None
    buttons: dict[str, QRect]
    height: int


def column(width: int, font: QFont) -> tuple[int, int]:
    """The readable column's left edge and width for a viewport ``width`` wide."""
    measure = QFontMetrics(font).averageCharWidth() * MEASURE_CH
    inner = max(120, min(width - 2 * PAD, measure))
    return max(PAD, (width - inner) // 2), inner


def _document(html: str, font: QFont, width: int) -> SafeDocument:
    doc = SafeDocument()
    doc.setDefaultFont(font)
    doc.setDocumentMargin(0)
    doc.setUndoRedoEnabled(False)
    doc.setHtml(html)
    doc.setTextWidth(width)
    return doc


def render(message: ViewMessage, renderer: MarkdownRenderer, theme: Theme, font: QFont, width: int) -> RenderCache:
    """The message's documents at this width; a streaming reply reuses its finished segments."""
    _, inner = column(width, font)
    body_width = inner - 2 * BUBBLE_PAD if message.role == "user" else inner
    key = (theme.name, font.pointSizeF())
    old = message.cache
    text = message.content or ("…" if not message.complete else "")
    if message.role == "user":
        # The user's own words are shown as typed: no Markdown, so nothing they wrote is reinterpreted.
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        cache = RenderCache(width, key, [_document(f'<p style="white-space: pre-wrap">{escaped}</p>', font,
                                                   body_width)], [])
    elif message.complete or message.blocked:
        rendered = renderer.render(text, theme)
        cache = RenderCache(width, key, [_document(rendered.html, font, body_width)], rendered.code_blocks)
    else:
        reusable = old is not None and old.width == width and old.key == key and len(old.segments) > 0 \
            and message.content.startswith(message.content[: old.stable_end])
        segments = old.segments[:-1] if reusable and old is not None else []
        stable_end = old.stable_end if reusable and old is not None else 0
        code = old.code_blocks[: old.stable_code] if reusable and old is not None else []
        end = stable_prefix_end(message.content)
        if end > stable_end:
            part = renderer.render(message.content[stable_end:end], theme, len(code))
            segments.append(_document(part.html, font, body_width))
            code += part.code_blocks
            stable_end = end
        tail = renderer.render(message.content[stable_end:] or "…", theme, len(code))
        segments.append(_document(tail.html, font, body_width))
        cache = RenderCache(width, key, segments, code + tail.code_blocks, stable_end=stable_end,
                            stable_code=len(code))
    if message.reasoning and message.reasoning_open:  # collapsed thinking costs nothing to stream
        reasoning = renderer.render(message.reasoning, theme)
        cache.reasoning = _document(reasoning.html, font, inner - 12)
    message.cache = cache
    return cache


def view_messages(stored: list[StoredMessage]) -> list[ViewMessage]:
    """The store's branch on screen, as the transcript shows it."""
    return [ViewMessage(m.role, m.content, m.complete, m.blocked, m.category, message_id=m.id, created=m.created,
                        model=m.model if m.role == "assistant" else None, sibling_index=m.sibling_index,
                        sibling_count=m.sibling_count, reasoning=m.reasoning, reasoning_ms=m.reasoning_ms)
            for m in stored]


def _time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%H:%M")
    except ValueError:
        return ""


def header_text(message: ViewMessage) -> str:
    when = _time(message.created)
    if message.role == "user":
        return " · ".join(p for p in ("You", when) if p)
    return " · ".join(p for p in ("Haven", message.model or "", when) if p)


def thinking_label(message: ViewMessage) -> str:
    arrow = "▾" if message.reasoning_open else "▸"
    if message.reasoning_ms is None:
        return f"{arrow} Thinking…"
    return f"{arrow} Thinking… {message.reasoning_ms / 1000:.1f} s"


def button_labels(message: ViewMessage, streaming: bool) -> dict[str, str]:
    labels = {"copy": "Copy"}
    if message.role == "user" and message.message_id is not None and not streaming:
        labels["edit"] = "Edit"
    if message.role == "assistant" and message.message_id is not None and not streaming:
        labels["regenerate"] = "Regenerate"
    if message.sibling_count > 1:
        labels["previous"] = "‹"
        labels["branch"] = f"{message.sibling_index} / {message.sibling_count}"
        labels["next"] = "›"
    return labels


def spoken(message: ViewMessage) -> str:
    """The text a screen reader reads for a message: who, notes, then the text."""
    who = "You" if message.role == "user" else f"Haven ({message.model})" if message.model else "Haven"
    notes = []
    if message.sibling_count > 1:
        notes.append(f"version {message.sibling_index} of {message.sibling_count}")
    if message.reasoning:
        notes.append("has thinking")
    if message.blocked:
        notes.append("safety notice")
    elif not message.complete:
        notes.append("incomplete")
    suffix = f" ({', '.join(notes)})" if notes else ""
    return f"{who}{suffix}: {message.content}"


def note_text(message: ViewMessage, streaming: bool) -> str:
    if message.blocked:
        return f"safety notice ({message.category})" if message.category else "safety notice"
    if streaming:
        return "writing…"
    if not message.complete and message.role == "assistant":
        return "stopped"
    return ""


def layout(message: ViewMessage, cache: RenderCache, font: QFont, width: int, top: int, streaming: bool) -> Layout:
    small = QFontMetrics(_small(font))
    left, inner = column(width, font)
    line = small.height() + 6
    y = top + 6
    header = QRect(left, y, inner, line)
    y += line
    thinking = reasoning = None
    if message.reasoning or message.reasoning_ms is not None:
        thinking = QRect(left, y, small.horizontalAdvance(thinking_label(message)) + 16, line)
        y += line + 2
        if message.reasoning_open and cache.reasoning is not None:
            h = int(cache.reasoning.size().height()) + 8
            reasoning = QRect(left + 12, y, inner - 12, h)
            y += h + 4
    body_height = sum(int(d.size().height()) for d in cache.segments)
    bubble = None
    if message.role == "user":
        ideal = int(max((d.idealWidth() for d in cache.segments), default=0)) + 2
        bubble_width = min(inner, ideal + 2 * BUBBLE_PAD)
        bubble = QRect(left + inner - bubble_width, y, bubble_width, body_height + 2 * BUBBLE_PAD)
        body = bubble.adjusted(BUBBLE_PAD, BUBBLE_PAD, -BUBBLE_PAD, -BUBBLE_PAD)
        y = bubble.bottom() + 1
    else:
        body = QRect(left, y, inner, body_height)
        y += body_height
    buttons: dict[str, QRect] = {}
    x = left if message.role == "assistant" else left + inner
    labels = button_labels(message, streaming)
    order = list(labels) if message.role == "assistant" else list(reversed(labels))
    for name in order:
        w = small.horizontalAdvance(labels[name]) + 14
        if message.role == "user":
            x -= w
        buttons[name] = QRect(x, y + 3, w, line)
        if message.role == "assistant":
            x += w + 2
        else:
            x -= 2
    y += line + 6
    return Layout(header, thinking, reasoning, body, bubble, buttons, y - top + GAP)


def _small(font: QFont) -> QFont:
    small = QFont(font)
    small.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
    return small


@dataclass(frozen=True, slots=True)
class Estimator:
    """What :func:`estimate_height` needs from the font, measured once for a whole conversation."""

    per_line: int       # characters on a line of the column
    line: float         # a line's height, with Markdown's spacing
    chrome: int         # header, actions and gap

    @classmethod
    def for_font(cls, font: QFont, width: int) -> Estimator:
        metrics = QFontMetrics(font)
        _, inner = column(width, font)
        small = QFontMetrics(_small(font)).height() + 6
        return cls(max(20, inner // max(1, metrics.averageCharWidth())), metrics.lineSpacing() * 1.15,
                   2 * small + GAP + 18)


def estimate_height(message: ViewMessage, estimator: Estimator) -> int:
    """A height for a message not rendered yet, from counts over its text (no loop in Python: a
    conversation of 2,000 messages is estimated in a few milliseconds)."""
    text = message.content or "…"
    fences = text.count("```") + text.count("~~~")
    lines = text.count("\n") + 1 + len(text) // estimator.per_line - fences
    lines += text.count("\n|")  # table rows are padded
    extra = fences * 14 + (2 * BUBBLE_PAD if message.role == "user" else 0)
    return int(max(1, lines) * estimator.line) + estimator.chrome + extra


class MessageDelegate(QStyledItemDelegate):
    """Draws messages from the view's list; the view owns rendering, hit tests and actions."""

    def __init__(self, view: QWidget) -> None:
        super().__init__(view)
        self._view = view

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        view = self._view
        row = index.row()
        message, cache, lay = view.prepared(row, option.rect)  # type: ignore[attr-defined]
        theme: Theme = view.theme  # type: ignore[attr-defined]
        font: QFont = view.message_font()  # type: ignore[attr-defined]
        streaming = view.is_streaming(row)  # type: ignore[attr-defined]
        current = view.currentIndex().row() == row and view.hasFocus()
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        small = _small(font)
        painter.setFont(small)
        painter.setPen(QColor(theme.muted))
        align = Qt.AlignmentFlag.AlignRight if message.role == "user" else Qt.AlignmentFlag.AlignLeft
        painter.drawText(lay.header, align | Qt.AlignmentFlag.AlignVCenter, header_text(message))
        if current:  # the keyboard is on this message: a ring around its column
            painter.setPen(QColor(theme.accent))
            left, inner = column(option.rect.width(), font)
            ring = QRect(left - 8, option.rect.top() + 2, inner + 16, option.rect.height() - GAP // 2 - 2)
            painter.drawRoundedRect(QRectF(ring), 6, 6)
        if lay.thinking is not None:
            painter.setPen(QColor(theme.muted))
            painter.drawText(lay.thinking, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             thinking_label(message))
        if lay.reasoning is not None and cache.reasoning is not None:
            painter.fillRect(QRect(lay.reasoning.left() - 8, lay.reasoning.top(), 2, lay.reasoning.height()),
                             QColor(theme.border))
            self._draw(painter, cache.reasoning, lay.reasoning.topLeft(), theme.muted)
        if lay.bubble is not None:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(theme.user_bubble))
            painter.drawRoundedRect(QRectF(lay.bubble), 12, 12)
        y = lay.body.top()
        for doc in cache.segments:
            self._draw(painter, doc, QPoint(lay.body.left(), y),
                       theme.user_text if message.role == "user" else theme.text)
            y += int(doc.size().height())
        painter.setFont(small)
        labels = button_labels(message, streaming)
        for name, rect in lay.buttons.items():
            if name not in ("previous", "next", "branch") and not (hovered or current):
                continue
            painter.setPen(QColor(theme.muted))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, labels[name])
        note = note_text(message, streaming)
        if note:
            painter.setPen(QColor(theme.muted))
            spot = lay.header.translated(0, 0)
            flag = Qt.AlignmentFlag.AlignLeft if message.role == "user" else Qt.AlignmentFlag.AlignRight
            painter.drawText(spot, flag | Qt.AlignmentFlag.AlignVCenter, note)
        painter.restore()

    @staticmethod
    def _draw(painter: QPainter, doc: SafeDocument, at: QPoint, colour: str) -> None:
        painter.save()
        painter.translate(at)
        context = QAbstractTextDocumentLayout.PaintContext()
        palette = QPalette(context.palette)
        palette.setColor(QPalette.ColorRole.Text, QColor(colour))
        context.palette = palette
        doc.documentLayout().draw(painter, context)
        painter.restore()
