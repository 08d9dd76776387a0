"""Imported as ``sitecustomize`` by every subprocess of the offline tests (this folder is put first on
PYTHONPATH). Any attempt to reach the network (a name lookup, a connect, a datagram) is appended to the
file named by ``HAVEN_TEST_NETWORK_LOG`` with the stack that made it, then fails with an ``OSError``, as
it would on a machine without a network. At exit, and at each refused attempt, the process writes what
huggingface_hub believes about telemetry to ``HAVEN_TEST_PROCESS_STATE``, which also proves that this
shim was loaded.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
import traceback
from typing import Any, NoReturn

_LOG = os.environ["HAVEN_TEST_NETWORK_LOG"]
_STATE = os.environ["HAVEN_TEST_PROCESS_STATE"]


def _refuse(call: str, target: object) -> NoReturn:
    with open(_LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"call": call, "target": repr(target),
                                 "stack": "".join(traceback.format_stack(limit=12))}) + "\n")
    _report()  # also now: a process that tries the network may be killed before it exits
    raise OSError(f"the offline test refused a network attempt: {call}({target!r})")


def _method(call: str) -> Any:
    def refuse(self: socket.socket, address: object, *rest: object) -> NoReturn:
        _refuse(call, (socket.AddressFamily(self.family).name, address))
    return refuse


def _sendto(self: socket.socket, data: bytes, *rest: object) -> NoReturn:
    _refuse("sendto", (socket.AddressFamily(self.family).name, rest[-1] if rest else None))


def _function(call: str) -> Any:
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        _refuse(call, args[:2])
    return refuse


socket.socket.connect = _method("connect")  # type: ignore[method-assign]
socket.socket.connect_ex = _method("connect_ex")  # type: ignore[method-assign]
socket.socket.sendto = _sendto  # type: ignore[method-assign,assignment]
for _name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr"):
    setattr(socket, _name, _function(_name))


@atexit.register
def _report() -> None:
    hub = sys.modules.get("huggingface_hub.constants")
    state = {
        "shim_loaded": True,
        "huggingface_hub_imported": hub is not None,
        "hub_telemetry_disabled": getattr(hub, "HF_HUB_DISABLE_TELEMETRY", None),
        "environment": os.environ.get("HF_HUB_DISABLE_TELEMETRY"),
    }
    with open(_STATE, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
