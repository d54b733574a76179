"""Shared plumbing of the daemon disposal tests (``test_e2e_disposal_run``,
``test_e2e_fault_sigkill``, ``test_e2e_two_instances``): a config with real connectors, a cheap
bulk holding database and folder, a registry seeded in bulk, and the checks on what the daemon
did. Builds on ``daemon_harness`` and on the integration tests' ``execution_support``.
Every value is synthetic.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon_harness import DEFAULT_PACK, write_config
from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests" / "integration") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "integration"))

from cli_harness import Cli  # noqa: E402
from execution_support import DUE_DOB, NOT_DUE_DOB, holding_upns, seed  # noqa: E402

from retentiond.clock import SystemClock  # noqa: E402
from retentiond.lifecycle.context import Context  # noqa: E402
from retentiond.lifecycle.evaluate import evaluate  # noqa: E402
from retentiond.lifecycle.review import approve, list_disposals  # noqa: E402
from retentiond.policy import load_policy_set  # noqa: E402
from retentiond.registry.db import make_engine, session_factory  # noqa: E402
from retentiond.registry.models import AuditEvent, Disposal, Record  # noqa: E402

__all__ = ["DUE_DOB", "NOT_DUE_DOB", "holding_upns", "seed"]

#: Cases that are still work for the executor.
LIVE = ("approved", "executing")


def daemon_config(path: Path, registry_url: str, holding_url: str, files_root: Path, *,
                  batch_size: int = 20, lease_s: int = 600, interval_s: float = 1.0,
                  reap_s: float = 1.0, instance: str = "") -> Path:
    """A daemon config with an ``sql`` connector (``mis``: pupils and their marks) and a
    ``filesystem`` connector (system ``files``), and fast execute and reap jobs."""
    daemon = f"instance = {json.dumps(instance)}" if instance else ""
    extra = f"""
[daemon.jobs.execute]
interval_s = {interval_s}
batch_size = {batch_size}
lease_s = {lease_s}

[daemon.jobs.reap_leases]
interval_s = {reap_s}

[connectors.mis]
kind = "sql"
url = {json.dumps(holding_url)}
table = "pupils"
key_column = "upn"
children = [{{ table = "pupil_marks", key_column = "upn" }}]

[connectors.casefiles]
kind = "filesystem"
systems = ["files"]
root = {json.dumps(str(files_root))}

# The command line's reviews act as named officers from one operating-system user: the
# break-glass of docs/cli.md.
[cli]
allow_actor_override = true
"""
    return write_config(path, registry_url, daemon=daemon, extra=extra)


def cli(tmp_path: Path, registry_url: str, config: Path, actor: str = "officer.one") -> Cli:
    """The command line against the registry, with the daemon's config file."""
    c = Cli(tmp_path, registry_url, actor=actor)
    c.env["RETENTIOND_CONFIG"] = str(config)
    return c


def bulk_holding(url: str, upns: Sequence[str]) -> None:
    """``pupils`` and its child ``pupil_marks`` (two marks each), filled in one transaction."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pupils (upn VARCHAR(20) PRIMARY KEY, note TEXT)"))
        conn.execute(text("CREATE TABLE pupil_marks (id INTEGER PRIMARY KEY, "
                          "upn VARCHAR(20) NOT NULL REFERENCES pupils(upn), mark INTEGER)"))
        if upns:
            conn.execute(text("INSERT INTO pupils VALUES (:u, 'synthetic')"),
                         [{"u": u} for u in upns])
            conn.execute(text("INSERT INTO pupil_marks VALUES (:id, :u, :m)"),
                         [{"id": i * 2 + j, "u": u, "m": 40 + j}
                          for i, u in enumerate(upns) for j in (0, 1)])
    engine.dispose()


def bulk_files(root: Path, names: Sequence[str]) -> None:
    """One small file per case under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_text("synthetic case file\n")


def context(registry_url: str, actor: str = "officer.one") -> Context:
    """A lifecycle context on the registry with the real clock (the daemon's clock)."""
    return Context(sessions=session_factory(make_engine(registry_url)),
                   policy=load_policy_set([DEFAULT_PACK]), clock=SystemClock(), actor=actor)


def seed_approved(ctx: Context, tmp_path: Path, rows: Sequence[dict[str, Any]],
                  approve_keys: set[str]) -> dict[str, int]:
    """Import ``rows``, evaluate as of today, approve the cases of ``approve_keys`` in chunks;
    return record key -> disposal id of every case queued."""
    seed(ctx, tmp_path, rows)
    evaluate(ctx, ctx.clock.today())
    cases = {c.record_id: c.id for c in list_disposals(ctx)}
    chosen = [cases[k] for k in sorted(approve_keys)]
    for i in range(0, len(chosen), 500):
        approve(ctx, chosen[i:i + 500], reason="retention period over; checked")
    return cases


def case_states(registry_url: str) -> dict[str, str]:
    """Record key -> state of its newest case."""
    engine = make_engine(registry_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Record.record_key, Disposal.state)
                            .join(Disposal, Disposal.record_id == Record.id)
                            .order_by(Disposal.id)).all()
    engine.dispose()
    return {k: s for k, s in rows}


def live_count(registry_url: str) -> int:
    """Cases still approved or executing."""
    engine = make_engine(registry_url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(Disposal)
                        .where(Disposal.state.in_(LIVE)))
    engine.dispose()
    return int(n or 0)


def event_counts(registry_url: str, kind: str) -> Counter[int]:
    """Disposal id -> how many audit events of ``kind`` it has."""
    engine = make_engine(registry_url)
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEvent.entity_id, func.count())
                            .where(AuditEvent.entity == "disposal", AuditEvent.kind == kind)
                            .group_by(AuditEvent.entity_id)).all()
    engine.dispose()
    return Counter({int(e): int(n) for e, n in rows})


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> None:
    """Poll ``predicate`` until it is true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def audit_verifies(tmp_path: Path, registry_url: str) -> str:
    """``retentiond audit verify`` exits 0; its output."""
    result = Cli(tmp_path, registry_url).run("audit", "verify")
    return result.out


def today() -> dt.date:
    return SystemClock().today()
