"""[systems.NAME] name: the words people read for a record's holding system."""

from __future__ import annotations

from pathlib import Path

import pytest

from retentiond.config import ConfigError, load_config


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "retentiond.toml"
    path.write_text(text, encoding="utf-8")
    return path, load_config(str(path), env={})


def test_system_names_are_read_and_unnamed_systems_keep_their_code(tmp_path: Path) -> None:
    """A named system reads as its name; one without a name reads as its code."""
    _, cfg = _load(tmp_path, '[systems.mis]\nname = "School MIS"\n')
    assert cfg.system_label("mis") == "School MIS"
    assert cfg.system_label("paper-store") == "paper-store"
    assert cfg.system_label(None) is None


@pytest.mark.parametrize(("text", "expected"), [
    ('[systems.mis]\nname = ""\n', "[systems.mis].name: must be a non-empty string"),
    ('[systems.mis]\nlabel = "x"\n', "[systems.mis].label: unknown key (allowed: name)"),
    ('[systems]\nmis = "School MIS"\n', "[systems.mis] must be a table"),
    ('systems = 3\n', "[systems] must hold tables"),
])
def test_bad_system_names_are_refused_naming_file_and_key(tmp_path: Path, text: str,
                                                          expected: str) -> None:
    """A wrong [systems] table is refused with the file and the key named."""
    path = tmp_path / "retentiond.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), env={})
    assert str(info.value).startswith(f"{path}: ") and expected in str(info.value)
