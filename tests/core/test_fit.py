"""Memory estimates and fit labels, checked against the starter model's real metadata and llama.cpp."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from assistant.engine import Engine, LoadOptions
from assistant.hardware import GpuInfo, HardwareInfo
from assistant.models.catalog import load_catalog, parse_catalog, recommend
from assistant.models.fit import RUNTIME_OVERHEAD_BYTES, Fit, ModelShape, fit_for, kv_cache_bytes, memory_needed
from assistant.models.gguf import read_gguf

GiB = 1024**3


def machine(ram_gib: float, gpus: tuple[GpuInfo, ...] = ()) -> HardwareInfo:
    return HardwareInfo(4, 8, int(ram_gib * GiB), int(ram_gib * GiB), "Linux", "x86_64", gpus)


def test_shape_from_the_starter_models_metadata(starter_path: Path) -> None:
    assert ModelShape.from_gguf_metadata(read_gguf(starter_path).metadata) == ModelShape(30, 3, 64)


def test_kv_estimate_matches_what_llama_cpp_allocates(starter_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    shape = ModelShape.from_gguf_metadata(read_gguf(starter_path).metadata)
    assert shape is not None
    with caplog.at_level(logging.DEBUG, logger="assistant.llama_cpp"), Engine() as engine:
        engine.load(starter_path, LoadOptions(context_length=1024))
    reported = next(float(m.group(1)) for r in caplog.records
                    if (m := re.search(r"llama_kv_cache: size =\s+([\d.]+) MiB", r.getMessage())))
    assert kv_cache_bytes(shape, 1024) == pytest.approx(reported * 1024**2, rel=0.01)


def test_memory_needed_adds_weights_cache_and_overhead() -> None:
    shape = ModelShape(32, 8, 128)  # Llama 3.1 8B
    assert kv_cache_bytes(shape, 4096) == 512 * 1024**2  # 0.5 GiB of f16 cache at 4k tokens
    assert memory_needed(4_920_739_232, shape, 4096) == 4_920_739_232 + 512 * 1024**2 + RUNTIME_OVERHEAD_BYTES


@pytest.mark.parametrize(("ram", "label"), [(16, Fit.YES), (10, Fit.YES), (8, Fit.TIGHT), (6, Fit.NO)])
def test_labels_for_an_8b_model(ram: float, label: Fit) -> None:
    need = memory_needed(4_920_739_232, ModelShape(32, 8, 128), 4096)  # ~5.9 GB
    assert fit_for(need, machine(ram)) is label


def test_a_gpu_with_enough_memory_makes_it_fit() -> None:
    need = memory_needed(7_865_956_224, ModelShape(40, 40, 128), 4096)
    small_ram = machine(8, (GpuInfo("RTX", "cuda", 24 * GiB, 23 * GiB),))
    assert fit_for(need, small_ram) is Fit.NO
    assert fit_for(need, small_ram, gpu_offload=True) is Fit.YES


def test_recommendation_is_the_preferred_model_that_fits() -> None:
    catalog = load_catalog()
    assert recommend(catalog.entries, machine(32), 4096).id == "qwen3-14b"  # the 2025 picks rank first
    small = recommend(catalog.entries, machine(4), 4096)
    assert small is not None and small.display_size < 2 * GiB and not small.is_guard
    assert recommend(catalog.entries, machine(0.5), 4096) is None


def test_catalog_entries_are_complete_and_safe() -> None:
    catalog = load_catalog()
    assert catalog.problems == ()
    for entry in catalog.entries:
        assert entry.repo and entry.file.endswith(".gguf") and entry.license_name and entry.context_length
        assert entry.sha256 is None or len(entry.sha256) == 64
    guards = [e.id for e in catalog.entries if e.is_guard]
    assert guards == ["llama-guard-3-1b", "llama-guard-3-8b"]
    assert catalog.get("llama-2-7b-chat").chat_format == "llama-2"


def test_hostile_catalog_fields_are_left_out_not_used() -> None:
    good = {"id": "ok", "name": "OK", "file": "ok.gguf", "approx_size_bytes": 1, "parameters": "1B",
            "quant": "Q4", "context_length": 10, "license_name": "MIT"}
    hostile = [
        {**good, "id": "../etc"}, {**good, "file": "../../evil.gguf"}, {**good, "file": "a/b.gguf"},
        {**good, "repo": "no-slash"}, {**good, "sha256": "xyz"}, {**good, "context_length": -1},
        {**good, "tags": "chat"}, "not an object", {**good, "id": "ok"},
    ]
    catalog = parse_catalog({"models": [good, *hostile]})
    assert [e.id for e in catalog.entries] == ["ok"]
    assert len(catalog.problems) == len(hostile)
    assert parse_catalog([1, 2]).entries == ()
