"""Haven's desktop app (PySide6). ``ui.app`` builds and wires everything; ``ui.workers`` owns the threads."""
