"""``haven-cli`` (and ``python -m assistant``): the parser, the exit codes (``exit_codes.py``) and the one
place a command's failure becomes a sentence. Each command group lives in its own module: ``chat``,
``history``, ``models``, ``safety``, ``bench``, ``serve``, ``remote``.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import sys
from collections.abc import Sequence

from assistant import __version__
from assistant.app_logging import configure_logging
from assistant.cli.bench import add_bench_command
from assistant.cli.chat import add_chat_command, say_warnings
from assistant.cli.exit_codes import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from assistant.cli.history import add_history_commands
from assistant.cli.models import add_model_commands
from assistant.cli.remote import add_remote_commands
from assistant.cli.safety import add_safety_commands
from assistant.cli.serve import add_serve_command
from assistant.core import Core
from assistant.errors import HavenError, UsageError
from assistant.paths import AppPaths

__all__ = ["configure_logging", "main"]

log = logging.getLogger(__name__)



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

    add_chat_command(commands, common, _Parser)
    add_history_commands(commands, common, _Parser)
    add_model_commands(commands, common, _Parser)
    add_safety_commands(commands, common, _Parser)
    add_bench_command(commands, common, _Parser)
    add_serve_command(commands, common, _Parser)
    add_remote_commands(commands, common, _Parser)
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
        say_warnings(core)
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
