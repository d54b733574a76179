"""One contract suite over every built-in connector that acts on data (DESIGN.md section 5)."""

from __future__ import annotations

import uuid

import pytest
from execution_support import make_files, make_holding
from sqlalchemy import create_engine, text

from retentiond.connectors import (
    ConnectorRef,
    FilesystemConnector,
    PermanentConnectorError,
    ReturnConnector,
    SqlConnector,
    TransientConnectorError,
)
from retentiond.connectors.sql import KeyedTable

MARKS = (KeyedTable("pupil_marks", "upn"),)


@pytest.fixture(params=["sql-sqlite", pytest.param("sql-postgresql", marks=pytest.mark.postgres),
                        "filesystem", "return-over-sql"])
def subject(request, tmp_path):
    """(connector, ref of a present record, ref of another present record)."""
    kind = request.param
    if kind == "filesystem":
        make_files(tmp_path / "root", ["c1", "c2"])
        fs = FilesystemConnector("files", tmp_path / "root")
        yield fs, ConnectorRef("files", "c1", "R1"), ConnectorRef("files", "c2", "R2")
        return
    if kind == "sql-postgresql":
        request.getfixturevalue("pg_admin")
        from conftest import PG_ADMIN_URL
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        name = f"holding_{uuid.uuid4().hex[:10]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    else:
        url = f"sqlite:///{tmp_path / 'holding.db'}"
    make_holding(url, ["U1", "U2"])
    sql = SqlConnector("mis", url, KeyedTable("pupils", "upn"), MARKS)
    connector = sql
    if kind == "return-over-sql":
        ret = ReturnConnector("returns", tmp_path / "drop", password_dir=tmp_path)
        ret.bind(lambda system: sql)
        connector = ret
    yield connector, ConnectorRef("mis", "U1", "R1"), ConnectorRef("mis", "U2", "R2")
    sql.close()
    if kind == "sql-postgresql":
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_delete_removes_only_the_record(subject):
    """delete removes the record; exists turns false; the other record stays."""
    connector, one, other = subject
    assert connector.exists(one) and connector.exists(other)
    what = connector.delete(one, "disposal-1")
    assert isinstance(what, str) and what
    assert not connector.exists(one)
    assert connector.exists(other)


def test_deleting_twice_is_success(subject):
    """Deleting something already gone succeeds (retries are safe)."""
    connector, one, _ = subject
    connector.delete(one, "disposal-1")
    assert "already absent" in connector.delete(one, "disposal-1")
    assert not connector.exists(one)


def test_export_returns_the_records_data(subject):
    """export returns the record's data and not another's."""
    connector, one, _ = subject
    export = connector.export(one)
    assert not export.is_empty
    if export.tables:
        main = export.tables[0]
        assert [r[main.columns.index("upn")] for r in main.rows] == ["U1"]
        assert len(export.tables[1].rows) == 2
    else:
        assert sorted(f.path for f in export.files) == ["c1/notes.txt", "c1/referral.txt"]


def test_messages_never_carry_the_locator(subject):
    """Descriptions say what was done without naming the record's locator."""
    connector, one, _ = subject
    assert one.locator not in connector.delete(one, "disposal-1")


def test_unreachable_database_is_transient(tmp_path):
    """A database that cannot be reached is a transient error, worth retrying."""
    sql = SqlConnector("mis", "postgresql+psycopg://nobody@127.0.0.1:1/none",
                       KeyedTable("pupils", "upn"))
    with pytest.raises(TransientConnectorError):
        sql.exists(ConnectorRef("mis", "U1", "R1"))


def test_missing_table_is_permanent(tmp_path):
    """A configured table that does not exist is a permanent error."""
    make_holding(f"sqlite:///{tmp_path / 'h.db'}", ["U1"])
    sql = SqlConnector("mis", f"sqlite:///{tmp_path / 'h.db'}", KeyedTable("learners", "upn"))
    with pytest.raises(PermanentConnectorError):
        sql.delete(ConnectorRef("mis", "U1", "R1"), "k")
