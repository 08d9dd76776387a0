"""Colours of the transcript and the window, light and dark, following the OS unless settings choose one.

The transcript paints its messages itself (:mod:`ui.chat_view`), so it takes its colours from a
:class:`Theme` rather than from the widget palette alone; :func:`current_theme` picks the one that
matches the application's colour scheme (``QStyleHints.colorScheme``), and the window's style sheet
(``resources/styles/haven.qss``) gets the same colours.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette

from assistant.paths import resource_path

__all__ = ["DARK", "LIGHT", "Theme", "current_theme", "palette_for", "style_sheet"]


@dataclass(frozen=True, slots=True)
class Theme:
    name: str
    dark: bool
    background: str      # the transcript
    text: str
    muted: str           # names, times, actions
    user_bubble: str
    user_text: str
    code_background: str
    border: str
    link: str
    accent: str          # hover and focus marks
    math: str
    pygments_style: str


LIGHT = Theme(name="light", dark=False, background="#ffffff", text="#1f2328", muted="#6e7781",
              user_bubble="#e8eefc", user_text="#1f2328", code_background="#f6f8fa", border="#d0d7de",
              link="#0a58ca", accent="#3b6fd8", math="#6f42c1", pygments_style="default")
DARK = Theme(name="dark", dark=True, background="#1e1f22", text="#e6e6e6", muted="#9aa0a6",
             user_bubble="#2f3b52", user_text="#eef2fa", code_background="#2a2c30", border="#3c3f44",
             link="#8ab4f8", accent="#8ab4f8", math="#d2a8ff", pygments_style="github-dark")


def current_theme() -> Theme:
    """The theme for the application's colour scheme; an unknown scheme is read from the palette."""
    app = QGuiApplication.instance()
    if not isinstance(app, QGuiApplication):
        return LIGHT
    scheme = app.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return DARK
    if scheme == Qt.ColorScheme.Light:
        return LIGHT
    return DARK if app.palette().color(QPalette.ColorRole.Window).lightness() < 128 else LIGHT


def style_sheet(theme: Theme) -> str:
    """The window's style sheet with this theme's colours filled in."""
    template = resource_path("styles", "haven.qss").read_text(encoding="utf-8")
    for field in Theme.__dataclass_fields__:
        template = template.replace("@" + field, str(getattr(theme, field)))
    return template


def palette_for(theme: Theme) -> QPalette:
    """A window palette in this theme's colours, for platforms that cannot switch light and dark themselves
    (``QStyleHints.setColorScheme`` is a request; X11 without a desktop portal, for one, ignores it)."""
    roles = QPalette.ColorRole
    base, window = QColor(theme.background), QColor("#f3f4f6" if not theme.dark else "#26282c")
    colours = {
        roles.Window: window, roles.WindowText: QColor(theme.text), roles.Base: base,
        roles.AlternateBase: window, roles.Text: QColor(theme.text), roles.Button: window,
        roles.ButtonText: QColor(theme.text), roles.Highlight: QColor(theme.accent),
        roles.HighlightedText: QColor(theme.background), roles.ToolTipBase: base, roles.ToolTipText: QColor(theme.text),
        roles.PlaceholderText: QColor(theme.muted), roles.Link: QColor(theme.link), roles.Mid: QColor(theme.border),
    }
    palette = QPalette()
    for role, colour in colours.items():
        palette.setColor(role, colour)
    palette.setColor(QPalette.ColorGroup.Disabled, roles.Text, QColor(theme.muted))
    palette.setColor(QPalette.ColorGroup.Disabled, roles.ButtonText, QColor(theme.muted))
    return palette
