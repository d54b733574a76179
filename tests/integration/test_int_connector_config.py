"""load_connectors: [connectors.NAME] tables, secrets from files, plug-in kinds."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from retentiond.config import Config, ConfigError
from retentiond.connectors import (
    ConnectorRef,
    Export,
    FilesystemConnector,
    ManualConnector,
    PermanentConnectorError,
    ReturnConnector,
    SqlConnector,
    load_connectors,
)


def cfg(tmp_path, connectors):
    return Config(source=str(tmp_path / "retentiond.toml"), raw={"connectors": connectors})


def test_builtin_kinds_are_built_and_mapped_to_systems(tmp_path):
    """Each kind is built; systems default to the connector's name; a return finds sources."""
    (tmp_path / "files").mkdir()
    (tmp_path / "mis.url").write_text("sqlite:///holding.db\n")
    registry = load_connectors(cfg(tmp_path, {
        "mis": {"kind": "sql", "url_file": "mis.url", "table": "pupils", "key_column": "upn"},
        "docs": {"kind": "filesystem", "root": "files", "systems": ["docs", "scans"]},
        "paper": {"kind": "manual"},
        "returns": {"kind": "return", "drop_dir": "drop"},
    }))
    assert isinstance(registry.for_system("mis"), SqlConnector)
    assert registry.for_system("scans") is registry.for_system("docs")
    assert isinstance(registry.for_system("docs"), FilesystemConnector)
    assert isinstance(registry.for_system("paper"), ManualConnector)
    assert isinstance(registry.returner(), ReturnConnector)
    assert registry.returner().source(ConnectorRef("scans", "x", "R")).name == "docs"
    with pytest.raises(PermanentConnectorError, match="no connector is configured"):
        registry.for_system("elsewhere")


def test_url_is_read_from_the_systemd_credentials_directory(tmp_path, monkeypatch):
    """url_credential reads $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=)."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mis-url").write_text(f"sqlite:///{tmp_path / 'h.db'}\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    registry = load_connectors(cfg(tmp_path, {"mis": {
        "kind": "sql", "url_credential": "mis-url", "table": "pupils", "key_column": "upn"}}))
    assert registry.get("mis").url == f"sqlite:///{tmp_path / 'h.db'}"


@pytest.mark.parametrize(("table", "message"), [
    ({"table": "pupils", "key_column": "upn"}, "url_file or url_credential is required"),
    ({"url": "postgresql://u:secret@h/db", "table": "p", "key_column": "k"},
     "belongs in url_file"),
    ({"url": "sqlite://", "table": "pupils; drop table x", "key_column": "upn"},
     "not a table or column name"),
    ({"url": "sqlite://", "table": "pupils", "key_column": "upn", "colour": "red"},
     "unknown option"),
    ({"url_credential": "mis-url", "table": "p", "key_column": "k"}, "CREDENTIALS_DIRECTORY"),
    ({"url_file": "missing.url", "table": "p", "key_column": "k"}, "cannot read"),
])
def test_bad_sql_tables_are_refused_with_the_key(tmp_path, monkeypatch, table, message):
    """A wrong [connectors.NAME] table is refused, naming the table and what is wrong."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=message) as info:
        load_connectors(cfg(tmp_path, {"mis": {"kind": "sql", **table}}))
    assert "[connectors.mis]" in str(info.value)
    assert "u:secret@" not in str(info.value)


def test_two_connectors_for_one_system_are_refused(tmp_path):
    """A system served twice is ambiguous, so refused."""
    with pytest.raises(ConfigError, match="already served"):
        load_connectors(cfg(tmp_path, {
            "a": {"kind": "manual", "systems": ["paper"]},
            "b": {"kind": "manual", "systems": ["paper"]},
        }))


def test_unknown_kind_is_refused(tmp_path):
    """A kind that is neither built in nor a plug-in is refused."""
    with pytest.raises(ConfigError, match="no connector kind 'tape'"):
        load_connectors(cfg(tmp_path, {"t": {"kind": "tape"}}))


class TapeConnector:
    """A plug-in kind, as a third party would ship it."""

    kind = "tape"

    def __init__(self, name, options):
        self.name, self.options = name, options

    @classmethod
    def from_config(cls, name, options, *, base_dir):
        return cls(name, dict(options))

    def delete(self, ref, idempotency_key):
        return "overwritten"

    def exists(self, ref):
        return False

    def export(self, ref):
        return Export()

    def close(self):
        pass


def test_plugin_kinds_come_from_the_entry_point_group(tmp_path, monkeypatch):
    """A kind registered in the retentiond.connectors entry point group is loaded."""
    import retentiond.connectors as module

    ep = EntryPoint(name="tape", value=f"{__name__}:TapeConnector", group="retentiond.connectors")
    monkeypatch.setattr(module, "entry_points",
                        lambda group: [ep] if group == module.ENTRY_POINT_GROUP else [])
    registry = load_connectors(cfg(tmp_path, {"vault": {"kind": "tape", "drive": "/dev/st0"}}))
    connector = registry.for_system("vault")
    assert type(connector).__name__ == "TapeConnector" and connector.options["drive"] == "/dev/st0"


def test_builtin_kinds_are_declared_as_entry_points():
    """pyproject declares the built-in kinds in the group plug-ins use."""
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="retentiond.connectors")}
    assert {"sql", "filesystem", "manual", "return"} <= names


def test_the_example_configs_connectors_load_once_uncommented(tmp_path, monkeypatch):
    """The commented [connectors.*] tables of examples/retentiond.toml are a config that loads."""
    import tomllib
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "retentiond.toml"
    text = example.read_text().split("#[connectors.mis]", 1)[1]
    block = "\n".join(line[1:] if line.startswith("#") else line
                      for line in ("#[connectors.mis]" + text).splitlines())
    (tmp_path / "casefiles").mkdir()
    block = block.replace("/srv/casefiles", str(tmp_path / "casefiles"))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mis-url").write_text("sqlite:///holding.db")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    raw = tomllib.loads(block)
    registry = load_connectors(cfg(tmp_path, raw["connectors"]))
    assert registry.names() == ["casefiles", "mis", "paper", "returns"]
    assert set(registry.systems()) == {"mis", "case-files", "paper-store"}
