#!/usr/bin/env python3
"""Decode speed of one Haven turn with the real safety policy, with a pass-through policy, and of raw
llama-cpp-python, interleaved in one process with a fresh seed per round (six rounds, the starter model):
how much the safety checks themselves cost generation, apart from the bench's between-run noise.

    .venv/bin/python scripts/decode_ab.py
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.bench.raw import RawBaseline
from assistant.chat import ChatMessage, Role, system_message
from assistant.core import load_options, sampling_params
from assistant.engine import Engine
from assistant.models.registry import ModelRegistry, find_starter_model
from assistant.paths import AppPaths
from assistant.safety.factory import build_policy
from assistant.safety.policy import PassThroughPolicy, SafetyPolicy
from assistant.session import ChatSession, TurnResult
from assistant.settings import Settings
from assistant.store import Store

PROMPT = "Write a detailed story about a lighthouse keeper and her cat."
ROUNDS = 6


def main() -> int:
    starter = find_starter_model()
    if starter is None:
        print("the starter model is not installed: run `python3 scripts/dev.py install`", file=sys.stderr)
        return 1
    paths = AppPaths.from_environment({"HAVEN_HOME": tempfile.mkdtemp(prefix="haven-ab-")}).ensure()
    engine = Engine()
    info = engine.load(starter, load_options(Settings(), None))
    store = Store(paths.database_file)
    haven = build_policy(paths, Settings(), ModelRegistry(paths))
    sampling = sampling_params(Settings(), max_tokens=160, seed=1)
    tokens = engine.tokenize_chat([system_message(haven.system_prompt), ChatMessage(Role.USER, PROMPT)])
    raw = RawBaseline(info.path, n_ctx=info.context_length, threads=info.threads, gpu_layers=0,
                      extra_bufts=info.extra_buffer_types)
    speeds: dict[str, list[float]] = {"raw": [], "haven": [], "pass-through": []}
    policies: dict[str, SafetyPolicy] = {"haven": haven, "pass-through": PassThroughPolicy()}
    try:
        for round_ in range(ROUNDS):
            seed = 500 + round_
            params = dataclasses.replace(sampling, seed=seed)
            speeds["raw"].append(raw.complete(tokens, params, seed).tokens_per_second)
            for name, policy in policies.items():
                session = ChatSession(engine, store, policy, model_id="ab", sampling=params)
                result = [e for e in session.send(PROMPT) if isinstance(e, TurnResult)][-1]
                speeds[name].append(result.tokens_per_second)
    finally:
        engine.close()
        raw.close()
        store.close()
    for name, values in speeds.items():
        print(f"{name:13s} {statistics.median(values):6.1f} tokens/s  ({', '.join(f'{v:.1f}' for v in values)})")
    for name in policies:
        ratio = statistics.median(h / r for h, r in zip(speeds[name], speeds["raw"], strict=True))
        print(f"{name} / raw: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
