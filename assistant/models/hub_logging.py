"""huggingface_hub's messages go to Haven's log, not straight to the terminal.

The library prints its retries and warnings ("Retrying in 4s [Retry 3/5]") on stderr through a handler of
its own, while every ``haven-cli`` command promises one sentence there when it fails. Routed through
Python's logging instead, they land in Haven's log file, and on stderr only with ``--debug``
(``assistant.app_logging``). Called where Haven first uses the library, so start-up does not import it.
"""

from __future__ import annotations

__all__ = ["route_hub_logging"]

_routed = False


def route_hub_logging() -> None:
    global _routed
    if _routed:
        return
    import logging

    import huggingface_hub.utils.logging  # noqa: F401  (attaches the library's own handler: remove it)

    library = logging.getLogger("huggingface_hub")
    for handler in list(library.handlers):
        if type(handler) is logging.StreamHandler:
            library.removeHandler(handler)
    library.propagate = True
    _routed = True
