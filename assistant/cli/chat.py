"""``haven-cli chat``: one turn from the command line or stdin, or an interactive chat.

A reasoning model's thinking is never on stdout in text mode (stdout is the answer, for pipes); the
interactive chat shows it on stderr as it is released, and ``--json`` has it in ``reasoning``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from typing import Any, TextIO

from assistant import __version__
from assistant.cli.exit_codes import EXIT_BLOCKED, EXIT_OK
from assistant.core import Core
from assistant.engine import Engine, SamplingParams
from assistant.errors import HavenError, UsageError
from assistant.remote import RemoteEngine
from assistant.session import ChatSession, ReasoningDone, ReasoningReleased, TextReleased, TurnResult, TurnStarted

__all__ = ["add_chat_command", "open_chat_session", "say_warnings"]

log = logging.getLogger(__name__)


def _pick_model(core: Core, args: argparse.Namespace) -> str:
    if args.model:
        return str(args.model)
    if args.conversation:
        stored = core.store.conversation(args.conversation).model
        if any(m.id == stored for m in core.registry.installed()) or core.is_remote(stored):
            return stored
    return core.registry.default_id(core.settings.default_model)


def open_chat_session(core: Core, model_id: str, *, interactive: bool = False
                      ) -> tuple[ChatSession, Engine | RemoteEngine]:
    """A session on ``model_id`` (an installed model, or ``NAME:MODEL`` on a server added with ``haven-cli
    remote add``), and its engine: the caller closes the engine (the session never does).

    When the llama.cpp self-test had to step down (docs/core.md), an interactive chat says so once; a
    one-shot command keeps stderr to its contract (nothing, or one sentence on failure) and the log has it."""
    if core.is_remote(model_id):
        remote_session, remote = core.open_remote_session(model_id)
        say_warnings(core)
        return remote_session, remote
    engine = Engine()
    session, info = core.open_session(model_id, engine)
    if info.runtime_notice and info.runtime_checked_now:
        log.warning("%s", info.runtime_notice)
        if interactive:
            print(f"note: {info.runtime_notice}", file=sys.stderr)
    say_warnings(core)
    return session, engine


def _sampling(core: Core, args: argparse.Namespace) -> SamplingParams:
    return core.sampling(temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed)


def say_warnings(core: Core) -> None:
    for warning in core.take_warnings():
        print(f"warning: {warning}", file=sys.stderr)


def _run_turn(session: ChatSession, prompt: str, conversation: str | None, args: argparse.Namespace,
              sampling: SamplingParams, out: TextIO, *, show_reasoning: bool = False) -> TurnResult:
    cancel = threading.Event()
    events = session.send(prompt, conversation, cancel=cancel, sampling=sampling, instructions=args.system)
    result: TurnResult | None = None
    try:
        for event in events:
            if isinstance(event, TextReleased) and not args.json:
                out.write(event.text)
                out.flush()
            elif isinstance(event, ReasoningReleased) and show_reasoning:
                sys.stderr.write(event.text)
                sys.stderr.flush()
            elif isinstance(event, ReasoningDone) and show_reasoning:
                print(f"\n[thought for {event.duration_ms / 1000:.1f} s]", file=sys.stderr)
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
    session, engine = open_chat_session(core, _pick_model(core, args))
    session.prefill_next_turn = False  # one turn, then the process exits
    try:
        result = _run_turn(session, prompt, args.conversation, args, _sampling(core, args), out)
    finally:
        engine.close()
    return EXIT_BLOCKED if result.blocked else EXIT_OK


def _interactive(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    model_id = _pick_model(core, args)
    print(f"Haven {__version__} · model {model_id} · loading…", file=sys.stderr)
    session, engine = open_chat_session(core, model_id, interactive=True)
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
                result = _run_turn(session, line, conversation, args, _sampling(core, args), out,
                                   show_reasoning=not args.json)
                conversation = result.conversation_id
            except KeyboardInterrupt:
                out.write("\n[stopped]\n")
            except HavenError as exc:
                print(f"error: {exc}", file=sys.stderr)
    finally:
        engine.close()


def add_chat_command(commands: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    chat = commands.add_parser("chat", parents=[common], help="send a message and stream the reply")
    chat.add_argument("prompt", nargs="?", help="the message; - reads it from stdin; omit for an interactive chat")
    chat.add_argument("--model", help="an installed model id, or NAME:MODEL on a server added with `haven-cli "
                      "remote add` (default: the default model)")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("--conversation", metavar="ID", help="continue this conversation")
    which.add_argument("--new", action="store_true", help="start a new conversation (the default)")
    chat.add_argument("--system", metavar="TEXT", help="your own instructions, added after Haven's safety prompt")
    chat.add_argument("--max-tokens", type=int, metavar="N")
    chat.add_argument("--temperature", type=float, metavar="T")
    chat.add_argument("--seed", type=int, metavar="N")
    chat.add_argument("--json", action="store_true", help="print one JSON object when the turn ends")
    chat.set_defaults(handler=cmd_chat)
