"""``haven-cli serve``: the OpenAI-compatible API on one model, in the foreground until Ctrl+C.

The first line on stdout is the base URL (``http://HOST:PORT/v1``), printed once the model is loaded and
the port is listening, so a script can read it and start sending requests. The token and any warning go
to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

from assistant.cli.chat import open_chat_session
from assistant.cli.exit_codes import EXIT_OK
from assistant.errors import UsageError
from assistant.server import ApiServer, ApiService, ApiToken, exposure_warning

if TYPE_CHECKING:
    from assistant.core import Core

__all__ = ["add_serve_command"]

log = logging.getLogger(__name__)


def cmd_serve(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    settings = core.settings
    host = args.host or settings.server_host
    port = settings.server_port if args.port is None else args.port
    if not 0 <= port <= 65535:
        raise UsageError("--port must be between 0 and 65535 (0 picks a free port).")
    model_id = args.model or core.registry.default_id(settings.default_model)
    token = ApiToken(core.paths)
    secret = token.get()  # generated and stored on first use
    session, engine = open_chat_session(core, model_id)
    keep = args.keep_conversations or settings.server_store_conversations
    service = ApiService(engine, session.policy, model_id=model_id, sampling=core.sampling(),
                         store=core.store if keep else None)
    try:
        server = ApiServer(service, token.get, host=host, port=port)
    except BaseException:
        service.close()
        engine.close()
        raise
    out.write(server.base_url + "\n")
    out.flush()
    warning = exposure_warning(host, server.port)
    if warning:
        log.warning("%s", warning)
        print(f"warning: {warning}", file=sys.stderr)
    shown = "from HAVEN_API_TOKEN" if token.from_environment() else f"{secret} (kept in {token.where()})"
    print(f"Serving {model_id} with Haven's safety checks. API token: {shown}. "
          f"Conversations are {'kept' if keep else 'not kept'}. Ctrl+C stops.", file=sys.stderr)
    log.info("serving %s on %s", model_id, server.base_url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass  # uvicorn has already shut down gracefully; stopping a server is its normal end
    finally:
        service.close()
        engine.close()
    print("Haven's API stopped.", file=sys.stderr)
    return EXIT_OK


def add_serve_command(commands: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    serve = commands.add_parser("serve", parents=[common],
                                help="an OpenAI-compatible API on a model, with Haven's safety checks")
    serve.add_argument("--host", help="the address to listen on (default: 127.0.0.1, this computer only)")
    serve.add_argument("--port", type=int, help="the port (default: the setting, 8765; 0 picks a free one)")
    serve.add_argument("--model", help="the model to serve: an installed id or NAME:MODEL (default: the default)")
    serve.add_argument("--keep-conversations", action="store_true",
                       help="store the API's conversations with the others (default: the setting, off)")
    serve.set_defaults(handler=cmd_serve)
