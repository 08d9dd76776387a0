"""``haven-cli``'s exit codes (INTERFACES.md): 0 done, 1 failed (one sentence on stderr; a traceback only
with --debug), 2 wrong usage, 3 the chat turn was blocked by the safety system, 130 cancelled (Ctrl+C)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BLOCKED, EXIT_CANCELLED = 0, 1, 2, 3, 130

__all__ = ["EXIT_BLOCKED", "EXIT_CANCELLED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE"]
