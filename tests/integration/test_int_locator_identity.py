"""A locator names exactly one row set (issue 10, class 1; DESIGN.md section 4): the SQL
connector never lets a holding database coerce a locator (``042`` for the integer key 42) or
match it loosely (MariaDB's case-folding, space-padding default collation), on real SQLite,
PostgreSQL and MariaDB holding databases."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import pytest
from execution_support import queue_and_approve, states
from holding_support import HOLDING_KINDS, holding_url
from sqlalchemy import create_engine, text

from retentiond.config import Config
from retentiond.connectors import (
    ConnectorRef,
    LocatorCheck,
    LocatorRefused,
    PermanentConnectorError,
    SqlConnector,
    load_connectors,
)
from retentiond.connectors import sql as sql_connector
from retentiond.connectors.sql import KeyedTable, KeyMismatch
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.errors import ImportRefused
from retentiond.ingest.records import import_records
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.holds import place_hold

COERCIBLE = ["042", " 13", "13 ", "+13", "1e1", "42.0", "4.2e1", "0x2a", "٤٢", "13\n", ""]


@pytest.fixture(params=HOLDING_KINDS)
def holding(request, tmp_path):
    """A holding database of each kind with integer-keyed ``cases`` (and child notes) and
    text-keyed ``pupils``."""
    gen = holding_url(request.param, request, tmp_path)
    url = next(gen)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE cases (id INTEGER PRIMARY KEY, summary VARCHAR(50))"))
        conn.execute(text("CREATE TABLE case_notes (id INTEGER PRIMARY KEY, case_id INTEGER "
                          "NOT NULL REFERENCES cases(id), note VARCHAR(50))"))
        conn.execute(text("CREATE TABLE pupils (upn VARCHAR(20) PRIMARY KEY, name VARCHAR(50))"))
        for n, key in enumerate((7, 10, 13, 42)):
            conn.execute(text("INSERT INTO cases VALUES (:k, 'synthetic')"), {"k": key})
            conn.execute(text("INSERT INTO case_notes VALUES (:i, :k, 'note')"),
                         {"i": n, "k": key})
        for upn in ("abc", "X1", "Q9"):
            conn.execute(text("INSERT INTO pupils VALUES (:u, 'Synthetic')"), {"u": upn})
    engine.dispose()
    yield request.param, url
    next(gen, None)


def _rows(url: str) -> tuple[set[int], set[int], set[str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        cases = {r[0] for r in conn.execute(text("SELECT id FROM cases"))}
        notes = {r[0] for r in conn.execute(text("SELECT case_id FROM case_notes"))}
        pupils = {r[0] for r in conn.execute(text("SELECT upn FROM pupils"))}
    engine.dispose()
    return cases, notes, pupils


def _cases(url: str) -> SqlConnector:
    return SqlConnector("mis", url, KeyedTable("cases", "id"),
                        (KeyedTable("case_notes", "case_id"),))


def _ref(locator: str, n: int = 1) -> ConnectorRef:
    return ConnectorRef("mis", locator, f"R{n}")


@pytest.mark.parametrize("locator", COERCIBLE)
def test_coercible_integer_locator_never_reaches_another_row(holding, locator):
    """A locator that is not an integer key as written is refused by delete, delete_many,
    exists and export, before the database sees it; rows 13, 42 and 10 stay."""
    _kind, url = holding
    connector = _cases(url)
    with pytest.raises(LocatorRefused) as info:
        connector.delete(_ref(locator), "disposal-1")
    assert locator.strip() not in str(info.value) or not locator.strip()
    with pytest.raises(LocatorRefused):
        connector.exists(_ref(locator))
    with pytest.raises(LocatorRefused):
        connector.export(_ref(locator))
    done = connector.delete_many([(_ref(locator), "disposal-1"), (_ref("7", 2), "disposal-2")])
    assert isinstance(done["disposal-1"], LocatorRefused)
    assert done["disposal-2"].startswith("deleted 2 rows")
    assert connector.validate_locator(locator) is not None
    assert _rows(url)[:2] == ({10, 13, 42}, {10, 13, 42})
    connector.close()


@pytest.mark.parametrize("locator", ["ABC", "Abc", "abc\t", "x1", "q9", "ABC" + "\u00a0"])
def test_text_locator_is_compared_byte_for_byte(holding, locator):
    """A text key is matched exactly: another case or trailing space never matches (MariaDB's
    default collation would), so nothing is found and nothing deleted."""
    _kind, url = holding
    connector = SqlConnector("mis", url, KeyedTable("pupils", "upn"))
    if connector.validate_locator(locator) is None:
        assert not connector.exists(_ref(locator))
        assert "already absent" in connector.delete(_ref(locator), "disposal-1")
        assert connector.export(_ref(locator)).is_empty
    else:
        with pytest.raises(LocatorRefused):
            connector.delete(_ref(locator), "disposal-1")
    assert _rows(url)[2] == {"abc", "X1", "Q9"}
    assert connector.exists(_ref("abc")) and connector.exists(_ref("X1"))
    assert connector.delete(_ref("X1"), "disposal-2").startswith("deleted 1 rows")
    assert _rows(url)[2] == {"abc", "Q9"}
    connector.close()


def test_a_delete_whose_keys_do_not_map_back_is_rolled_back(holding, monkeypatch):
    """The read-back check: should the comparison ever be loose (here: the locators sent as
    text, unchecked, as the connector did before), a batch that deleted a key not sent is rolled
    back whole, and a lone record fails permanently; row 42 survives."""
    kind, url = holding
    connector = _cases(url)
    monkeypatch.setattr(SqlConnector, "_values", lambda self, keyed, locs: list(locs))
    monkeypatch.setattr(SqlConnector, "_match",
                        lambda self, keyed, values: self._column(keyed).in_(values))
    with pytest.raises(PermanentConnectorError) as info:
        connector._delete_batch(["042", "7"])
    if kind != "postgresql":  # PostgreSQL refuses to compare an integer with text at all
        assert isinstance(info.value, KeyMismatch)
    assert _rows(url)[:2] == ({7, 10, 13, 42}, {7, 10, 13, 42})
    done = connector.delete_many([(_ref("042"), "disposal-1"), (_ref("7", 2), "disposal-2")])
    assert isinstance(done["disposal-1"], PermanentConnectorError)
    assert 42 in _rows(url)[0]
    if kind != "postgresql":
        assert _rows(url)[0] == {10, 13, 42}  # the record alone at fault fails
    connector.close()


def test_batch_in_chunks_maps_every_deleted_key_to_its_locator(holding, monkeypatch):
    """In chunks, with RETURNING or without, each deleted key counts for its own locator."""
    _kind, url = holding
    monkeypatch.setattr(sql_connector, "CHUNK", 2)
    connector = _cases(url)
    done = connector.delete_many([(_ref(k, n), f"disposal-{n}")
                                  for n, k in enumerate(("7", "13", "42", "99"))])
    assert [done[f"disposal-{n}"].split(" (")[0] for n in range(3)] == ["deleted 2 rows"] * 3
    assert done["disposal-3"].endswith("already absent")
    assert _rows(url)[:2] == ({10}, {10})
    assert connector.exists_many([_ref("10"), _ref("42")]) == {_ref("10")}
    connector.close()


# --- the attack end to end, and the import that refuses it ----------------------------------

def _config(tmp_path: Path, url: str) -> Config:
    (tmp_path / "mis.url").write_text(url + "\n")
    return Config(source=str(tmp_path / "retentiond.toml"), raw={"connectors": {
        "mis": {"kind": "sql", "url_file": "mis.url", "table": "cases", "key_column": "id",
                "children": [{"table": "case_notes", "key_column": "case_id"}]}}})


def _import(ctx, tmp_path: Path, rows: list[tuple[str, str, str]], locators=None) -> Path:
    ctl = tmp_path / "controllers.csv"
    ctl.write_text("code,name,email\nSCH-01,Synthetic School One,dpo@sch01.example\n")
    import_controllers(ctx, ctl)
    path = tmp_path / "records.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("record_id", "category", "controller", "system", "locator", "subject_ref",
                    "date_of_birth"))
        for key, locator, dob in rows:
            w.writerow((key, "education.pupil_record", "SCH-01", "mis", locator, f"S-{key}", dob))
    import_records(ctx, path, locators=locators)
    return path


def test_locator_042_beside_a_held_not_due_42_leaves_42_alone(ctx, holding, tmp_path):
    """The exact attack: R-A (locator 042, due, approved) beside R-B (key 42, not due, under a
    legal hold). Executing R-A fails permanently; R-B's rows survive; nothing is certified."""
    _kind, url = holding
    _import(ctx, tmp_path, [("R-A", "042", "2000-01-01"), ("R-B", "42", "2005-06-01")])
    place_hold(ctx, scope="record:R-B", hold_type="legal", reason="litigation: synthetic")
    cases = queue_and_approve(ctx)
    assert set(cases) == {"R-A"}
    registry = load_connectors(_config(tmp_path, url))
    try:
        result = execute_due(ctx, registry, owner="t", batch_size=10, lease_s=60)
    finally:
        registry.close()
    assert result.executed == 0 and result.failed == 1
    assert states(ctx) == {"R-A": "failed"}
    assert 42 in _rows(url)[0] and 42 in _rows(url)[1]


def test_import_refuses_a_locator_the_connector_cannot_name(ctx, holding, tmp_path):
    """records import, with the connectors configured, refuses the file whole naming file,
    line and field for each locator its connector cannot represent exactly."""
    _kind, url = holding
    registry = load_connectors(_config(tmp_path, url))
    try:
        with pytest.raises(ImportRefused) as info:
            _import(ctx, tmp_path, [("R-A", "042", "2000-01-01"), ("R-B", "42", "2000-01-01"),
                                    ("R-C", "+13", "2000-01-01")], locators=LocatorCheck(registry))
    finally:
        registry.close()
    problems = info.value.problems
    assert [p.split(": ")[0:2] for p in problems] == [
        [f"{tmp_path / 'records.csv'}:2", "locator"], [f"{tmp_path / 'records.csv'}:4", "locator"]]
    assert all("connector mis cannot name this locator exactly" in p for p in problems)
    assert all("042" not in p and "+13" not in p for p in problems)
    from retentiond.lifecycle.review import list_disposals
    assert list_disposals(ctx) == []


def test_import_with_a_holding_database_down_is_refused_with_the_reason(ctx, tmp_path):
    """A connector that cannot be asked makes its system's locators problems (asked once),
    and nothing is applied; key_type lets the check run without connecting."""
    missing = tmp_path / "gone" / "holding.db"
    registry = load_connectors(_config(tmp_path, f"sqlite:///{missing}"))
    with pytest.raises(ImportRefused) as info:
        _import(ctx, tmp_path, [("R-A", "42", "2000-01-01")], locators=LocatorCheck(registry))
    assert "cannot be checked by connector mis" in info.value.problems[0]
    assert not missing.exists()
    raw = _config(tmp_path, f"sqlite:///{missing}").raw
    raw["connectors"]["mis"]["key_type"] = "integer"
    typed = load_connectors(Config(source=str(tmp_path / "retentiond.toml"), raw=raw))
    _import(ctx, tmp_path, [("R-A", "42", "2000-01-01")], locators=LocatorCheck(typed))
    with pytest.raises(ImportRefused):
        _import(ctx, tmp_path, [("R-A", "042", "2000-01-01")], locators=LocatorCheck(typed))
    assert dt.date  # the module's dates are synthetic
