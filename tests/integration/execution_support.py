"""Helpers for the execution tests: a real 'holding' database (pupils and their marks), a real
folder of case files, a connector registry over them, and a registry seeded through the
importers. Every value is synthetic."""

from __future__ import annotations

import csv
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text, update

from retentiond.config import Config
from retentiond.connectors import ConnectorRegistry, load_connectors
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.review import approve, list_disposals
from retentiond.registry.models import AuditEvent, Disposal, Record

#: Born 2000-01-01: a pupil record due on 2025-01-01, before the tests' TODAY.
DUE_DOB = dt.date(2000, 1, 1)
#: Born 2005-06-01: due 2030-06-01, after TODAY.
NOT_DUE_DOB = dt.date(2005, 6, 1)
PASSWORD = "correct-horse-battery-staple"


def holding_database(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A separate 'holding' database on the registry's backend: a file, or a PG database
    (for a test module's ``holding_url`` fixture: ``yield from holding_database(...)``)."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'holding.db'}"
        return
    base, _ = database_url.rsplit("/", 1)
    name = f"holding_{uuid.uuid4().hex[:12]}"
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_holding(url: str, upns: Sequence[str]) -> None:
    """Create ``pupils`` and its child ``pupil_marks`` (with a foreign key) and fill them."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pupils (upn VARCHAR(20) PRIMARY KEY, "
                          "given_name VARCHAR(50), born DATE, note TEXT)"))
        conn.execute(text("CREATE TABLE pupil_marks (id INTEGER PRIMARY KEY, "
                          "upn VARCHAR(20) NOT NULL REFERENCES pupils(upn), "
                          "subject VARCHAR(20), mark INTEGER)"))
        for i, upn in enumerate(upns):
            conn.execute(text("INSERT INTO pupils VALUES (:u, :n, :b, :note)"),
                         {"u": upn, "n": f"Pupil{i}", "b": dt.date(2000, 1, 1),
                          "note": "=HYPERLINK(\"x\")"})
            for j, subject in enumerate(("maths", "english")):
                conn.execute(text("INSERT INTO pupil_marks VALUES (:id, :u, :s, :m)"),
                             {"id": i * 10 + j, "u": upn, "s": subject, "m": 50 + j})
    engine.dispose()


def holding_upns(url: str) -> tuple[set[str], set[str]]:
    """The UPNs still in ``pupils`` and in ``pupil_marks``."""
    engine = create_engine(url)
    with engine.connect() as conn:
        pupils = {r[0] for r in conn.execute(text("SELECT upn FROM pupils"))}
        marks = {r[0] for r in conn.execute(text("SELECT upn FROM pupil_marks"))}
    engine.dispose()
    return pupils, marks


def make_files(root: Path, names: Sequence[str]) -> None:
    """A folder per case file, with two documents in it."""
    for name in names:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "referral.txt").write_text(f"case {name}\n")
        (folder / "notes.txt").write_text("synthetic notes\n")


def connector_config(tmp_path: Path, holding: str, files_root: Path, drop_dir: Path,
                     password_dir: Path, *, controllers: Sequence[str] = ("SCH-01", "SCH-02"),
                     extra: dict[str, Any] | None = None) -> Config:
    """A config with sql (URL in a credentials file), filesystem, manual and return
    connectors; a password file per controller."""
    (tmp_path / "mis.url").write_text(holding + "\n")
    password_dir.mkdir(exist_ok=True)
    for code in controllers:
        (password_dir / code).write_text(PASSWORD + "\n")
    raw: dict[str, Any] = {"connectors": {
        "mis": {"kind": "sql", "url_file": "mis.url", "table": "pupils", "key_column": "upn",
                "children": [{"table": "pupil_marks", "key_column": "upn"}]},
        "casefiles": {"kind": "filesystem", "systems": ["files"], "root": str(files_root)},
        "paper": {"kind": "manual", "instructions": "send to the shredding contractor"},
        "returns": {"kind": "return", "drop_dir": str(drop_dir),
                    "password_dir": str(password_dir)},
    }}
    if extra:
        raw["connectors"].update(extra)
    return Config(source=str(tmp_path / "retentiond.toml"), raw=raw)


def connectors(tmp_path: Path, holding: str, **kw: Any) -> ConnectorRegistry:
    files_root = tmp_path / "files"
    files_root.mkdir(exist_ok=True)
    return load_connectors(connector_config(tmp_path, holding, files_root, tmp_path / "drop",
                                            tmp_path / "passwords", **kw))


def seed(ctx: Context, tmp_path: Path, rows: Sequence[dict[str, Any]],
         agreements: Sequence[str] = ()) -> None:
    """Import controllers SCH-01, SCH-02 and the given record rows (education.pupil_record
    unless a row says otherwise)."""
    ctl = tmp_path / "controllers.csv"
    with ctl.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("code", "name", "email"))
        w.writerow(("SCH-01", "Synthetic School One", "dpo@sch01.example"))
        w.writerow(("SCH-02", "Synthetic School Two", "dpo@sch02.example"))
    import_controllers(ctx, ctl)
    columns = ("record_id", "category", "controller", "system", "locator", "subject_ref",
               "date_of_birth", "agreement")
    path = tmp_path / f"records-{uuid.uuid4().hex[:6]}.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        for r in rows:
            full = {"category": "education.pupil_record", "controller": "SCH-01",
                    "subject_ref": f"S-{r['record_id']}", **r}
            w.writerow([("" if full.get(c) is None else str(full.get(c))) for c in columns])
    import_records(ctx, path)


def queue_and_approve(ctx: Context, keys: Sequence[str] | None = None) -> dict[str, int]:
    """Evaluate as of TODAY, approve the pending cases of ``keys`` (all if None); return
    record key -> disposal id of every case."""
    evaluate(ctx, ctx.clock.today())
    cases = {c.record_id: c.id for c in list_disposals(ctx)}
    chosen = [cases[k] for k in (keys if keys is not None else cases)]
    if chosen:
        approve(ctx, chosen, reason="retention period over; checked")
    return cases


def states(ctx: Context) -> dict[str, str]:
    """Record key -> state of its newest case."""
    with ctx.sessions() as session:
        rows = session.execute(select(Record.record_key, Disposal.state)
                               .join(Disposal, Disposal.record_id == Record.id)
                               .order_by(Disposal.id)).all()
    return {k: s for k, s in rows}


def events(ctx: Context, disposal_id: int) -> list[str]:
    """The kinds of a disposal's audit events, oldest first."""
    with ctx.sessions() as session:
        return list(session.scalars(
            select(AuditEvent.kind)
            .where(AuditEvent.entity == "disposal", AuditEvent.entity_id == str(disposal_id))
            .order_by(AuditEvent.id)))


def make_returns(ctx: Context, keys: Sequence[str]) -> None:
    """Make the records ``keys`` and their cases returns instead of deletes."""
    with ctx.sessions.begin() as session:
        ids = select(Record.id).where(Record.record_key.in_(keys)).scalar_subquery()
        session.execute(update(Record).where(Record.id.in_(ids)).values(due_action="return"))
        session.execute(update(Disposal).where(Disposal.record_id.in_(ids))
                        .values(action="return"))
