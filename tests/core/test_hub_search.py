"""Hub search against the local hub stand-in: keyword, OWNER/NAME and URL; quantization groups; fit labels;
gated repositories; the short-lived cache; ``haven-cli models search``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.hardware import HardwareInfo
from assistant.models.fit import Fit, ModelShape, memory_needed
from assistant.models.search import GatedError, HubSearch, SearchError, SearchSort, parse_query, quant_of
from assistant.models.templates import template_problem
from tests.gguf_writer import gguf_bytes
from tests.hub_server import FakeHub, RepoMeta

TINY = "bartowski/Tiny-Chat-GGUF"
OTHER = "someone/Tiny-Coder-GGUF"
GATED = "meta-llama/Tiny-Guard-GGUF"
SPLIT = "someone/Tiny-Split-GGUF"
META = {"general.architecture": "llama", "general.name": "tiny", "llama.block_count": 2,
        "llama.context_length": 512, "llama.embedding_length": 64, "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2}
SHAPE = ModelShape(layers=2, kv_heads=2, head_dim=16)
MiB = 1024 * 1024


def model(size_mib: float, seed: int = 1) -> bytes:
    return gguf_bytes(META, int(size_mib * MiB), seed)


def computer(ram_bytes: int) -> HardwareInfo:
    return HardwareInfo(4, 8, ram_bytes, ram_bytes, "Linux", "x86_64", ())


@pytest.fixture
def hub() -> Iterator[tuple[FakeHub, str]]:
    server = FakeHub()
    for name, size in (("Tiny-Chat-Q2_K.gguf", 1), ("Tiny-Chat-Q4_K_M.gguf", 2), ("Tiny-Chat-Q8_0.gguf", 4)):
        server.add(TINY, name, model(size))
    server.add(TINY, "mmproj-Tiny-Chat-f16.gguf", model(0.5))  # a vision projector: not a model to chat with
    server.add(TINY, "README.md", b"# Tiny")
    server.repos[TINY] = RepoMeta(downloads=5000, likes=40, last_modified="2025-03-01T00:00:00.000Z",
                                  gguf={"total": 1000, "architecture": "llama", "context_length": 512})
    server.add(OTHER, "tiny-coder.Q4_K_M.gguf", model(2, seed=2))
    server.repos[OTHER] = RepoMeta(downloads=10, likes=1, last_modified="2026-01-01T00:00:00.000Z",
                                   license="mit", gguf={"chat_template": "{% for m in messages %}{% generation %}"
                                                        "{{ m.content }}{% endgeneration %}{% endfor %}"})
    server.add(GATED, "Tiny-Guard-Q4_K_M.gguf", model(1, seed=3))
    server.repos[GATED] = RepoMeta(downloads=7, gated="manual", accepted_tokens={"hf_accepted"},
                                   license="llama3.2")
    for i in (1, 2, 3):
        server.add(SPLIT, f"Q8_0/Tiny-Split-Q8_0-{i:05d}-of-00003.gguf", model(1, seed=10 + i))
    url = server.start()
    yield server, url
    server.stop()


def searcher(url: str, tmp_path: Path | None = None, token: str | None = None) -> HubSearch:
    return HubSearch(tmp_path, lambda: token, url, template_check=template_problem)


def test_queries_are_keywords_repositories_or_links() -> None:
    assert parse_query("qwen coder") .keyword == "qwen coder"
    assert parse_query("bartowski/Tiny-Chat-GGUF").repo == TINY
    assert parse_query("https://huggingface.co/bartowski/Tiny-Chat-GGUF").repo == TINY
    link = parse_query("https://huggingface.co/bartowski/Tiny-Chat-GGUF/blob/main/Tiny-Chat-Q8_0.gguf")
    assert (link.repo, link.file) == (TINY, "Tiny-Chat-Q8_0.gguf")
    assert parse_query("hf.co/bartowski/Tiny-Chat-GGUF").repo == TINY
    with pytest.raises(SearchError):
        parse_query("https://huggingface.co/onlyowner")
    assert [quant_of(n) for n in ("a-Q4_K_M.gguf", "b.Q8_0.gguf", "c-IQ4_XS.gguf", "d-bf16.gguf",
                                  "Q8_0/e-Q8_0-00001-of-00003.gguf", "plain.gguf")] == [
        "Q4_K_M", "Q8_0", "IQ4_XS", "BF16", "Q8_0", "other"]


def test_keyword_search_sorted_by_downloads_or_recency(hub) -> None:
    _server, url = hub
    by_downloads = searcher(url).search("tiny", sort=SearchSort.DOWNLOADS)
    assert [r.repo for r in by_downloads][:2] == [TINY, OTHER]
    assert {r.repo for r in by_downloads} == {TINY, OTHER, GATED, SPLIT}
    recent = searcher(url).search("tiny", sort=SearchSort.RECENT)
    assert recent[0].repo == OTHER
    assert [r.repo for r in searcher(url).search("coder")] == [OTHER]


def test_owner_name_and_url_find_the_repository_with_its_files_grouped_by_quantization(hub) -> None:
    server, url = hub
    for query in (TINY, f"https://huggingface.co/{TINY}", f"{url}/{TINY}/blob/main/Tiny-Chat-Q8_0.gguf"):
        [repo] = searcher(url).search(query)
        assert repo.repo == TINY and repo.downloads == 5000 and repo.license == "apache-2.0"
        groups = repo.quant_groups()
        assert list(groups) == ["Q2_K", "Q4_K_M", "Q8_0"], "projector and README left out, smallest first"
        q8 = groups["Q8_0"][0]
        data = server.files[(TINY, "Tiny-Chat-Q8_0.gguf")]
        assert (q8.file, q8.size_bytes, q8.sha256) == ("Tiny-Chat-Q8_0.gguf", len(data.data), data.sha256)
        assert repo.shape == (2, 2, 16) and repo.context_length == 512, "read from the model's own GGUF header"


def test_a_split_set_is_one_file_entry_with_its_parts(hub) -> None:
    server, url = hub
    [repo] = searcher(url).search(SPLIT)
    [entry] = repo.files
    assert entry.file == "Q8_0/Tiny-Split-Q8_0-00001-of-00003.gguf" and entry.quant == "Q8_0"
    assert len(entry.parts) == 3
    assert entry.size_bytes == sum(len(f.data) for (r, _), f in server.files.items() if r == SPLIT)


def test_fit_labels_are_havens_estimate_for_this_computer_and_one_file_is_recommended(hub) -> None:
    _server, url = hub
    search = searcher(url)
    [repo] = search.search(TINY)
    sizes = {f.quant: f.size_bytes for f in repo.files}
    need = {q: memory_needed(s, SHAPE, 512) for q, s in sizes.items()}
    # RAM where Q4_K_M just fits comfortably (60 %) and Q8_0 only tightly (85 %).
    ram = int(need["Q4_K_M"] / 0.6) + 1
    [labelled] = search.label([repo], computer(ram), context_length=4096)
    fits = {f.quant: f.fits for f in labelled.files}
    assert fits == {"Q2_K": Fit.YES, "Q4_K_M": Fit.YES, "Q8_0": Fit.TIGHT}
    assert {f.quant: f.memory_needed_bytes for f in labelled.files} == need
    assert [f.quant for f in labelled.files if f.recommended] == ["Q4_K_M"]
    [tiny_machine] = search.label([repo], computer(MiB), context_length=4096)
    assert all(f.fits is Fit.NO for f in tiny_machine.files) and tiny_machine.recommended is None


def test_a_gated_repository_is_a_sentence_naming_its_page_until_the_token_is_accepted(hub) -> None:
    _server, url = hub
    [repo] = searcher(url).search(GATED)
    assert repo.gated and repo.license == "llama3.2", "the licence is known before any download"
    for token in (None, "hf_not_accepted"):
        with pytest.raises(GatedError) as caught:
            searcher(url, token=token).check_access(repo)
        assert caught.value.page == f"{url}/{GATED}" and f"{url}/{GATED}" in str(caught.value)
        assert "accept the licence" in str(caught.value)
    searcher(url, token="hf_accepted").check_access(repo)  # the stored token is used


def test_a_template_haven_cannot_render_gets_a_sentence(hub) -> None:
    _server, url = hub
    [repo] = searcher(url).search(OTHER)
    assert repo.template_note is not None and "{% generation %}" in repo.template_note
    [fine] = searcher(url).search(TINY)
    assert fine.template_note is None


def test_results_are_cached_briefly(hub, tmp_path: Path) -> None:
    server, url = hub
    first = searcher(url, tmp_path).search("tiny")
    before = len(server.requests)
    again = searcher(url, tmp_path).search("tiny")
    assert again == first and len(server.requests) == before, "answered from the cache"
    assert searcher(url, tmp_path).search(TINY)[0].repo == TINY


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_cli_search_json_and_gated_sentence(hub) -> None:
    _server, url = hub
    done = cli("models", "search", "tiny", "--json", "--endpoint", url, "--limit", "5")
    assert done.returncode == 0, done.stderr
    repos = json.loads(done.stdout)
    assert {"repo", "downloads", "likes", "updated", "gated", "license", "files"} <= set(repos[0])
    assert {"file", "quant", "size_bytes", "sha256", "fits", "recommended"} <= set(repos[0]["files"][0])
    assert all(f["fits"] in ("yes", "tight", "no") for r in repos for f in r["files"])
    gated = cli("models", "search", GATED, "--endpoint", url)
    assert gated.returncode == 1 and f"{url}/{GATED}" in gated.stderr and "Traceback" not in gated.stderr


def test_a_file_picked_from_search_with_wrong_bytes_is_refused(hub) -> None:
    server, url = hub
    server.switches.corrupt = True
    done = cli("models", "download", "--repo", TINY, "--file", "Tiny-Chat-Q4_K_M.gguf", "--endpoint", url)
    assert done.returncode == 1 and "checksum" in done.stderr
    assert "tiny-chat-q4_k_m" not in cli("models", "list", "--json").stdout.lower()


def test_the_hubs_retry_messages_go_to_the_log_not_the_terminal(capfd, caplog) -> None:
    import logging

    from assistant.models.hub_logging import route_hub_logging

    route_hub_logging()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
    assert "Retrying in 1s" in caplog.text, "it reaches Haven's log handlers"
    assert "Retrying" not in capfd.readouterr().err, "and not stderr, where a command prints one sentence"


def test_an_offline_search_is_a_sentence_at_once_not_after_the_hubs_retries(monkeypatch, tmp_path: Path) -> None:
    import socket

    from huggingface_hub import HfApi

    with socket.socket() as s:  # a port where nothing listens: no connection opens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    listed: list[object] = []
    monkeypatch.setattr(HfApi, "list_models", lambda *a, **kw: listed.append(kw) or [])
    with pytest.raises(SearchError, match="offline"):
        HubSearch(cache_dir=tmp_path, endpoint=f"http://127.0.0.1:{port}").search("qwen")
    assert listed == [], "huggingface_hub's list_models (about 23 s of retries when offline) was never called"
