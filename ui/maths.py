"""TeX from a model's reply as HTML that Qt's rich text can show without a TeX engine or a network.

pylatexenc parses the TeX and turns macros into their Unicode characters (``\\sum`` → ∑, ``\\alpha`` → α,
``\\bar{x}`` → x̅); this module adds what plain text cannot carry: subscripts and superscripts as
``<sub>``/``<sup>`` (``\\sum_{i=1}^{n} x_i`` reads ∑ with i=1 below and n above, not ``∑_i=1^n x_i``),
fractions as ``a/b`` with parentheses where a part has more than one term, and roots as ``√(…)``.

Every character of the TeX is escaped before it becomes HTML: a formula can never add a tag of its own.
TeX that cannot be parsed is returned as ``None`` and shown as written by the caller.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

from pylatexenc.latex2text import LatexNodes2Text
from pylatexenc.latexwalker import (
    LatexCharsNode,
    LatexGroupNode,
    LatexMacroNode,
    LatexMathNode,
    LatexSpecialsNode,
    LatexWalker,
)

__all__ = ["tex_to_html"]

_SCRIPTS = {"_": "sub", "^": "sup"}
# Macros that only change the font of their argument: their argument is typeset as usual (it may have scripts).
_FONT_MACROS = frozenset({"text", "textrm", "textit", "textbf", "mathrm", "mathit", "mathbf", "mathsf", "mathtt",
                          "mathcal", "mathbb", "mathfrak", "boldsymbol", "operatorname", "mbox", "displaystyle"})
_FRACTIONS = frozenset({"frac", "dfrac", "tfrac", "cfrac"})
_OPERATORS = frozenset("·×÷±∓≤≥≠≈≡∼≃≅∝∈∉∋⊂⊃⊆⊇∪∩∧∨→←↔⇒⇐⇔↦∘")  # set with a space each side, as TeX does
_LARGE_OPERATORS = frozenset("∑∏∐∫∬∭∮⋃⋂⋀⋁")
_SIMPLE = re.compile(r"^[\w.′]+$")  # one term: needs no parentheses in a/b

_text = LatexNodes2Text(math_mode="text")
logging.getLogger("pylatexenc").setLevel(logging.ERROR)  # a model's broken TeX is not worth a warning


def tex_to_html(tex: str) -> str | None:
    """The formula as escaped HTML with sub- and superscripts, or None when pylatexenc cannot read it."""
    try:
        nodes, _, _ = LatexWalker(tex, tolerant_parsing=False).get_latex_nodes()
        converted = _Converter().nodes(nodes or [])
    except Exception:  # pylatexenc's parse errors are plain exceptions; a wrong formula is not ours to fix
        return None
    return re.sub(r" {2,}", " ", converted).strip() or None


class _Converter:
    def nodes(self, nodes: list[Any]) -> str:
        out: list[str] = []
        pending: str | None = None  # "sub" or "sup" waiting for the argument that follows _ or ^

        def emit(piece: str) -> None:
            nonlocal pending
            if pending is None:
                out.append(piece)
            else:
                out.append(f"<{pending}>{piece}</{pending}>")
                pending = None

        for node in nodes:
            if node is None:
                continue
            chars = _chars_of(node)
            if chars is None:
                emit(self.node(node))
                if getattr(node, "macro_post_space", ""):
                    out.append(" ")  # the space the parser counted as the end of the macro's name
                continue
            for char in chars:
                if char in _SCRIPTS:
                    if pending is not None:  # "x_^": nothing to attach; show the first mark as written
                        out.append(html.escape("_" if pending == "sub" else "^"))
                    pending = _SCRIPTS[char]
                elif char.isspace() and pending is not None:
                    continue  # TeX ignores spaces between a script mark and its argument
                else:
                    emit(html.escape(char))
        if pending is not None:
            out.append(html.escape("_" if pending == "sub" else "^"))
        return "".join(out)

    def node(self, node: Any) -> str:
        if isinstance(node, LatexGroupNode | LatexMathNode):
            return self.nodes(node.nodelist or [])
        if isinstance(node, LatexMacroNode):
            args = [a for a in (node.nodeargd.argnlist if node.nodeargd else []) if a is not None]
            if node.macroname in _FRACTIONS and len(args) == 2:
                return f"{self._term(args[0])}/{self._term(args[1])}"
            if node.macroname == "sqrt" and args:
                return f"√({self.node(args[-1])})"
            if node.macroname in _FONT_MACROS and args:
                return self.node(args[-1])
        text = _text.nodelist_to_text([node])
        if isinstance(node, LatexMacroNode) and text.strip() in _OPERATORS:
            return f" {html.escape(text.strip())} "
        if isinstance(node, LatexMacroNode) and text.strip() in _LARGE_OPERATORS:
            return f" {text.strip()}"  # "1/n ∑", not "1/n∑"
        return html.escape(text)

    def _term(self, node: Any) -> str:
        converted = self.node(node)
        plain = _text.nodelist_to_text([node]).strip()
        return converted if _SIMPLE.match(plain) else f"({converted})"


def _chars_of(node: Any) -> str | None:
    """The literal characters of a node that holds only characters (where _ and ^ appear), else None."""
    if isinstance(node, LatexCharsNode):
        return str(node.chars)
    if isinstance(node, LatexSpecialsNode) and node.specials_chars in _SCRIPTS and not node.nodeargd:
        return str(node.specials_chars)
    return None
