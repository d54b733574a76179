"""Helpers for the certificate and notification tests: signing keys, executed disposals.

Executed disposals are made without the execution pipeline: records are imported, evaluated
and approved through the lifecycle, then marked executed with the columns the pipeline fills
(``disposal_executions``). Every value is synthetic.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from int_support import at, load_records, pupil, referral, seed_controllers
from sqlalchemy import select, update

from retentiond.certificates.keys import Signer, init_keys, load_signer
from retentiond.certificates.settings import CertificateSettings
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.review import approve
from retentiond.registry import models as m

ISSUER = "Synthetic Borough Council"
#: When the test keys were made: before the tests' TODAY, so certificates issued "today" are
#: within the keys' validity.
KEYS_MADE = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
#: Keys are made once per test session (RSA key generation is slow); see ``keys_dir``.
_KEYS: dict[str, Path] = {}


def make_keys(base: Path, *, issuer: str = ISSUER) -> Path:
    """A key directory made by ``keys init`` (created once per session and name)."""
    if issuer not in _KEYS:
        directory = base / f"keys-{len(_KEYS)}"
        init_keys(directory, issuer=issuer, now=KEYS_MADE)
        _KEYS[issuer] = directory
    return _KEYS[issuer]


def settings_for(directory: Path, *, issuer: str = ISSUER, batch: str = "run") -> CertificateSettings:
    """Certificate settings reading keys from ``directory``."""
    return CertificateSettings(where="test", issuer=issuer, issuer_contact="ig@la01.example",
                               key_dir=directory, batch=batch, files={})


def signer_for(directory: Path, *, issuer: str = ISSUER) -> Signer:
    """The signer whose keys are in ``directory``."""
    return load_signer(settings_for(directory, issuer=issuer))


def executed(ctx: Context, tmp_path: Path, rows: Sequence[dict[str, Any]], *,
             manual: Sequence[str] = (), returned: Sequence[str] = ()) -> list[int]:
    """Import ``rows``, queue and approve them, then mark them executed as the pipeline
    would; ``manual`` and ``returned`` name records done by hand or returned. Returns the
    disposal ids."""
    load_records(ctx, tmp_path, rows)
    evaluate(ctx, ctx.clock.today())
    keys = [r["record_id"] for r in rows]
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        cases = session.execute(
            select(m.Disposal.id, m.Record.record_key, m.Record.system, m.Disposal.action)
            .join(m.Record, m.Record.id == m.Disposal.record_id)
            .where(m.Record.record_key.in_(keys), m.Disposal.state == "pending_review")
            .order_by(m.Disposal.id)).all()
    ids = [c[0] for c in cases]
    approve(ctx, ids, reason="due under the agreement; checked")
    # Two-approver rules need a second person.
    approve(dataclasses.replace(ctx, actor="officer.two"),
            [i for i in ids if _state(ctx, i) == "pending_review"], reason="second approval") \
        if any(_state(ctx, i) == "pending_review" for i in ids) else None
    with ctx.sessions.begin() as session:
        for did, key, system, action in cases:
            row: dict[str, Any] = {
                "disposal_id": did, "action": "return" if key in returned else action,
                "system": system or "case-db", "connector": "casedb",
                "connector_kind": "manual" if key in manual else "sql",
                "method": "rows deleted from the case database",
                "verification": "exists() is false after delete",
                "executed_at": now, "updated_at": now,
            }
            if key in returned:
                row.update(package_name=f"{did}.zip", package_sha256="ab" * 32,
                           package_delivered_at=now, method="package returned, then deleted")
            if key in manual:
                row.update(destroyed_by="Shred-It Synthetic Ltd", destroyed_on=now.date(),
                           destruction_method="cross-cut shredding", certificate_no="SH-0001",
                           confirmed_by="officer.one", confirmed_at=now,
                           method="destroyed by hand", verification="confirmed with evidence")
            session.add(m.DisposalExecution(**row))
            session.execute(update(m.Disposal).where(m.Disposal.id == did).values(
                state="executed", action="return" if key in returned else action,
                updated_at=now))
    return ids


def _state(ctx: Context, disposal_id: int) -> str:
    with ctx.sessions() as session:
        return session.get_one(m.Disposal, disposal_id).state


def standard_set(ctx: Context, tmp_path: Path) -> list[int]:
    """Controllers, and five executed disposals across two controllers (one manual, one
    returned)."""
    seed_controllers(ctx, tmp_path)
    rows = [
        pupil("PUP-001", "1999-03-04", system="mis"),
        pupil("PUP-002", "2000-05-06", system="mis"),
        pupil("PUP-003", "1998-01-02", system="paper-archive"),
        referral("REF-001", "2019-01-10", system="case-db"),
        referral("REF-002", "2018-06-01", system="case-db"),
    ]
    return executed(ctx, tmp_path, rows, manual=["PUP-003"], returned=["PUP-002"])


def on(ctx: Context, day: dt.date, *, hour: int = 12) -> Context:
    """The same registry on another day (and hour, UTC)."""
    moved = at(ctx, day)
    clock = dataclasses.replace(moved.clock)
    clock.instant = clock.instant.replace(hour=hour)  # type: ignore[attr-defined]
    return dataclasses.replace(moved, clock=clock)
