"""Haven's safety system: the safety system prompt, the input check and the output guard.

Every chat turn passes through a :class:`SafetyPolicy`: ``check_input`` before any generation, the
policy's ``system_prompt`` always first in the prompt, and an :class:`OutputGuard` that decides what
part of the generated text may be shown. A block is a returned :class:`Verdict`, never an exception.
"""

from assistant.safety.log import SafetyLog
from assistant.safety.policy import (
    GuardStep,
    OutputGuard,
    PassThroughPolicy,
    SafetyPolicy,
    Stage,
    Verdict,
    guarded_input_check,
    guarded_output_guard,
)
from assistant.safety.prompt import SAFETY_SYSTEM_PROMPT

__all__ = [
    "SAFETY_SYSTEM_PROMPT",
    "GuardStep",
    "OutputGuard",
    "PassThroughPolicy",
    "SafetyLog",
    "SafetyPolicy",
    "Stage",
    "Verdict",
    "guarded_input_check",
    "guarded_output_guard",
]
