"""``haven-cli remote add|list|remove``: the OpenAI-compatible servers whose models Haven may use, with
ids ``NAME:MODEL`` (``haven-cli chat --model NAME:MODEL``). Adding a server lists its models, so a wrong
address or key is a sentence at once; nothing is sent to a server the user did not add.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from assistant.cli.exit_codes import EXIT_OK
from assistant.errors import UsageError
from assistant.remote import add_server

if TYPE_CHECKING:
    from assistant.core import Core

__all__ = ["add_remote_commands"]


def cmd_add(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    key = None
    if args.key_stdin:
        key = sys.stdin.readline().strip()
        if not key:
            raise UsageError("--key-stdin was given but stdin held no key.")
    server, where = add_server(core.remotes(), args.name, args.url, key)
    models = ", ".join(server.model_ids()) or "none listed yet"
    kept = f"; its key is in {where}" if where else ""
    out.write(f"Added {server.name} ({server.url}){kept}. Models: {models}\n")
    return EXIT_OK


def cmd_list(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    registry = core.remotes()
    servers = registry.servers()
    if args.json:
        rows = [{"name": s.name, "url": s.url, "has_key": registry.key(s.name) is not None, "added": s.added,
                 "models": s.model_ids()} for s in servers]
        out.write(json.dumps(rows, indent=2) + "\n")
        return EXIT_OK
    if not servers:
        out.write("No servers yet. Add one with: haven-cli remote add NAME URL [--key-stdin]\n")
    for s in servers:
        out.write(f"{s.name:16s} {s.url}\n")
        for model_id in s.model_ids():
            out.write(f"    {model_id}\n")
    return EXIT_OK


def cmd_remove(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    core.remotes().remove(args.name)
    out.write(f"Removed {args.name} and its key.\n")
    return EXIT_OK


def add_remote_commands(commands: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    remote = commands.add_parser("remote", parents=[common],
                                 help="servers (llama-server, vLLM, Ollama...) whose models Haven may use")
    actions = remote.add_subparsers(dest="remote_command", required=True, parser_class=parser_class)
    add = actions.add_parser("add", parents=[common], help="add an OpenAI-compatible server and list its models")
    add.add_argument("name", help="a short name; its models' ids become NAME:MODEL")
    add.add_argument("url", help="the server's base URL, e.g. http://192.168.1.20:8080/v1")
    add.add_argument("--key-stdin", action="store_true", help="read the server's API key from stdin")
    add.set_defaults(handler=cmd_add)
    listing = actions.add_parser("list", parents=[common], help="the servers added and their models")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)
    remove = actions.add_parser("remove", parents=[common], help="forget a server and its key")
    remove.add_argument("name")
    remove.set_defaults(handler=cmd_remove)
