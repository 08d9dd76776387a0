"""``haven-cli safety ...``: audit the safety system (check, eval) and see or clear its log."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import assistant
from assistant.errors import HavenError, UsageError
from assistant.safety import guarded_input_check, guarded_output_guard
from assistant.safety.log import SafetyLog
from assistant.safety.policy import SafetyPolicy, Stage, Verdict

if TYPE_CHECKING:
    from assistant.core import Core

__all__ = ["add_safety_commands", "eval_data_folders", "output_verdict"]

NOT_IN_INSTALLED_COPY = ("Haven's evaluation data is not part of an installed copy; run it from a source checkout "
                         "or pass --own-data and --public-data.")


def output_verdict(policy: SafetyPolicy, prompt: str, response: str) -> Verdict:
    """Exactly what the chat does with a reply: stream it through the output guard, then finish."""
    guard = guarded_output_guard(policy, [], prompt)
    words = response.split(" ")
    for i, word in enumerate(words):
        step = guard.feed(word + (" " if i < len(words) - 1 else ""))
        if step.verdict is not None and not step.verdict.allowed:
            return step.verdict
    step = guard.finish()
    if step.verdict is not None and not step.verdict.allowed:
        return step.verdict
    return Verdict.allow(Stage.OUTPUT)


def _lines(source: TextIO, name: str) -> Iterator[tuple[int, str]]:
    """Numbered lines; text that is not UTF-8 gives a sentence, not a traceback."""
    try:
        yield from enumerate(source, 1)
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name} is not UTF-8 text (it holds the bytes {exc.object[exc.start:exc.end]!r}); "
                         "save it as UTF-8 and check it again.") from exc


def cmd_check(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    policy = core.safety_policy()
    for warning in core.take_warnings():
        print(f"warning: {warning}", file=sys.stderr)
    try:
        source = sys.stdin if args.jsonl == "-" else open(args.jsonl, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"Haven cannot read {args.jsonl} ({exc.strerror or exc}).") from exc
    with source:
        for number, line in _lines(source, "the input" if args.jsonl == "-" else args.jsonl):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                prompt = item["prompt"]
                if not isinstance(prompt, str):
                    raise TypeError("prompt must be text")
            except (ValueError, KeyError, TypeError) as exc:
                raise UsageError(f"Line {number} is not an object with a \"prompt\" string ({exc}).") from exc
            started = time.perf_counter()
            response = item.get("response")
            if isinstance(response, str):
                verdict = output_verdict(policy, prompt, response)
            else:
                verdict = guarded_input_check(policy, [], prompt)
            ms = (time.perf_counter() - started) * 1000
            out.write(json.dumps({"id": item.get("id"), "allowed": verdict.allowed, "stage": verdict.stage.value,
                                  "category": verdict.category, "ms": round(ms, 3)}) + "\n")
    return 0


def eval_data_folders(own: Path | None, public: Path | None) -> tuple[Path, Path]:
    """The folders ``safety eval`` reads: the ones given, else a source checkout's ``training/data`` (Haven's
    own sets) and ``../shared/safety-data`` (the public ones; ``HAVEN_SAFETY_DATA`` overrides it). The
    checkout is the folder above the ``assistant`` package; an installed or frozen Haven has no such data."""
    checkout = Path(assistant.__file__).resolve().parent.parent
    if own is None:
        own = checkout / "training" / "data"
        if not own.is_dir():
            raise HavenError(NOT_IN_INSTALLED_COPY)
    elif not own.is_dir():
        raise UsageError(f"--own-data {own} is not a folder; pass the folder of Haven's own safety data sets "
                         "(training/data in a source checkout).")
    if public is None:
        env = os.environ.get("HAVEN_SAFETY_DATA")
        public = Path(env) if env else checkout.parent / "shared" / "safety-data"
        if not public.is_dir():
            named = " (named by HAVEN_SAFETY_DATA)" if env else ""
            raise HavenError(f"The public safety data sets are not at {public}{named}; pass --public-data DIR.")
    elif not public.is_dir():
        raise UsageError(f"--public-data {public} is not a folder; pass the folder of the public safety data "
                         "sets (../shared/safety-data beside a source checkout).")
    return own, public


def cmd_eval(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    from assistant.safety.encoder import load_encoder
    from assistant.safety.eval import evaluate
    from assistant.safety.eval.vectors import VectorStore

    own, public = eval_data_folders(args.own_data, args.public_data)
    policy = core.safety_policy()
    for warning in core.take_warnings():
        print(f"warning: {warning}", file=sys.stderr)
    store = VectorStore(core.paths.cache_dir / "safety-vectors.npz", load_encoder())

    def progress(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):  # refitting heads: every core
        report = evaluate(public, own, store, lambda text: guarded_input_check(policy, [], text),
                          lambda prompt, reply: output_verdict(policy, prompt, reply), progress)
    if args.json:
        out.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        return 0
    for key, value in report["summary"].items():
        out.write(f"{key:52s} {value}\n")
    for stage in ("input", "output"):
        if stage not in report:
            continue
        out.write(f"\n{stage} (threshold {report[stage]['threshold']}): blocked, left out / random split\n")
        split = {(r["group"], r["kind"]): r for r in report[stage]["random_split"]["sources"]}
        for row in report[stage]["loso"]["sources"]:
            other = split.get((row["group"], row["kind"]))
            second = f"{other['rate']:.3f}" if other else "  -  "
            out.write(f"  {row['kind']:9s} {row['group']:28s} {row['items']:6d}  {row['rate']:.3f}  {second}\n")
    return 0


def cmd_log(core: Core, args: argparse.Namespace, out: TextIO) -> int:
    safety_log = SafetyLog(core.paths.safety_log_file)
    if args.clear:
        safety_log.clear()
        out.write("The safety log was cleared.\n")
        return 0
    entries = safety_log.entries()
    if args.json:
        out.write(json.dumps([asdict(e) for e in entries], indent=2) + "\n")
        return 0
    if not entries:
        out.write("The safety log is empty.\n")
    for e in entries:
        verdict = "allowed" if e.allowed else f"BLOCKED {e.category or ''}"
        score = "" if e.score is None else f" score {e.score:.3f}"
        out.write(f"{e.time}  {e.stage:6s} {verdict:12s} {e.classifier}{score}\n")
    return 0


def add_safety_commands(commands: Any, common: argparse.ArgumentParser, parser_class: type) -> None:
    safety = commands.add_parser("safety", parents=[common], help="audit the safety system")
    sub = safety.add_subparsers(dest="safety_command", required=True, parser_class=parser_class)
    check = sub.add_parser("check", parents=[common], help="check prompts or responses from a JSON Lines file")
    check.add_argument("--jsonl", required=True, metavar="FILE|-")
    check.set_defaults(handler=cmd_check)
    evaluation = sub.add_parser("eval", parents=[common],
                                help="leave-one-source-out and random-split figures, and the checks' latency")
    evaluation.add_argument("--json", action="store_true")
    evaluation.add_argument("--own-data", type=Path, metavar="DIR",
                            help="Haven's own safety data sets (default: a source checkout's training/data)")
    evaluation.add_argument("--public-data", type=Path, metavar="DIR",
                            help="the public safety data sets (default: $HAVEN_SAFETY_DATA, else ../shared/safety-data "
                                 "beside a source checkout)")
    # The option's earlier name, kept so that existing commands still work.
    evaluation.add_argument("--data", type=Path, dest="public_data", help=argparse.SUPPRESS)
    evaluation.set_defaults(handler=cmd_eval)
    history = sub.add_parser("log", parents=[common], help="the private record of safety verdicts")
    history.add_argument("--json", action="store_true")
    history.add_argument("--clear", action="store_true")
    history.set_defaults(handler=cmd_log)
