"""Maths in replies: TeX set with sub- and superscripts, fractions and roots, never a tag of its own."""

from __future__ import annotations

import re

import pytest

from ui.markdown import MarkdownRenderer
from ui.maths import tex_to_html
from ui.theme import LIGHT


@pytest.mark.parametrize(("tex", "expected"), [
    (r"\bar{x} = \frac{1}{n} \sum_{i=1}^{n} x_i", "x̅ = 1/n ∑<sub>i=1</sub><sup>n</sup> x<sub>i</sub>"),
    (r"e^{i\pi} + 1 = 0", "e<sup>iπ</sup> + 1 = 0"),
    (r"\int_0^\infty e^{-x^2} dx", "∫<sub>0</sub><sup>∞</sup> e<sup>-x<sup>2</sup></sup> dx"),
    (r"\frac{a+b}{2}", "(a+b)/2"),
    (r"\sqrt{a^2+b^2}", "√(a<sup>2</sup>+b<sup>2</sup>)"),
    (r"\mathbf{v}_1 \cdot \mathbf{w}", "v<sub>1</sub> · w"),
    (r"a \leq \alpha", "a ≤ α"),
])
def test_tex_is_set_with_scripts_fractions_and_symbols(tex: str, expected: str) -> None:
    assert tex_to_html(tex) == expected


def test_a_formula_cannot_add_markup_and_broken_tex_is_shown_as_written() -> None:
    assert tex_to_html("<b>x</b>_<i>") == "&lt;b&gt;x&lt;/b&gt;<sub>&lt;</sub>i&gt;"
    assert tex_to_html(r"\frac{1}{") is None
    html = MarkdownRenderer().render("Broken: $\\frac{1}{$ and fine: $x^2$", LIGHT).html
    assert "\\frac{1}{" in html and "x<sup>2</sup>" in html


def test_inline_and_display_maths_in_a_reply() -> None:
    html = MarkdownRenderer().render("The mean is $\\bar{x}$:\n\n$$\\bar{x} = \\frac{1}{n}\\sum_{i=1}^{n} x_i$$\n",
                                     LIGHT).html
    assert re.search(r'<p align="center"[^>]*>x̅ = 1/n ∑<sub>i=1</sub><sup>n</sup>', html), html
    assert "x̅</span>" in html
