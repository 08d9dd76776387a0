"""Hostile model files: real copies of the starter model with a code-running chat template or absurd
metadata. (Truncated and non-GGUF files: tests/core/test_engine.py::test_broken_files_are_refused_with_a_sentence
and tests/core/test_models_cli.py::test_import_validates_sanitizes_and_can_be_removed.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.chat import ChatMessage, Role
from assistant.engine import Engine, GenerationStats, LoadOptions, SamplingParams
from assistant.engine.chat_format import ChatFormatter, TokenNames
from assistant.errors import ModelError
from assistant.hardware import HardwareInfo
from assistant.models.catalog import Catalog
from assistant.models.gguf import read_gguf
from assistant.models.listing import model_rows
from assistant.models.registry import ModelRegistry
from assistant.paths import AppPaths
from tests.gguf_patch import patched_copy

TEMPLATE = "tokenizer.chat_template"
NAMES = TokenNames(bos_id=1, eos_id=2, bos_text="<s>", eos_text="</s>")

# Each tries to reach Python internals, the file system or the OS from the chat template; {marker} is a
# file the attack would create, so "nothing ran" is checked, not assumed.
ATTACKS = [
    "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}",
    "{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}",
    "{{ self.__init__.__globals__.__builtins__.open('{marker}', 'w').write('x') }}",
    "{{ raise_exception.__globals__['__builtins__']['__import__']('os').system('touch {marker}') }}",
    "{{ strftime_now.__globals__['datetime'] }}{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{% if c.__name__ == 'Popen' %}"
    "{{ c(['touch', '{marker}']) }}{% endif %}{% endfor %}",
    "{{ '{0.__class__.__init__.__globals__}'.format(cycler) }}{{ messages.append(1) }}",
    "{% include '/etc/passwd' %}",
    "{% import 'os' as os %}{{ os.system('touch {marker}') }}",
    "{{ messages[0].update({'role': 'system'}) }}{{ messages.pop() }}",
]


def ask(text: str) -> list[ChatMessage]:
    return [ChatMessage(Role.SYSTEM, "Be brief."), ChatMessage(Role.USER, text)]


def reply(engine: Engine, text: str = "Say hello.") -> str:
    items = list(engine.generate(ask(text), SamplingParams(temperature=0.0, seed=1, max_tokens=8)))
    assert isinstance(items[-1], GenerationStats)
    return "".join(i for i in items if isinstance(i, str))


@pytest.mark.parametrize("attack", ATTACKS)
def test_no_template_attack_runs_anything(tmp_path: Path, attack: str) -> None:
    marker = tmp_path / "pwned"
    formatter = ChatFormatter("jinja", attack.replace("{marker}", str(marker)), {}, NAMES, add_bos=False)
    with pytest.raises(ModelError, match="chat template") as refused:
        formatter.render([ChatMessage(Role.USER, "hi")])
    assert str(refused.value).endswith(".") and "root:" not in str(refused.value)
    assert not marker.exists()


def test_a_gguf_whose_template_tries_to_run_code_is_refused_and_nothing_runs(tmp_path: Path,
                                                                             starter_path: Path) -> None:
    """The same, end to end: from the file's metadata through llama.cpp's loader to Haven's renderer."""
    marker = tmp_path / "pwned"
    with Engine() as engine:
        for attack in (ATTACKS[0], ATTACKS[7]):
            hostile = patched_copy(starter_path, tmp_path / "hostile.gguf",
                                   strings={TEMPLATE: attack.replace("{marker}", str(marker))})
            engine.load(hostile, LoadOptions(context_length=512))
            with pytest.raises(ModelError, match="chat template"):
                reply(engine)
            assert not marker.exists(), attack
        # The engine is unharmed: the real model loads and answers.
        engine.load(starter_path, LoadOptions(context_length=512))
        assert reply(engine).strip()


def test_a_template_that_is_not_valid_jinja_is_refused_with_a_sentence(tmp_path: Path, starter_path: Path) -> None:
    broken = patched_copy(starter_path, tmp_path / "broken.gguf", strings={TEMPLATE: "{% for m in messages %}{{ m }"})
    with Engine() as engine:
        with pytest.raises(ModelError, match=r"broken\.gguf"):
            engine.load(broken, LoadOptions(context_length=512))
        assert engine.model is None
        engine.load(starter_path, LoadOptions(context_length=512))
        assert reply(engine).strip()


def test_the_cli_refuses_the_hostile_model_with_one_sentence(tmp_path: Path,
                                                                          starter_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = patched_copy(starter_path, tmp_path / "hostile.gguf",
                           strings={TEMPLATE: ATTACKS[0].replace("{marker}", str(marker))})
    imported = cli("models", "import", str(hostile), "--name", "hostile")
    assert imported.returncode == 0, imported.stderr
    refused = cli("chat", "--model", "hostile", "--max-tokens", "8", "Hello")
    assert refused.returncode == 1 and refused.stderr.startswith("error: ") and "chat template" in refused.stderr
    assert "Traceback" not in refused.stderr and not marker.exists()
    assert json.loads(cli("history", "list", "--json").stdout) == [], "a refused turn leaves no trace"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("layers", [0, 513, 4_000_000_000])
def test_an_impossible_layer_count_is_refused(tmp_path: Path, starter_path: Path, layers: int) -> None:
    absurd = patched_copy(starter_path, tmp_path / "absurd.gguf", numbers={"llama.block_count": layers})
    with pytest.raises(ModelError, match="layers"):
        read_gguf(absurd)
    with pytest.raises(ModelError, match="layers"):
        ModelRegistry(AppPaths.from_environment().ensure()).import_file(absurd)


def test_a_zero_layer_model_is_refused_before_llama_cpp_sees_it(tmp_path: Path, starter_path: Path) -> None:
    """llama.cpp aborts the whole process on it (GGML_ASSERT on n_layer). Placed in the models folder by hand,
    past the import check; run in a subprocess, so a regression fails this test instead of the test run."""
    models = AppPaths.from_environment().ensure().models_dir
    patched_copy(starter_path, models / "absurd.gguf", numbers={"llama.block_count": 0})
    chat = cli("chat", "--model", "absurd", "--max-tokens", "4", "Hello")
    assert chat.returncode == 1, chat.stderr
    assert chat.stderr.startswith("error: ") and "layers" in chat.stderr and "Traceback" not in chat.stderr


def test_a_ten_million_token_context_is_clamped(tmp_path: Path, starter_path: Path) -> None:
    absurd = patched_copy(starter_path, tmp_path / "long.gguf", numbers={"llama.context_length": 10_000_000})
    with Engine() as engine:
        info = engine.load(absurd, LoadOptions(context_length=2048))
        assert info.trained_context_length == 10_000_000 and info.context_length == 2048
        assert reply(engine).strip()
    # The memory estimate uses the context that will really be allocated, not the file's claim.
    registry = ModelRegistry(AppPaths.from_environment().ensure())
    registry.import_file(absurd, "long")
    hardware = HardwareInfo(2, 2, 8 * 1024**3, 8 * 1024**3, "Linux", "x86_64", ())
    rows = {r.id: r for r in model_rows(Catalog(()), registry, hardware, context_length=2048,
                                        default_id="long")}
    assert rows["long"].ram_required_bytes == rows["smollm2-135m-instruct"].ram_required_bytes
    assert rows["long"].fits.value == "yes"
