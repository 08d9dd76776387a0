"""Model output to safe HTML for the transcript: markdown-it-py (CommonMark + tables), maths spans from
mdit-py-plugins' dollarmath, code highlighted by Pygments with a copy link each.

What the text may never do, whatever it contains:
* run HTML: raw HTML is off (``html: False``), so a tag in a reply is escaped and shown as text;
* load anything: an image becomes its alt text in brackets, no ``<img>`` is ever written (and the
  documents that show this HTML refuse every resource besides, :class:`SafeDocument`);
* link anywhere but the web: only ``http`` and ``https`` links become anchors; other links show as text.
  A click on one is handled by the view (it opens only on click, in the system browser).

Maths is set by :mod:`ui.maths` (pylatexenc turns macros into their Unicode characters; sub- and
superscripts become ``<sub>``/``<sup>``, fractions ``a/b``) in a serif italic span (inline) or a centred
block (display): readable without a network or a TeX engine. TeX it cannot read is shown as written; copying
the message gives the TeX.

:func:`stable_prefix_end` lets a streaming reply render its finished blocks once and only its growing
tail on each update.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.lexers.special import TextLexer
from pygments.util import ClassNotFound
from PySide6.QtCore import QUrl
from PySide6.QtGui import QTextDocument

from ui.maths import tex_to_html
from ui.theme import Theme

__all__ = ["COPY_SCHEME", "MarkdownRenderer", "Rendered", "SafeDocument", "stable_prefix_end"]

COPY_SCHEME = "haven-copy"  # href="haven-copy:N" is the copy link of the N-th code block of a message
WEB_SCHEMES = ("http://", "https://")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


@dataclass
class Rendered:
    html: str
    code_blocks: list[str] = field(default_factory=list)


class SafeDocument(QTextDocument):
    """A text document that loads no resource at all (images, style sheets, anything a name could reach)."""

    def loadResource(self, kind: int, name: QUrl) -> object:
        return None


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.use(dollarmath_plugin, allow_space=True, double_inline=True)
    return md


class MarkdownRenderer:
    """One parser with Haven's rules (building one takes ~20 ms: the view keeps one)."""

    def __init__(self) -> None:
        self.md = _parser()
        rules = {
            "image": self._image, "link_open": self._link_open, "link_close": self._link_close,
            "fence": self._fence, "code_block": self._fence, "code_inline": self._code_inline,
            "math_inline": self._math_inline, "math_inline_double": self._math_inline,
            "math_block": self._math_block, "math_block_label": self._math_block,
            "table_open": self._table_open, "th_open": self._cell_open, "td_open": self._cell_open,
            "blockquote_open": self._blockquote_open,
        }
        for name, rule in rules.items():  # markdown-it binds what it is given to its renderer: wrap the methods
            self.md.add_render_rule(name, lambda _renderer, tokens, idx, options, env, rule=rule:
                                    rule(tokens, idx, options, env))
        self._formatters: dict[str, HtmlFormatter] = {}

    def render(self, text: str, theme: Theme, first_code_index: int = 0) -> Rendered:
        """``text`` (a reply or a user's message) as HTML that is safe to show, in ``theme``'s colours; code
        blocks are numbered from ``first_code_index`` in their copy links."""
        env: dict[str, Any] = {"theme": theme, "code": [], "links": [], "first_code": first_code_index}
        body = self.md.render(text, env)
        return Rendered(html=body.strip(), code_blocks=env["code"])

    # -- rules ------------------------------------------------------------------------------------

    @staticmethod
    def _theme(env: dict[str, Any]) -> Theme:
        theme: Theme = env["theme"]
        return theme

    def _image(self, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        alt = "".join(child.content for child in tokens[idx].children or [])
        return f'<span style="color: {self._theme(env).muted}">[image: {html.escape(alt or "no description")}]</span>'

    def _link_open(self, tokens: Sequence[Token], idx: int, options: Any,
                   env: dict[str, Any]) -> str:
        href = str(tokens[idx].attrGet("href") or "")
        web = href.lower().startswith(WEB_SCHEMES)
        env["links"].append(web)
        if not web:
            return ""
        return f'<a href="{html.escape(href, quote=True)}" style="color: {self._theme(env).link}">'

    def _link_close(self, tokens: Sequence[Token], idx: int, options: Any,
                    env: dict[str, Any]) -> str:
        return "</a>" if env["links"] and env["links"].pop() else ""

    def _formatter(self, style: str) -> HtmlFormatter:
        if style not in self._formatters:
            self._formatters[style] = HtmlFormatter(style=style, nowrap=True, noclasses=True)
        return self._formatters[style]

    def _fence(self, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        token = tokens[idx]
        theme = self._theme(env)
        code = token.content
        language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
        try:
            lexer = get_lexer_by_name(language) if language else TextLexer()
        except ClassNotFound:
            lexer = TextLexer()
        highlighted = highlight(code, lexer, self._formatter(theme.pygments_style)).rstrip("\n")
        number = env["first_code"] + len(env["code"])
        env["code"].append(code.rstrip("\n"))
        label = html.escape(language) if language else "code"
        return (
            f'<table width="100%" cellspacing="0" cellpadding="6" bgcolor="{theme.code_background}" '
            f'style="border: 1px solid {theme.border}; margin-top: 4px; margin-bottom: 8px">'
            f'<tr><td><span style="color: {theme.muted}; font-size: small">{label}</span>'
            f'&nbsp;&nbsp;&nbsp;<a href="{COPY_SCHEME}:{number}" style="color: {theme.link}; font-size: small; '
            f'text-decoration: none">Copy</a></td></tr>'
            f'<tr><td><pre style="white-space: pre-wrap; margin: 0">{highlighted}</pre></td></tr></table>\n'
        )

    def _code_inline(self, tokens: Sequence[Token], idx: int, options: Any,
                     env: dict[str, Any]) -> str:
        theme = self._theme(env)
        return (f'<code style="background-color: {theme.code_background}">'
                f"{html.escape(tokens[idx].content)}</code>")

    @staticmethod
    def _maths(tex: str) -> str:
        """The formula set with sub- and superscripts, or (TeX it cannot read) the TeX as written, escaped."""
        return tex_to_html(tex) or html.escape(tex)

    def _math_inline(self, tokens: Sequence[Token], idx: int, options: Any,
                     env: dict[str, Any]) -> str:
        return (f'<span style="font-family: serif; font-style: italic; color: {self._theme(env).math}">'
                f"{self._maths(tokens[idx].content)}</span>")

    def _math_block(self, tokens: Sequence[Token], idx: int, options: Any,
                    env: dict[str, Any]) -> str:
        tex = self._maths(tokens[idx].content.strip()).replace("\n", "<br>")
        return (f'<p align="center" style="font-family: serif; font-style: italic; '
                f'color: {self._theme(env).math}">{tex}</p>\n')

    def _table_open(self, tokens: Sequence[Token], idx: int, options: Any,
                    env: dict[str, Any]) -> str:
        theme = self._theme(env)
        return (f'<table border="1" cellspacing="0" cellpadding="5" '
                f'style="border-collapse: collapse; border-color: {theme.border}; margin-bottom: 8px">\n')

    def _cell_open(self, tokens: Sequence[Token], idx: int, options: Any,
                   env: dict[str, Any]) -> str:
        token = tokens[idx]
        align = token.attrGet("style") or ""
        side = align.removeprefix("text-align:").strip() if align else ""
        extra = f' align="{side}"' if side in ("left", "right", "center") else ""
        if token.tag == "th":
            extra += f' bgcolor="{self._theme(env).code_background}"'
        return f"<{token.tag}{extra}>"

    def _blockquote_open(self, tokens: Sequence[Token], idx: int, options: Any,
                         env: dict[str, Any]) -> str:
        return f'<blockquote style="color: {self._theme(env).muted}">\n'


def stable_prefix_end(text: str) -> int:
    """Where the finished blocks of a growing Markdown text end: after the last blank line that is outside
    a code fence and not followed by an indented line (which could continue a list or a code block).
    Everything before it renders the same whatever comes next; 0 when nothing is finished yet."""
    end = 0
    fence: str | None = None
    position = 0
    lines = text.split("\n")
    for number, line in enumerate(lines[:-1]):  # the last line may still be growing
        position += len(line) + 1
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)[0] * len(match.group(1))
        elif fence is not None and line.strip().startswith(fence) and not line.strip().strip(fence[0]):
            fence = None
        elif fence is None and not line.strip():
            following = lines[number + 1]
            if following and not following[0].isspace() and number + 1 < len(lines) - 1:
                end = position
    return end
