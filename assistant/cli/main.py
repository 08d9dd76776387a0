"""``haven-cli`` (and ``python -m assistant``): the headless commands of INTERFACES.md.

Exit codes: 0 done, 1 failed (one sentence on stderr; a traceback only with --debug), 2 wrong usage,
3 the chat turn was blocked by the safety system, 130 cancelled with Ctrl+C.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from assistant import __version__
from assistant.app_logging import configure_logging
from assistant.cli.bench import add_bench_command
from assistant.cli.models import add_model_commands
from assistant.cli.safety import add_safety_commands
from assistant.core import Core
from assistant.engine import Engine, SamplingParams
from assistant.errors import HavenError, UsageError
from assistant.export import conversations_to_markdown, export_json
from assistant.paths import AppPaths
from assistant.session import ChatSession, TextReleased, TurnResult, TurnStarted

__all__ = ["configure_logging", "main"]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BLOCKED, EXIT_CANCELLED = 0, 1, 2, 3, 130


# --- chat --------------------------------------------------------------------------------------


def _pick_model(core: Core, args: argparse.Namespace) -> str:
    if args.model:
        return str(args.model)
    if args.conversation:
        stored = core.store.conversation(args.conversation).model
        if any(m.id == stored for m in core.registry.installed()):
            return stored
    return core.registry.default_id(core.settings.default_model)


def _open_session(core: Core, model_id: str, *, interactive: bool = False) -> tuple[ChatSession, Engine]:
    """A session on ``model_id``, and its engine: the caller closes the engine (the session never does).

    When the llama.cpp self-test had to step down (docs/core.md), an interactive chat says so once; a
    one-shot command keeps stderr to its contract (nothing, or one sentence on failure) and the log has it."""
    engine = Engine()
    session, info = core.open_session(model_id, engine)
    if info.runtime_notice and info.runtime_checked_now:
        log.warning("%s", info.runtime_notice)
        if interactive:
            print(f"note: {info.runtime_notice}", file=sys.stderr)
    _say_warnings(core)
    return session, engine


def _sampling(core: Core, args: argparse.Namespace) -> SamplingParams:
    return core.sampling(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)


def _say_warnings(core: Core) -> None:
    for warning in core.take_warnings():
        print(f"warning: {warning}", file=sys.stderr)


def _run_turn(session: ChatSession, prompt: str, conversation: str | None, args: argparse.Namespace,
              sampling: SamplingParams, out: TextIO) -> TurnResult:
    cancel = threading.Event()
    events = session.send(prompt, conversation, cancel=cancel, sampling=sampling, instructions=args.system)
    result: TurnResult | None = None
    try:
        for event in events:
            if isinstance(event, TextReleased) and not args.json:
                out.write(event.text)
                out.flush()
            elif isinstance(event, TurnResult):
                result = event
            elif isinstance(event, TurnStarted):
                log.info("turn started in conversation %s", event.conversation_id)
    except KeyboardInterrupt:
        cancel.set()
        events.close()
        raise
    assert result is not None
    if args.json:
        out.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
    else:
        if result.blocked:
            out.write(("\n" if result.reply else "") + result.reply)
        out.write("\n")
    return result


def cmd_chat(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    if args.conversation and args.new:
        raise UsageError("Use either --conversation ID or --new, not both.")
    if args.prompt is None:
        return _interactive(core, args, out)
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not prompt.strip():
        raise UsageError("The message is empty; give a prompt, or - to read it from stdin.")
    if args.conversation:
        core.store.conversation(args.conversation)  # a clear error before loading a model
    session, engine = _open_session(core, _pick_model(core, args))
    session.prefill_next_turn = False  # one turn, then the process exits
    try:
        result = _run_turn(session, prompt, args.conversation, args, _sampling(core, args), out)
    finally:
        engine.close()
    return EXIT_BLOCKED if result.blocked else EXIT_OK


def _interactive(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    model_id = _pick_model(core, args)
    print(f"Haven {__version__} · model {model_id} · loading…", file=sys.stderr)
    session, engine = _open_session(core, model_id, interactive=True)
    conversation: str | None = args.conversation
    print("Type a message and press Enter. Ctrl+C stops a reply; /new starts a new conversation; "
          "/quit or Ctrl+D leaves.", file=sys.stderr)
    try:
        while True:
            try:
                line = input("you> ")
            except EOFError:
                out.write("\n")
                return EXIT_OK
            if line.strip() in ("/quit", "/exit"):
                return EXIT_OK
            if line.strip() == "/new":
                conversation = None
                continue
            if not line.strip():
                continue
            out.write("haven> ")
            try:
                result = _run_turn(session, line, conversation, args, _sampling(core, args), out)
                conversation = result.conversation_id
            except KeyboardInterrupt:
                out.write("\n[stopped]\n")
            except HavenError as exc:
                print(f"error: {exc}", file=sys.stderr)
    finally:
        engine.close()


# --- history -----------------------------------------------------------------------------------


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
    if args.format == "json":
        text = json.dumps(export_json(core.store, ids), ensure_ascii=False, indent=2) + "\n"
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


# --- argument parsing --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"haven-cli: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="log details to stderr and show tracebacks")
    parser = _Parser(prog="haven-cli", description="Haven: chat privately with local models.",
                     parents=[common])
    parser.add_argument("--version", action="version", version=f"haven {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    chat = commands.add_parser("chat", parents=[common], help="send a message and stream the reply")
    chat.add_argument("prompt", nargs="?", help="the message; - reads it from stdin; omit for an interactive chat")
    chat.add_argument("--model", help="an installed model id (default: the default model)")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("--conversation", metavar="ID", help="continue this conversation")
    which.add_argument("--new", action="store_true", help="start a new conversation (the default)")
    chat.add_argument("--system", metavar="TEXT", help="your own instructions, added after Haven's safety prompt")
    chat.add_argument("--max-tokens", type=int, metavar="N")
    chat.add_argument("--temperature", type=float, metavar="T")
    chat.add_argument("--seed", type=int, metavar="N")
    chat.add_argument("--json", action="store_true", help="print one JSON object when the turn ends")
    chat.set_defaults(handler=cmd_chat)

    history = commands.add_parser("history", parents=[common], help="saved conversations")
    history_commands = history.add_subparsers(dest="history_command", required=True, parser_class=_Parser)
    listing = history_commands.add_parser("list", parents=[common], help="conversations, newest first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_history_list)
    export = history_commands.add_parser("export", parents=[common], help="export one or all conversations")
    export.add_argument("id", nargs="?")
    export.add_argument("--format", choices=["md", "json"], required=True)
    export.add_argument("--out", metavar="FILE")
    export.set_defaults(handler=cmd_history_export)

    add_model_commands(commands, common, _Parser)
    add_safety_commands(commands, common, _Parser)
    add_bench_command(commands, common, _Parser)
    return parser


def _validate(args: argparse.Namespace) -> None:
    if getattr(args, "max_tokens", None) is not None and args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1.")
    if getattr(args, "temperature", None) is not None and not 0.0 <= args.temperature <= 2.0:
        raise UsageError("--temperature must be between 0 and 2.")


def main(argv: Sequence[str] | None = None) -> int:
    # The frozen haven-cli is also the llama.cpp self-test's child process (assistant.engine.selftest).
    multiprocessing.freeze_support()
    args = build_parser().parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    core: Core | None = None
    try:
        _validate(args)
        paths = AppPaths.from_environment()
        configure_logging(paths, debug)
        core = Core.open()
        _say_warnings(core)
        code: int = args.handler(core, args, sys.stdout)
        return code
    except UsageError as exc:
        print(f"haven-cli: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except HavenError as exc:
        if debug:
            log.exception("command failed")
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\ncancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:
        log.exception("unexpected error")
        if debug:
            raise
        print(f"error: Haven hit an unexpected problem ({type(exc).__name__}: {exc}). Details are in the "
              "log; run again with --debug to see them.", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if core is not None:
            core.close()


if __name__ == "__main__":
    sys.exit(main())
