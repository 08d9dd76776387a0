"""Haven's desktop app (PySide6). ``ui.app`` builds and wires everything; ``ui.workers`` owns the threads.

Importing ``ui`` first protects the process from a PySide6 6.12 binding bug (:mod:`ui.binding_fix`).
"""

from ui.binding_fix import protect_none

protect_none()
