"""Haven's Qt-free core: models, chat sessions, storage, settings and the safety system.

Nothing here imports Qt; ``ui/`` builds on these public names. Import what you need from the modules
named below (importing ``assistant`` itself stays cheap: it does not load llama.cpp).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
