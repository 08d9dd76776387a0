"""Settings: defaults, atomic writes, and corrupt or wrong-typed files backed up, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

from assistant.settings import Settings, Theme, load_settings, save_settings


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path / "settings.json")
    assert loaded.settings == Settings() and loaded.warnings == ()


def test_round_trip_with_schema_version_and_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    chosen = Settings(default_model="x", temperature=0.2, theme=Theme.DARK, user_instructions="Be brief.")
    save_settings(path, chosen)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["theme"] == "dark"
    assert load_settings(path).settings == chosen
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_corrupt_json_is_backed_up_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"temperature": 0.3, ')
    loaded = load_settings(path)
    assert loaded.settings == Settings()
    assert loaded.warnings and "went back to the defaults" in loaded.warnings[0]
    backups = list(tmp_path.glob("settings.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text() == '{"temperature": 0.3, '
    assert json.loads(path.read_text())["schema_version"] == 1


def test_wrong_types_are_backed_up_and_replaced(tmp_path: Path) -> None:
    for bad in ('["a list"]', '{"temperature": "hot"}', '{"max_tokens": 1.5}', '{"theme": "neon"}',
                '{"schema_version": "one"}', '{"top_k": true}', b'{"theme": "\xff\xfe"}'):
        path = tmp_path / "settings.json"
        if isinstance(bad, bytes):
            path.write_bytes(bad)  # not UTF-8
        else:
            path.write_text(bad)
        loaded = load_settings(path)
        assert loaded.settings == Settings(), bad
        assert loaded.warnings, bad


def test_out_of_range_values_are_clamped_keeping_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"temperature": 9, "max_tokens": 64, "context_length": 10}))
    loaded = load_settings(path)
    assert loaded.settings.temperature == 2.0 and loaded.settings.max_tokens == 64
    assert loaded.settings.context_length == 512
    assert len(loaded.warnings) == 2


def test_unknown_keys_from_a_newer_version_survive_a_save(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 1, "future_option": [1, 2]}))
    loaded = load_settings(path)
    save_settings(path, loaded.settings.replace(temperature=0.5))
    assert json.loads(path.read_text())["future_option"] == [1, 2]


def test_unwritable_folder_is_a_sentence(tmp_path: Path) -> None:
    import pytest

    from assistant.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="could not save"):
        save_settings(blocker / "settings.json", Settings())
