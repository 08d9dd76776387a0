"""Building the safety policy a chat uses, from the settings and what is installed.

If the built-in classifiers cannot be loaded, the policy that comes back blocks everything with a
notice saying why (fail closed), instead of chatting unchecked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from assistant.chat import ChatMessage
from assistant.compute import SHARED
from assistant.errors import ConfigError, HavenError
from assistant.models.registry import ModelRegistry
from assistant.paths import AppPaths, resource_path
from assistant.safety.encoder import load_encoder
from assistant.safety.guard_model import GuardModel
from assistant.safety.haven_policy import HavenSafetyPolicy
from assistant.safety.heads import load_heads
from assistant.safety.judge import SafetyJudge
from assistant.safety.log import SafetyLog
from assistant.safety.policy import OutputGuard, SafetyPolicy, Verdict
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT
from assistant.settings import Settings

__all__ = ["GUARD_MODEL_IDS", "UnavailablePolicy", "build_policy", "installed_guard", "single_threaded_blas"]

log = logging.getLogger(__name__)

GUARD_MODEL_IDS = ("llama-guard-3-8b", "llama-guard-3-1b")  # preferred first


class UnavailablePolicy:
    """Stands in when the safety checks cannot run: every check raises, so every turn is blocked."""

    name = "unavailable"
    system_prompt = SAFETY_SYSTEM_PROMPT

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def check_input(self, history: Sequence[ChatMessage], message: str) -> Verdict:
        raise HavenError(self.reason)

    def output_guard(self, history: Sequence[ChatMessage], message: str) -> OutputGuard:
        raise HavenError(self.reason)


def single_threaded_blas() -> None:
    """One BLAS thread for the whole process. The checks multiply small matrices, which one thread does as
    fast; with more, OpenBLAS's workers stay spinning after each call on the very cores llama.cpp decodes
    on, and decoding slowed to 0.89 of raw llama-cpp-python (0.96 with one thread; docs/performance.md)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def installed_guard(registry: ModelRegistry) -> str | None:
    return next((i for i in GUARD_MODEL_IDS if registry.find(i) is not None), None)


def build_policy(paths: AppPaths, settings: Settings, registry: ModelRegistry,
                 warnings: list[str] | None = None) -> SafetyPolicy:
    single_threaded_blas()
    try:
        prompt_head, reply_head = load_heads(resource_path("safety", "heads.npz"))
        judge = SafetyJudge(load_encoder(SHARED), prompt_head, reply_head)
    except ConfigError as exc:
        log.error("safety classifiers unavailable: %s", exc)
        return UnavailablePolicy(str(exc))
    guard = None
    if settings.safety_guard_model:
        guard_id = installed_guard(registry)
        if guard_id is None:
            message = ("The guard model is switched on in settings but none is installed; download "
                       "llama-guard-3-1b or llama-guard-3-8b. Until then the built-in checks run alone.")
            log.warning(message)
            if warnings is not None:
                warnings.append(message)
        else:
            try:
                guard = GuardModel(registry.get(guard_id).path, include_s14=guard_id.endswith("8b"))
            except HavenError as exc:
                return UnavailablePolicy(f"The guard model could not be loaded ({exc}), so nothing is checked "
                                         "by it; switch it off in settings or reinstall it.")
    return HavenSafetyPolicy(judge, guard=guard, log=SafetyLog(paths.safety_log_file))
