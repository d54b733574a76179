"""Copies that outlive the delete (issue 10, class 4): each connector states what remains and
until when from its configuration, the SQL connector overwrites deleted SQLite rows
(secure_delete) and can VACUUM PostgreSQL tables it deleted from, and the certificate carries
what remains as data, never claiming that nothing does."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from cert_support import make_keys, signer_for
from conftest import TODAY
from execution_support import (
    DUE_DOB,
    connectors,
    holding_database,
    make_files,
    make_holding,
    queue_and_approve,
    seed,
)
from sqlalchemy import create_engine, select, text

from retentiond.certificates import issue_certificates
from retentiond.config import Config, ConfigError
from retentiond.connectors import ConnectorRef, SqlConnector, load_connectors
from retentiond.connectors.sql import KeyedTable
from retentiond.lifecycle.execute import execute_due
from retentiond.registry.models import Certificate, DisposalExecution

MARKER = "SYNTHETIC-NOTE-7f3a9c"


@pytest.fixture
def holding_url(database_url, tmp_path):
    yield from holding_database(database_url, tmp_path)


def _with_note(url: str, upns: list[str]) -> None:
    make_holding(url, upns)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE pupils SET note = :n"), {"n": MARKER * 20})
    engine.dispose()


def test_sqlite_deleted_rows_are_overwritten_in_the_file(tmp_path):
    """With secure_delete on, the bytes of a deleted row are gone from the SQLite file once
    the delete commits (the journal holds them only until then)."""
    path = tmp_path / "holding.db"
    _with_note(f"sqlite:///{path}", ["U1"])
    assert MARKER.encode() in path.read_bytes()
    sql = SqlConnector("mis", f"sqlite:///{path}", KeyedTable("pupils", "upn"),
                       (KeyedTable("pupil_marks", "upn"),))
    assert sql.delete(ConnectorRef("mis", "U1", "R1"), "disposal-1").startswith("deleted")
    sql.close()
    assert MARKER.encode() not in path.read_bytes()
    for extra in tmp_path.glob("holding.db-*"):
        assert MARKER.encode() not in extra.read_bytes()


@pytest.mark.postgres
def test_vacuum_after_delete_runs_on_the_tables_deleted_from(pg_admin, tmp_path):
    """vacuum_after_delete = true: the tables a delete touched are vacuumed right after it
    (pg_stat_user_tables.last_vacuum is set), so dead row versions do not wait for autovacuum."""
    gen = holding_database("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", tmp_path)
    url = next(gen)
    try:
        make_holding(url, ["U1", "U2"])
        sql = SqlConnector("mis", url, KeyedTable("pupils", "upn"),
                           (KeyedTable("pupil_marks", "upn"),), vacuum_after_delete=True)
        sql.delete(ConnectorRef("mis", "U1", "R1"), "disposal-1")
        sql.close()
        engine = create_engine(url)
        vacuumed: set[str] = set()
        for _ in range(50):
            with engine.connect() as conn:
                vacuumed = {r[0] for r in conn.execute(text(
                    "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL"))}
            if vacuumed >= {"pupils", "pupil_marks"}:
                break
            time.sleep(0.1)
        engine.dispose()
        assert vacuumed >= {"pupils", "pupil_marks"}
        copies = [c.what for c in SqlConnector("mis", url, KeyedTable("pupils", "upn"),
                                               vacuum_after_delete=True).remaining_copies(TODAY)]
        assert any("VACUUM was run" in w for w in copies)
    finally:
        next(gen, None)


def test_the_certificate_states_what_remains_and_until_when(ctx, tmp_path, holding_url):
    """backups_kept_days = 35 on the SQL connector: its records' certificate says backup copies
    held by mis expire by the executed date + 35 days; the files connector, with nothing
    configured, is stated with no date; each execution keeps its own statement."""
    make_holding(holding_url, ["U1"])
    make_files(tmp_path / "files", ["case-a"])
    seed(ctx, tmp_path, [
        {"record_id": "R-SQL", "system": "mis", "locator": "U1", "date_of_birth": DUE_DOB},
        {"record_id": "R-FILE", "system": "files", "locator": "case-a", "date_of_birth": DUE_DOB},
    ])
    cases = queue_and_approve(ctx)
    registry = connectors(tmp_path, holding_url)
    registry.get("mis").backups_kept_days = 35  # as [connectors.mis].backups_kept_days = 35
    try:
        assert execute_due(ctx, registry, owner="t", batch_size=10, lease_s=60).executed == 2
    finally:
        registry.close()
    with ctx.sessions() as session:
        row = session.scalars(select(DisposalExecution).where(
            DisposalExecution.disposal_id == cases["R-SQL"])).one()
    assert row.remaining[0] == {"what": "backup copies",
                                "expire_by": (TODAY + dt.timedelta(days=35)).isoformat(),
                                "basis": "[connectors.mis].backups_kept_days = 35"}
    issue_certificates(ctx, signer_for(make_keys(tmp_path)), batch="run")
    with ctx.sessions() as session:
        doc = session.scalars(select(Certificate.document)).one()
    left = {(c["system"], c["what"]): c["expire_by"] for c in doc["remaining_copies"]}
    assert left[("mis", "backup copies")] == (TODAY + dt.timedelta(days=35)).isoformat()
    assert left[("files", "backup copies (how long backups are kept is not configured)")] is None
    assert any(s == "files" and "blocks on the disk" in w for s, w in left)
    assert "beyond use" not in str(doc)
    assert {r["outcome"] for r in doc["records"]} == {"deleted"}


@pytest.mark.parametrize("table, message", [
    ({"kind": "sql", "url": "sqlite:///h.db", "table": "t", "key_column": "k",
      "backups_kept_days": -1}, "backups_kept_days: must be a number of days"),
    ({"kind": "sql", "url": "sqlite:///h.db", "table": "t", "key_column": "k",
      "vacuum_after_delete": True}, "vacuum_after_delete: only for PostgreSQL"),
    ({"kind": "sql", "url": "sqlite:///h.db", "table": "t", "key_column": "k",
      "key_type": "uuid"}, "key_type: must be one of integer, text"),
    ({"kind": "filesystem", "root": ".", "snapshots_kept_days": "30"},
     "snapshots_kept_days: must be a int"),
])
def test_wrong_remaining_options_are_refused_with_the_key(tmp_path, table, message):
    """A wrong option is refused, naming the table and the key."""
    cfg = Config(source=str(tmp_path / "retentiond.toml"), raw={"connectors": {"mis": table}})
    with pytest.raises(ConfigError, match=message):
        load_connectors(cfg)
