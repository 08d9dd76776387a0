#!/usr/bin/env python3
"""Tokens per second through ``haven-cli serve`` against the same turns in the app's own chat path.

    HAVEN_HOME=/tmp/speed .venv/bin/python scripts/serve_speed.py [--model ID] [--runs 5] [--max-tokens 200]

Both sides run the same prompts with the same settings (temperature 0, one seed per prompt, the saved
settings' threads), one at a time: first in this process through ``ChatSession`` (what the desktop app
and ``haven-cli chat`` do), then through a ``haven-cli serve`` subprocess with the official ``openai``
client, streaming. Reported per side: completion tokens over the whole request's wall time (prompt
evaluation, safety checks and, for the API, HTTP and JSON included), and for the app the decode speed
llama.cpp measured. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how bread rises, step by step, for a curious ten-year-old.",
    "Describe a walk through a busy market on a summer morning.",
    "Write a letter to a friend about learning to play the piano.",
    "Explain why the sky is blue and why sunsets are red.",
]


def in_app(model: str | None, runs: int, max_tokens: int) -> tuple[str, list[dict[str, float]]]:
    from assistant.cli.chat import open_chat_session
    from assistant.core import Core
    from assistant.events import TurnResult

    core = Core.open()
    model_id = model or core.registry.default_id(core.settings.default_model)
    session, engine = open_chat_session(core, model_id)
    session.prefill_next_turn = False
    rows = []
    try:
        for i in range(runs):
            sampling = core.sampling(temperature=0.0, max_tokens=max_tokens, seed=i + 1)
            started = time.perf_counter()
            events = list(session.send(PROMPTS[i % len(PROMPTS)], sampling=sampling, instructions=""))
            result = events[-1]
            assert isinstance(result, TurnResult)
            wall = time.perf_counter() - started
            rows.append({"completion_tokens": result.completion_tokens, "wall_s": wall,
                         "end_to_end_tps": result.completion_tokens / wall, "decode_tps": result.tokens_per_second})
    finally:
        engine.close()
        core.close()
    return model_id, rows


def through_serve(model_id: str, runs: int, max_tokens: int) -> list[dict[str, float]]:
    import openai

    env = {**os.environ, "HAVEN_API_TOKEN": "speed-check"}
    process = subprocess.Popen([sys.executable, "-m", "assistant", "serve", "--port", "0", "--model", model_id],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    rows = []
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        api = openai.OpenAI(base_url=url, api_key="speed-check", max_retries=0, timeout=600)
        for i in range(runs):
            started = time.perf_counter()
            completion = 0
            stream = api.chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}], stream=True,
                temperature=0.0, seed=i + 1, max_tokens=max_tokens, stream_options={"include_usage": True})
            for chunk in stream:
                if chunk.usage is not None:
                    completion = chunk.usage.completion_tokens
            wall = time.perf_counter() - started
            rows.append({"completion_tokens": completion, "wall_s": wall, "end_to_end_tps": completion / wall})
    finally:
        process.terminate()
        process.wait(timeout=60)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=200)
    args = parser.parse_args()
    model_id, app = in_app(args.model, args.runs, args.max_tokens)
    serve = through_serve(model_id, args.runs, args.max_tokens)

    def median(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 2)

    report = {
        "model": model_id, "runs": args.runs, "max_tokens": args.max_tokens,
        "app": {"end_to_end_tps": median(app, "end_to_end_tps"), "decode_tps": median(app, "decode_tps"),
                "completion_tokens": [r["completion_tokens"] for r in app]},
        "serve": {"end_to_end_tps": median(serve, "end_to_end_tps"),
                  "completion_tokens": [r["completion_tokens"] for r in serve]},
    }
    report["serve_over_app"] = round(report["serve"]["end_to_end_tps"] / report["app"]["end_to_end_tps"], 3)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
