"""Helpers for the integration tests: write import files, seed a registry, snapshot it.

Every value here is synthetic: controller codes like ``SCH-01``, subject references like
``S-0001``, dates chosen to sit either side of the tests' ``TODAY``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select

from retentiond.clock import FixedClock
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import RecordImport, import_records
from retentiond.lifecycle.context import Context
from retentiond.registry import models as m

CONTROLLERS = (
    ("SCH-01", "Synthetic Primary School One", "dpo@sch01.example"),
    ("SCH-02", "Synthetic Primary School Two", "dpo@sch02.example"),
    ("LA-01", "Synthetic Borough Council", "ig@la01.example"),
)

#: The record columns of a full import file, in the documented order.
RECORD_COLUMNS = ("record_id", "category", "controller", "system", "locator", "subject_ref",
                  "date_of_birth", "date_of_death", "opened_on", "closed_on", "event_on",
                  "flags", "agreement")

D = dt.date


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV file with a header row."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_records(path: Path, rows: Sequence[Mapping[str, Any]], *,
                  columns: Sequence[str] | None = None) -> Path:
    """Write record rows as CSV (``.csv``) or JSON lines (``.jsonl``); CSV columns default to
    the union of the rows' keys in documented order."""
    if path.suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(dict(row)) + "\n")
        return path
    if columns is None:
        keys = {k for r in rows for k in r}
        columns = [c for c in RECORD_COLUMNS if c in keys] + sorted(keys - set(RECORD_COLUMNS))
    return write_csv(path, columns, [[_cell(r.get(c)) for c in columns] for r in rows])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def seed_controllers(ctx: Context, tmp_path: Path) -> None:
    """Import the synthetic controllers."""
    path = write_csv(tmp_path / "controllers-seed.csv", ("code", "name", "email"), CONTROLLERS)
    import_controllers(ctx, path)


_counter = iter(range(1, 1_000_000))


def load_records(ctx: Context, tmp_path: Path, rows: Sequence[Mapping[str, Any]], *,
                 suffix: str = ".csv") -> RecordImport:
    """Import record rows from a freshly written file."""
    path = write_records(tmp_path / f"records-{next(_counter)}{suffix}", rows)
    return import_records(ctx, path, fmt="jsonl" if suffix == ".jsonl" else "csv")


def pupil(record_id: str, dob: dt.date | str, *, subject: str | None = None,
          controller: str = "SCH-01", **extra: Any) -> dict[str, Any]:
    """An education.pupil_record row (due on the subject's 25th birthday)."""
    return {"record_id": record_id, "category": "education.pupil_record",
            "controller": controller, "subject_ref": subject or f"S-{record_id}",
            "date_of_birth": dob, **extra}


def referral(record_id: str, opened_on: dt.date | str, *, controller: str = "LA-01",
             **extra: Any) -> dict[str, Any]:
    """A safeguarding.referral row (due 6 years after opened_on)."""
    return {"record_id": record_id, "category": "safeguarding.referral",
            "controller": controller, "opened_on": opened_on, **extra}


def cp_case(record_id: str, closed_on: dt.date | str | None, *, controller: str = "LA-01",
            opened_on: dt.date | str = "1980-01-01", **extra: Any) -> dict[str, Any]:
    """A child_protection.case row (due 40 years after closure; two approvers)."""
    return {"record_id": record_id, "category": "child_protection.case",
            "controller": controller, "opened_on": opened_on, "closed_on": closed_on, **extra}


def at(ctx: Context, day: dt.date, *, actor: str | None = None) -> Context:
    """The same registry and policy, on another day (noon UTC), optionally as another actor."""
    clock = FixedClock(dt.datetime(day.year, day.month, day.day, 12, 0, tzinfo=dt.UTC))
    return dataclasses.replace(ctx, clock=clock, actor=actor or ctx.actor)


def as_actor(ctx: Context, actor: str) -> Context:
    """The same context acting as someone else."""
    return dataclasses.replace(ctx, actor=actor)


def audit_counts(ctx: Context) -> Counter[str]:
    """How many audit events of each kind the registry holds."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(m.AuditEvent.kind, func.count()).group_by(m.AuditEvent.kind))
        return Counter({kind: n for kind, n in rows})


def snapshot(ctx: Context) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table, for before/after comparisons of refused operations."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with ctx.sessions() as session:
        present = set(inspect(session.connection()).get_table_names())
        for table in m.Base.metadata.sorted_tables:
            if table.name not in present:
                continue
            pk = list(table.primary_key.columns)
            rows = session.execute(select(table).order_by(*pk)).all()
            out[table.name] = [tuple(r) for r in rows]
    return out


def records_by_key(ctx: Context) -> dict[str, m.Record]:
    """Records keyed by their record_id."""
    with ctx.sessions() as session:
        return {r.record_key: r for r in session.scalars(select(m.Record))}


def disposals_of(ctx: Context, record_key: str) -> list[m.Disposal]:
    """Every case of one record, oldest first."""
    with ctx.sessions() as session:
        return list(session.scalars(
            select(m.Disposal).join(m.Record, m.Record.id == m.Disposal.record_id)
            .where(m.Record.record_key == record_key).order_by(m.Disposal.id)))


def live_case(ctx: Context, record_key: str) -> m.Disposal:
    """The record's one live case (fails when there is none or more than one)."""
    live = [d for d in disposals_of(ctx, record_key) if d.state in m.OPEN_STATES]
    assert len(live) == 1, f"{record_key}: live cases {[(d.id, d.state) for d in live]}"
    return live[0]


def states(ctx: Context) -> dict[str, list[str]]:
    """The states of every record's cases, oldest first, by record_id."""
    with ctx.sessions() as session:
        rows = session.execute(
            select(m.Record.record_key, m.Disposal.state)
            .join(m.Record, m.Record.id == m.Disposal.record_id).order_by(m.Disposal.id))
        out: dict[str, list[str]] = {}
        for key, state in rows:
            out.setdefault(key, []).append(state)
        return out


def active_approvers(ctx: Context, disposal_id: int) -> list[str]:
    """The approvers of a case whose approvals are not voided."""
    with ctx.sessions() as session:
        return list(session.scalars(
            select(m.Approval.approver).where(m.Approval.disposal_id == disposal_id,
                                              m.Approval.voided_at.is_(None))
            .order_by(m.Approval.id)))
