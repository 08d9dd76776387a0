"""``haven-cli bench``: the harness (``harness``), its instruments (``probes``) and the bare library it is
compared with (``raw``, the one importer of ``llama_cpp`` outside the engine)."""

from assistant.bench.harness import BenchOptions, BenchReport, run_bench

__all__ = ["BenchOptions", "BenchReport", "run_bench"]
