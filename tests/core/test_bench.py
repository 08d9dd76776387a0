"""``haven-cli bench`` runs end to end and reports every field; figures are never asserted here
(benchmarks are not unit tests), only that each one was measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.bench.probes import percentile, tokens_per_second_near

FIELDS = ("throughput_ratio", "ttft_ms", "safety_overhead", "startup_window_ms", "startup_first_token_ms",
          "rss_overhead_mb", "ui_max_stall_ms", "late_vs_early_tps", "raw_tokens_per_second",
          "haven_tokens_per_second", "independent_throughput_ratio", "long_load_ms", "long_max_stall_ms",
          "long_rss_mb")


def test_percentile_interpolates_and_handles_edges() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([4.0, 1.0, 3.0, 2.0], 100) == 4.0


def test_speed_near_a_token_uses_the_median_gap() -> None:
    times = [i * 0.01 for i in range(100)] + [1.0 + i * 0.02 for i in range(1, 101)]
    assert tokens_per_second_near(times, 50) == pytest.approx(100.0)
    assert tokens_per_second_near(times, 170) == pytest.approx(50.0)


def test_bench_reports_every_field_and_leaves_the_users_data_alone(tmp_path: Path) -> None:
    env = {**os.environ, "HAVEN_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "assistant", "bench", "--json", "--quick"], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    missing = [name for name in FIELDS if report.get(name) is None]
    assert not missing, (missing, report["details"].get("ui"))
    assert set(report["ttft_ms"]) == {"1", "5", "10", "20"}
    numbers = [report[name] for name in FIELDS if name != "ttft_ms"] + list(report["ttft_ms"].values())
    assert all(isinstance(v, float) and v > 0 for v in numbers), report
    assert len(report["details"]["pairs"]) == 1 and len(report["details"]["independent_pairs"]) == 1
    assert not any(pair["blocked"] for pair in report["details"]["pairs"])
    assert report["details"]["ui_long"]["long_messages"] == 80  # the quick run's 40 exchanges, all opened
    # The benchmark's turns went to a scratch folder, not into the user's conversations.
    listing = subprocess.run([sys.executable, "-m", "assistant", "history", "list", "--json"], env=env,
                             capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(listing.stdout) == []
