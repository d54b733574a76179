"""The first day's backlog: an estate with years of overdue records, from import to every
certificate notified (issue 14, item 5).

``python -m bench.backlog --records 1000000 --backend postgresql --json FILE``

A council switching retentiond on for the first time has a backlog: everything that fell due
while nobody was scheduling disposals. The estate is the harness's (``bench/estate.py``), with
due dates reaching back ``--backlog-days`` (default 640 days: about 10% of the records due).
Every phase calls the product's own code, one after the other, as the daemon and two IG
officers would on that day:

1. ``import_records`` of the estate (and ``import_controllers``, ``add_agreement``);
2. the holds the council already keeps, from one file (``import_holds``, as ``retentiond holds
   import`` does; ``BENCH_HOLDS_ONE_BY_ONE=1`` calls ``place_hold`` for each instead);
3. ``evaluate``: every due, unheld record is queued;
4. **approval by filter** (``bulk_review.approve_matching``): the first IG officer approves
   every case pending review in one action (the figure for "100,000 cases approved by filter"),
   the second then approves what still needs a second person (child protection and
   looked-after records need two);
5. ``execute_due`` through the SQL connector (the holding database is filled, untimed, with a
   case file and three notes for every approved case), ``--batch-size`` cases a claim;
6. ``issue_certificates`` (batch ``run``: one certificate per controller, more for a
   controller past 1,000 disposals);
7. ``deliver_notifications`` by email, to an SMTP server on loopback (aiosmtpd) that keeps
   nothing: every certificate's disposals end ``notified``.

``total_s`` is the sum of the timed phases 1 to 7; the harness checks at the end that every
case queued is ``notified`` (or was left out for a reason it reports).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.backends import database, server_version
from bench.estate import write_estate
from bench.execute import (
    CASE_FILE_NOTES,
    CASE_FILES,
    NOTES_PER_FILE,
    _holding,
    holding_engine,
    holding_rows,
    make_signer,
)
from bench.memory import peak_rss_mb
from bench.run import CPU_S, DEFAULT_PACK, _analyze, _log, _place_holds, _timed
from retentiond.clock import FixedClock
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.holds import import_holds
from retentiond.ingest.records import import_records
from retentiond.lifecycle.agreements import add_agreement
from retentiond.lifecycle.bulk_review import approve_matching, preview_matching
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.filters import Criteria
from retentiond.logs import configure_logging
from retentiond.policy import load_policy_set
from retentiond.registry.db import make_engine, session_factory, upgrade
from retentiond.registry.models import Disposal, Record

#: Days of overdue records on the first day: about 10% of the harness's estate.
BACKLOG_DAYS = 640
PENDING = Criteria(state="pending_review")


def _fill_holding(engine: Any, locators: list[str]) -> None:
    """Case files and notes for ``locators``, written in large multi-row inserts (untimed)."""
    _holding.create_all(engine)
    with engine.begin() as conn:
        for start in range(0, len(locators), 5000):
            chunk = locators[start:start + 5000]
            conn.execute(CASE_FILES.insert(), [
                {"locator": loc, "subject": "synthetic", "body": "synthetic case file " * 20}
                for loc in chunk])
            conn.execute(CASE_FILE_NOTES.insert(), [
                {"locator": loc, "note": f"synthetic note {n}"}
                for loc in chunk for n in range(NOTES_PER_FILE)])


def _preview(ctx: Context, actor: str) -> int:
    """What the confirmation page shows the officer: the count they confirm."""
    return preview_matching(dataclasses.replace(ctx, actor=actor), "approve", PENDING).acting


def _approve(ctx: Context, actor: str, expected: int) -> dict[str, Any]:
    officer = dataclasses.replace(ctx, actor=actor)
    result = approve_matching(officer, PENDING, reason="first-day backlog: reviewed by filter",
                              expected=expected)
    return {"acted": result.acted, "completed": result.completed, "waiting": result.waiting,
            "left_out": {lo.code: lo.count for lo in result.left_out}}


def _smtp() -> tuple[Any, int]:
    """An SMTP server on loopback that accepts and counts every message."""
    from aiosmtpd.controller import Controller

    class Count:
        received = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Count.received += 1
            return "250 taken"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    controller.count = Count  # type: ignore[attr-defined]
    return controller, port


def run(*, records: int, backend: str, as_of: dt.date, seed: int, keep: bool,
        backlog_days: int, batch_size: int, stop_after: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"records": records, "backend": backend, "backlog_days": backlog_days,
                           "execute_batch_size": batch_size}
    workdir = Path(tempfile.mkdtemp(prefix="retentiond-backlog-"))
    try:
        with database(backend, workdir, keep=keep, log=_log) as url, \
                database(backend, workdir, keep=keep, role="holding", log=_log) as holding_url:
            out.update(_run_in(url, holding_url, workdir, records=records, as_of=as_of,
                               seed=seed, backlog_days=backlog_days, batch_size=batch_size,
                               stop_after=stop_after))
            out["machine"] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                              "database": f"{backend} {server_version(backend, url)}"}
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["cpu_s"] = dict(CPU_S)
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _run_in(url: str, holding_url: str, workdir: Path, *, records: int, as_of: dt.date,
            seed: int, backlog_days: int, batch_size: int, stop_after: str | None = None
            ) -> dict[str, Any]:
    from retentiond.certificates.issue import issue_certificates
    from retentiond.connectors import ConnectorRegistry
    from retentiond.connectors.sql import KeyedTable, SqlConnector
    from retentiond.lifecycle.execute import execute_due
    from retentiond.notify.channels import build_channels
    from retentiond.notify.outbox import deliver_notifications
    from retentiond.notify.settings import NotifySettings, SmtpSettings

    out: dict[str, Any] = {}
    times: dict[str, float] = {}
    loads: dict[str, float] = {}

    def timed(key: str, label: str, fn: Any) -> Any:
        loads[key] = round(os.getloadavg()[0], 1)
        result, seconds, _ = _timed(key, label, fn)
        times[key] = round(seconds, 2)
        return result

    (controllers_csv, records_csv, holds_csv, stats), _, _ = _timed(
        "generate", f"generate {records:,} records ({backlog_days} days of backlog)",
        lambda: write_estate(workdir, records=records, as_of=as_of, seed=seed,
                             backlog_days=backlog_days))
    out["estate"] = stats.as_json()
    engine = make_engine(url)
    upgrade(engine)
    clock = FixedClock(dt.datetime(as_of.year, as_of.month, as_of.day, 12, tzinfo=dt.UTC))
    ctx = Context(sessions=session_factory(engine), policy=load_policy_set([DEFAULT_PACK]),
                  clock=clock, actor="bench")

    def load() -> Any:
        import_controllers(ctx, controllers_csv)
        add_agreement(ctx, code="ISA-EDU-2024", title="Educational indicators: schools and LA",
                      notice="3m", action="return")
        return import_records(ctx, records_csv, fmt="csv")

    imported = timed("import", "import", load)
    assert imported.rows == records, imported
    if os.environ.get("BENCH_HOLDS_ONE_BY_ONE"):
        out["holds_how"] = "place_hold, one call each"
        out["holds_placed"] = timed("holds", "place holds", lambda: _place_holds(ctx, holds_csv))
    else:
        out["holds_how"] = "holds import (one file, one transaction)"
        out["holds_placed"] = timed("holds", "import holds",
                                    lambda: len(import_holds(ctx, holds_csv).hold_ids))
    _analyze(engine)
    ev = timed("evaluate", "evaluate", lambda: evaluate(ctx, as_of))
    out["queued"] = ev.queued
    out["queued_fraction"] = round(ev.queued / records, 4)
    _analyze(engine)
    for key, actor in (("first", "ig.officer.one"), ("second", "ig.officer.two")):
        expected = timed(f"preview_{key}", f"count what approving by filter would do ({actor})",
                         lambda actor=actor: _preview(ctx, actor))
        out[f"approve_{key}"] = timed(
            f"approve_{key}", f"approve {expected:,} cases by filter ({actor})",
            lambda actor=actor, expected=expected: _approve(ctx, actor, expected))
    out["approved_by_filter_per_s"] = round(
        out["approve_first"]["acted"] / times["approve_first"]) if times["approve_first"] else None
    if stop_after == "approve":
        out["seconds"] = times
        out["load_average_at_start_of"] = loads
        with ctx.sessions() as session:
            out["cases_by_state"] = dict(session.execute(
                select(Disposal.state, func.count()).group_by(Disposal.state)).all())
        engine.dispose()
        return out
    _analyze(engine)

    with ctx.sessions() as session:
        locators = [loc for loc in session.scalars(
            select(Record.locator).join(Disposal, Disposal.record_id == Record.id)
            .where(Disposal.state == "approved")) if loc]
        systems = [s for s in session.scalars(select(Record.system).distinct()) if s]
    holding = holding_engine(holding_url)
    _log(f"filling the holding database with {len(locators):,} case files (untimed)")
    _fill_holding(holding, locators)
    connector = SqlConnector("holding", holding_url, KeyedTable("case_files", "locator"),
                             (KeyedTable("case_file_notes", "locator"),))
    registry = ConnectorRegistry({"holding": connector}, dict.fromkeys(systems, "holding"))
    try:
        executed = timed("execute", f"execute_due ({len(locators):,} cases, batches of "
                         f"{batch_size})", lambda: execute_due(
                             ctx, registry, owner="bench-backlog", batch_size=batch_size,
                             lease_s=3600))
    finally:
        registry.close()
    out["executed"] = executed.executed
    left = holding_rows(holding)
    holding.dispose()
    if executed.executed != len(locators) or left:
        raise RuntimeError(f"execute_due executed {executed.executed} of {len(locators)} "
                           f"({executed.as_json()}); {left} holding rows left")

    if stop_after == "execute":
        out["seconds"] = times
        out["load_average_at_start_of"] = loads
        engine.dispose()
        return out
    signer = make_signer(workdir / "keys", ctx.clock.now())
    issued = timed("certify", "issue_certificates", lambda: issue_certificates(
        ctx, signer, batch="run"))
    out["certificates_issued"] = len(issued)

    smtp, port = _smtp()
    settings = NotifySettings(sender="retentiond@council.example", ig_email=None,
                              smtp=SmtpSettings(host="127.0.0.1", port=port, security="none",
                                                username=None, password=None, ca_file=None,
                                                timeout_s=30))
    try:
        delivered = timed("notify", "deliver_notifications (email)", lambda: deliver_notifications(
            ctx, build_channels(settings), owner="bench-backlog"))
    finally:
        smtp.stop()
    out["notifications"] = delivered.as_json()
    out["emails_received"] = smtp.count.received
    with ctx.sessions() as session:
        by_state = dict(session.execute(select(Disposal.state, func.count())
                                        .group_by(Disposal.state)).all())
    out["cases_by_state"] = by_state
    if by_state.get("notified", 0) != len(locators):
        raise RuntimeError(f"{by_state.get('notified', 0)} cases notified of {len(locators)}: "
                           f"{by_state}")
    out["seconds"] = times
    out["load_average_at_start_of"] = loads
    out["total_s"] = round(sum(times.values()), 1)
    engine.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backlog", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 4, 1))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--backlog-days", type=int, default=BACKLOG_DAYS)
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="cases execute_due claims at a time (the daemon's "
                        "[daemon.jobs.execute] batch_size; default 1000)")
    parser.add_argument("--stop-after", choices=["approve", "execute"], default=None,
                        help="stop after the approvals by filter, or after execution (the "
                        "figures up to there alone)")
    args = parser.parse_args(argv)
    configure_logging(level="warning")
    started = time.perf_counter()
    figures = run(records=args.records, backend=args.backend, as_of=args.as_of, seed=args.seed,
                  keep=args.keep, backlog_days=args.backlog_days, batch_size=args.batch_size,
                  stop_after=args.stop_after)
    figures["wall_s_with_harness"] = round(time.perf_counter() - started, 1)
    text = json.dumps(figures, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
