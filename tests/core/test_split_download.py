"""Split GGUF models (``-00001-of-00003.gguf``): downloaded as one verified set, loaded by llama.cpp from the
first part. The set is the real starter model, split the way llama.cpp's gguf-split does."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.models.download import Downloader, DownloadError, DownloadSpec, DownloadState
from assistant.models.registry import ModelRegistry
from tests.gguf_split import split_gguf
from tests.hub_server import FakeHub

REPO = "someone/Smol-split-GGUF"
FOLDER = "Q4_1"  # bartowski-style sets live in a folder of the repository
NAMES = [f"{FOLDER}/SmolLM2-135M-Q4_1-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory, starter_path: Path) -> list[Path]:
    return split_gguf(starter_path, tmp_path_factory.mktemp("split"), "SmolLM2-135M-Q4_1", 3)


@pytest.fixture
def hub(parts: list[Path]) -> Iterator[tuple[FakeHub, str]]:
    server = FakeHub()
    for name, path in zip(NAMES, parts, strict=True):
        server.add(REPO, name, path.read_bytes())
    url = server.start()
    yield server, url
    server.stop()


def spec(url: str) -> DownloadSpec:
    return DownloadSpec(model_id="smol-split", repo=REPO, file=NAMES[0], endpoint=url, name="Smol split")


def test_a_split_set_is_downloaded_verified_and_loaded_from_its_first_part(hub, paths, parts) -> None:
    from assistant.chat import ChatMessage, Role
    from assistant.engine import Engine, GenerationStats, LoadOptions, SamplingParams

    _server, url = hub
    seen = []
    result = Downloader(paths, ModelRegistry(paths)).download(spec(url), progress=seen.append)
    assert result.state is DownloadState.COMPLETED
    installed = [paths.models_dir / f"smol-split-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    assert result.path == installed[0]
    assert [p.read_bytes() for p in installed] == [p.read_bytes() for p in parts]
    model = ModelRegistry(paths).get("smol-split")
    assert model.path == installed[0] and model.size_bytes == sum(p.stat().st_size for p in parts)
    assert [m.id for m in ModelRegistry(paths).installed()].count("smol-split") == 1, "listed once, not per part"
    totals = {p.total for p in seen if p.state is DownloadState.DOWNLOADING}
    assert totals == {model.size_bytes}, "progress counts the whole set"
    assert not list(paths.partial_downloads_dir.iterdir()), "nothing left behind"

    engine = Engine()
    try:
        info = engine.load(model.path, LoadOptions(context_length=512))
        assert info is not None
        assert info.size_bytes == model.size_bytes, "GPU offload is sized from every part, not the first alone"
        pieces = [p for p in engine.generate([ChatMessage(Role.USER, "Say hello.")],
                                             SamplingParams(temperature=0.0, seed=1, max_tokens=8))
                  if not isinstance(p, GenerationStats)]
        assert "".join(pieces).strip(), "llama.cpp found the other parts and generated text"
    finally:
        engine.close()

    ModelRegistry(paths).remove("smol-split")
    assert not any(p.exists() for p in installed), "removing the model deletes every part"


def test_a_wrong_part_is_refused_and_nothing_is_installed(hub, paths) -> None:
    server, url = hub
    server.switches.corrupt = True  # every part's bytes differ from the checksum the hub publishes
    with pytest.raises(DownloadError, match=r"Part 1 of 3 .* did not match its published checksum"):
        Downloader(paths, ModelRegistry(paths)).download(spec(url))
    assert ModelRegistry(paths).find("smol-split") is None
    assert not list(paths.models_dir.glob("*.gguf"))


def test_a_paused_set_resumes_at_the_part_it_stopped_in(hub, paths) -> None:
    server, url = hub
    first_size = len(server.files[(REPO, NAMES[0])].data)
    stop = threading.Event()
    downloader = Downloader(paths, ModelRegistry(paths))

    def pause_inside_part_two(p) -> None:
        if p.downloaded > first_size + 1024 * 1024:
            stop.set()

    paused = downloader.download(spec(url), progress=pause_inside_part_two, stop=stop)
    assert paused.state is DownloadState.PAUSED
    verified = sorted(p.name[11:16] for p in paths.partial_downloads_dir.glob("*.gguf.verified"))
    partial = [p for p in paths.partial_downloads_dir.glob("*.gguf.part") if p.stat().st_size > 0]
    assert "00001" in verified and len(partial) == 1, "part 1 verified and kept; the part in progress kept"
    server.requests.clear()
    result = downloader.download(spec(url))
    assert result.state is DownloadState.COMPLETED and result.resumed_from > first_size
    fetched = [(path, rng) for method, path, rng in server.requests if method == "GET" and "/resolve/" in path]
    assert not any(f"-{n}-of-00003" in p for p, _ in fetched for n in verified), "verified parts not fetched again"
    # Where inside the set the pause lands depends on the machine's speed (progress is reported ~10 times a second
    # and a local transfer is fast), so the part in progress is read from what was left behind, not assumed.
    in_progress = partial[0].name[11:16]
    assert f"-{in_progress}-of-00003" in fetched[0][0] and fetched[0][1], \
        "the part in progress continued with a Range request"
    later = fetched[1:]
    assert all(rng is None and int(p.rsplit("-of-", 1)[0][-5:]) > int(in_progress) for p, rng in later), \
        "only the parts after it were fetched, each from its start"
    assert len(fetched) == 3 - len(verified)


def test_a_split_model_missing_a_part_is_a_sentence_naming_it(parts, tmp_path) -> None:
    import shutil

    from assistant.engine import Engine, LoadOptions
    from assistant.engine.runtime import model_bytes
    from assistant.errors import HavenError

    copies = [Path(shutil.copy(p, tmp_path / p.name)) for p in parts]
    copies[2].unlink()
    assert model_bytes(copies[0]) == copies[0].stat().st_size + copies[1].stat().st_size
    engine = Engine()
    try:
        with pytest.raises(HavenError, match=r"first of 3 parts .* 1 of them \(Smol.*-00003-of-00003\.gguf\)"):
            engine.load(copies[0], LoadOptions(context_length=512))
    finally:
        engine.close()
