"""The execution phase: approved disposals carried out by ``execute_due`` through the SQL
connector against a holding database, then certified by ``issue_certificates`` (one signed
certificate per controller); and the yardstick, a hand-written batched ``DELETE`` of the same
rows in the same holding database.

The holding database stands for a council's case-management system: a table of case files
keyed by the record's locator, and a child table of notes (three per file) that the connector
deletes first.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
)

from retentiond.lifecycle.context import Context
from retentiond.registry.models import Disposal, Record

#: Cases approved and executed by default (``--execute`` changes it): enough for a steady rate
#: (the estate must have that many due; 1M records have about 10,000).
EXECUTE_MAX = 2_000
#: The daemon's default ``[daemon.jobs.execute] batch_size``.
EXECUTE_BATCH = 100
ISSUER = "Synthetic County Council"
NOTES_PER_FILE = 3
RAW_BATCH = 500

_holding = MetaData()
CASE_FILES = Table("case_files", _holding, Column("locator", String(200), primary_key=True),
                   Column("subject", String(128)), Column("body", Text))
CASE_FILE_NOTES = Table("case_file_notes", _holding,
                        Column("id", Integer, primary_key=True, autoincrement=True),
                        Column("locator", String(200), index=True), Column("note", Text))


def pick_cases(ctx: Context, limit: int = EXECUTE_MAX) -> list[tuple[int, str]]:
    """Up to ``limit`` cases pending review, with their records' locators."""
    with ctx.sessions() as session:
        return [(i, loc) for i, loc in session.execute(
            select(Disposal.id, Record.locator).join(Record, Record.id == Disposal.record_id)
            .where(Disposal.state == "pending_review", Record.locator.is_not(None))
            .order_by(Disposal.id).limit(limit)) if loc is not None]


def fill_holding(engine: Engine, locators: list[str]) -> None:
    """(Re)create the holding rows for ``locators``."""
    _holding.create_all(engine)
    with engine.begin() as conn:
        for start in range(0, len(locators), 2000):
            chunk = locators[start:start + 2000]
            conn.execute(insert(CASE_FILES), [
                {"locator": loc, "subject": "synthetic", "body": "synthetic case file " * 20}
                for loc in chunk])
            conn.execute(insert(CASE_FILE_NOTES), [
                {"locator": loc, "note": f"synthetic note {n}"}
                for loc in chunk for n in range(NOTES_PER_FILE)])


def holding_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(CASE_FILES.c.locator)).all())


def approve_all(ctx: Context, ids: list[int], approve: Callable[..., Any]) -> None:
    """Two IG officers approve (rules for child protection and looked-after records need two
    different people)."""
    from dataclasses import replace

    for actor in ("ig.officer.one", "ig.officer.two"):
        officer = replace(ctx, actor=actor)
        with ctx.sessions() as session:
            pending = list(session.scalars(select(Disposal.id).where(
                Disposal.id.in_(ids), Disposal.state == "pending_review")))
        for start in range(0, len(pending), 500):
            approve(officer, pending[start:start + 500],
                    reason="benchmark: reviewed and approved")


def raw_delete(engine: Engine, locators: list[str]) -> float:
    """Delete the holding rows by hand, children first, one transaction a batch; seconds."""
    start = time.perf_counter()
    for i in range(0, len(locators), RAW_BATCH):
        chunk = locators[i:i + RAW_BATCH]
        with engine.begin() as conn:
            conn.execute(delete(CASE_FILE_NOTES).where(CASE_FILE_NOTES.c.locator.in_(chunk)))
            conn.execute(delete(CASE_FILES).where(CASE_FILES.c.locator.in_(chunk)))
    return time.perf_counter() - start


def make_signer(directory: Path, now: dt.datetime) -> Any:
    """Signing keys made as ``retentiond keys init`` makes them (a day before ``now``, so that
    they are valid), and their signer: what ``[certificates]`` loads in the daemon."""
    from retentiond.certificates.keys import init_keys, load_signer
    from retentiond.certificates.settings import CertificateSettings

    init_keys(directory, issuer=ISSUER, now=now - dt.timedelta(days=1))
    return load_signer(CertificateSettings(where="bench", issuer=ISSUER,
                                           issuer_contact="ig@county.example",
                                           key_dir=directory, batch="run", files={}))


def holding_engine(url: str) -> Engine:
    return create_engine(url)
