"""``haven-cli history``: the saved conversations, listed, exported and imported.

``export`` writes the branch on screen of each conversation; ``--all-branches`` (JSON) writes every
message of the tree. ``import FILE`` reads Haven's own JSON export or ChatGPT's ``conversations.json``
(or ChatGPT's export zip), all or nothing, and prints the new conversations' ids (docs/core.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from assistant.cli.exit_codes import EXIT_OK
from assistant.core import Core
from assistant.errors import HavenError, UsageError
from assistant.export import conversations_to_markdown, export_json
from assistant.importing import import_file

__all__ = ["add_history_commands"]


def cmd_history_list(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    rows = core.store.list_conversations()
    if args.json:
        out.write(json.dumps([
            {"id": r.id, "title": r.title, "model": r.model, "created": r.created, "updated": r.updated,
             "messages": r.messages} for r in rows], ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK
    if not rows:
        out.write("No conversations yet. Start one with: haven-cli chat \"Hello\"\n")
    for r in rows:
        out.write(f"{r.id}  {r.updated[:19].replace('T', ' ')}  {r.messages:3d} messages  {r.title}\n")
    return EXIT_OK


def cmd_history_export(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    ids = [args.id] if args.id else [r.id for r in core.store.list_conversations()]
    if args.id:
        core.store.conversation(args.id)
    if args.all_branches and args.format != "json":
        raise UsageError("--all-branches needs --format json (Markdown shows the branch on screen).")
    if args.format == "json":
        text = json.dumps(export_json(core.store, ids, all_branches=args.all_branches), ensure_ascii=False,
                          indent=2) + "\n"
    else:
        text = conversations_to_markdown(core.store, ids)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise HavenError(f"Haven could not write {args.out} ({exc.strerror or exc}).") from exc
        print(f"Exported {len(ids)} conversation(s) to {args.out}", file=sys.stderr)
    else:
        out.write(text)
    return EXIT_OK


def cmd_history_import(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    result = import_file(core.store, args.file)
    if args.json:
        out.write(json.dumps({"format": result.format.value, "conversations": [
            {"id": c.id, "title": c.title, "messages": c.messages} for c in result.conversations]},
            ensure_ascii=False, indent=2) + "\n")
    else:
        out.writelines(f"{c.id}\n" for c in result.conversations)
    source = "a ChatGPT export" if result.format == "chatgpt" else "a Haven export"
    print(f"Imported {len(result.conversations)} conversation(s), {result.messages} message(s), from {source}.",
          file=sys.stderr)
    return EXIT_OK


def add_history_commands(commands: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    history = commands.add_parser("history", parents=[common], help="saved conversations")
    history_commands = history.add_subparsers(dest="history_command", required=True, parser_class=parser_class)
    listing = history_commands.add_parser("list", parents=[common], help="conversations, newest first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_history_list)
    export = history_commands.add_parser("export", parents=[common], help="export one or all conversations")
    export.add_argument("id", nargs="?")
    export.add_argument("--format", choices=["md", "json"], required=True)
    export.add_argument("--out", metavar="FILE")
    export.add_argument("--all-branches", action="store_true",
                        help="JSON: every message of each conversation's tree, not only the branch on screen")
    export.set_defaults(handler=cmd_history_export)
    importing = history_commands.add_parser("import", parents=[common],
                                            help="import a Haven JSON export or a ChatGPT conversations.json")
    importing.add_argument("file", metavar="FILE", help="the export file (ChatGPT's zip works too); - reads stdin")
    importing.add_argument("--json", action="store_true", help="print the result as one JSON object")
    importing.set_defaults(handler=cmd_history_import)
