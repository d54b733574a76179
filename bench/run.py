"""One benchmark run: generate, import, hold, evaluate (product and hand-written SQL), recompute
after a policy change, execute (once built). Every measured phase calls the product's own code."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from bench.backends import database, server_version
from bench.estate import write_estate
from bench.execute import (
    EXECUTE_BATCH,
    EXECUTE_MAX,
    approve_all,
    fill_holding,
    holding_engine,
    holding_rows,
    make_signer,
    pick_cases,
    raw_delete,
)
from bench.memory import PhasePeak, peak_rss_mb
from bench.raw import forget_evaluation, queued_fingerprint, raw_evaluate
from retentiond.clock import FixedClock
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.agreements import add_agreement
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import place_hold
from retentiond.lifecycle.recompute import recompute_stale
from retentiond.policy import load_policy_set
from retentiond.registry.db import make_engine, session_factory, upgrade
from retentiond.registry.models import Record

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PACK = ROOT / "policies" / "isa-default.toml"
#: The policy change the recompute phase makes: education records kept a year longer (a
#: council extending retention on legal advice about limitation periods).
POLICY_CHANGE = ('period = "25y"', 'period = "26y"')
CHANGED_CATEGORY = "education.pupil_record"


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


#: Where ``--profile`` writes one pyinstrument report per phase (None: no profiling).
PROFILE_DIR: Path | None = None


#: CPU seconds this process spent in each phase: on a busy machine wall time also counts
#: waiting for a core, CPU time does not (the database server's CPU is not in it).
CPU_S: dict[str, float] = {}


def _timed(key: str, label: str, fn: Callable[[], Any]) -> tuple[Any, float, float]:
    _log(f"{label} ... (load average {os.getloadavg()[0]:.1f})")
    cpu = time.process_time()
    profiler: Any = None
    if PROFILE_DIR is not None:
        from pyinstrument import Profiler  # an optional tool: pip install pyinstrument

        profiler = Profiler(interval=0.002)
        profiler.start()
    with PhasePeak() as peak:
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
    CPU_S[key] = round(time.process_time() - cpu, 2)
    if profiler is not None and PROFILE_DIR is not None:
        profiler.stop()
        (PROFILE_DIR / f"{key}.txt").write_text(
            profiler.output_text(unicode=False, color=False, show_all=False))
    _log(f"{label}: {elapsed:.2f} s (CPU {time.process_time() - cpu:.2f} s), "
         f"peak RSS {peak.peak_mb:.0f} MiB")
    return result, elapsed, peak.peak_mb


def _changed_policy(directory: Path) -> Path:
    source = DEFAULT_PACK.read_text()
    if source.count(POLICY_CHANGE[0]) != 1:
        raise RuntimeError(f"cannot make the benchmark's policy change in {DEFAULT_PACK}")
    path = directory / "policies" / DEFAULT_PACK.name
    path.parent.mkdir()
    path.write_text(source.replace(*POLICY_CHANGE))
    return path


def _place_holds(ctx: Context, holds_csv: Path) -> int:
    import csv

    count = 0
    with holds_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            until = dt.date.fromisoformat(row["until"]) if row["until"] else None
            place_hold(ctx, scope=row["scope"], hold_type=row["type"], reason=row["reason"],
                       until=until)
            count += 1
    return count


def _analyze(engine: Engine) -> None:
    # On PostgreSQL autovacuum analyses a freshly loaded table on its own, at a moment of its
    # choosing; doing it here makes the plans (and the figures) repeatable. The CHECKPOINT
    # writes out what the untimed work before it left dirty (at 10M, gigabytes from the
    # load), so that the server's background writes of it do not land in whichever timed
    # phase comes next (at 10M they moved evaluate by 10% between two runs). It needs a
    # superuser or pg_checkpoint; without either the harness goes on without it.
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            try:
                conn.execute(text("CHECKPOINT"))
            except DBAPIError as exc:
                _log(f"no CHECKPOINT ({type(exc.orig).__name__}): timings may include "
                    "background writes")


def _execute_phase(ctx: Context, holding_url: str, workdir: Path, *,
                   execute_max: int = EXECUTE_MAX) -> dict[str, Any]:
    try:
        module = importlib.import_module("retentiond.lifecycle.execute")
    except ImportError:
        module = None
    if module is None or not hasattr(module, "execute_due"):
        _log("execute: retentiond.lifecycle.execute.execute_due is not built yet: skipped")
        return {"execute_disposals_per_s": None, "raw_delete_per_s": None,
                "execute_ratio": None, "execute_note": "not built yet"}
    from retentiond.certificates.issue import issue_certificates
    from retentiond.connectors import ConnectorRegistry
    from retentiond.connectors.sql import KeyedTable, SqlConnector
    from retentiond.lifecycle.review import approve
    from retentiond.registry.models import Disposal

    cases = pick_cases(ctx, execute_max)
    ids, locators = [i for i, _ in cases], [loc for _, loc in cases]
    holding = holding_engine(holding_url)
    fill_holding(holding, locators)
    _, approve_s, _ = _timed("approve", f"approve {len(ids):,} cases (two officers)",
                             lambda: approve_all(ctx, ids, approve))
    with ctx.sessions() as session:
        systems = [s for s in session.scalars(select(Record.system).distinct()) if s]
    connector = SqlConnector("holding", holding_url, KeyedTable("case_files", "locator"),
                             (KeyedTable("case_file_notes", "locator"),))
    registry = ConnectorRegistry({"holding": connector}, dict.fromkeys(systems, "holding"))
    try:
        result, execute_s, execute_mb = _timed(
            "execute", "execute_due (SQL connector)",
            lambda: module.execute_due(ctx, registry, owner="bench-1", batch_size=EXECUTE_BATCH,
                                       lease_s=3600))
    finally:
        registry.close()
    left = holding_rows(holding)
    if result.executed != len(ids) or left:
        raise RuntimeError(f"execute_due executed {result.executed} of {len(ids)} cases "
                           f"({result.as_json()}); {left} holding rows left")
    # Certificates are part of a disposal (the daemon's certify job issues them for what was
    # executed): one signed certificate (JSON, JWS, PAdES PDF) per controller, in the chain.
    signer = make_signer(workdir / "keys", ctx.clock.now())
    issued, certify_s, _ = _timed("certify", "issue_certificates (one per controller)",
                                  lambda: issue_certificates(ctx, signer, batch="run"))
    certified = sum(c.records for c in issued)
    with ctx.sessions() as session:
        uncertified = session.scalar(select(func.count()).select_from(Disposal)
                                     .where(Disposal.state == "executed"))
    if certified != len(ids) or uncertified:
        raise RuntimeError(f"issue_certificates certified {certified} of {len(ids)} "
                           f"disposals; {uncertified} left executed")
    fill_holding(holding, locators)
    _log("raw batched DELETE ...")
    raw_s = raw_delete(holding, locators)
    _log(f"raw batched DELETE: {raw_s:.2f} s")
    if holding_rows(holding):
        raise RuntimeError("the hand-written DELETE left holding rows")
    holding.dispose()
    total_s = execute_s + certify_s
    execute_rate = result.executed / total_s if total_s else None
    bare_rate = result.executed / execute_s if execute_s else None
    raw_rate = len(locators) / raw_s if raw_s else None
    return {
        "executed": result.executed,
        "execute_batch_size": EXECUTE_BATCH,
        "approve_s": round(approve_s, 2),
        "execute_s": round(execute_s, 2),
        "certify_s": round(certify_s, 2),
        "certificates_issued": len(issued),
        "execute_peak_rss_mb": round(execute_mb, 1),
        # The target figure: execution with its audit events and its certificates.
        "execute_disposals_per_s": round(execute_rate, 1) if execute_rate else None,
        "execute_without_certificates_per_s": round(bare_rate, 1) if bare_rate else None,
        "raw_delete_per_s": round(raw_rate, 1) if raw_rate else None,
        "execute_ratio": round(execute_rate / raw_rate, 4) if execute_rate and raw_rate else None,
        "execute_ratio_without_certificates": (round(bare_rate / raw_rate, 4)
                                               if bare_rate and raw_rate else None),
    }


def run(*, records: int, backend: str, as_of: dt.date, seed: int, keep: bool,
        execute_max: int = EXECUTE_MAX) -> dict[str, Any]:
    """Run every phase; return the figures."""
    out: dict[str, Any] = {"records": records, "backend": backend}
    workdir = Path(tempfile.mkdtemp(prefix="retentiond-bench-"))
    try:
        with database(backend, workdir, keep=keep, log=_log) as url, \
                database(backend, workdir, keep=keep, role="holding", log=_log) as holding_url:
            out.update(_run_in(url, holding_url, workdir, records=records, backend=backend,
                               as_of=as_of, seed=seed, execute_max=execute_max))
    finally:
        if keep:
            _log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["cpu_s"] = dict(CPU_S)
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _run_in(url: str, holding_url: str, workdir: Path, *, records: int, backend: str, as_of: dt.date,
            seed: int, execute_max: int = EXECUTE_MAX) -> dict[str, Any]:
    out: dict[str, Any] = {}
    (controllers_csv, records_csv, holds_csv, stats), gen_s, _ = _timed(
        "generate", f"generate {records:,} records",
        lambda: write_estate(workdir, records=records, as_of=as_of, seed=seed))
    out["estate"] = stats.as_json()
    out["as_of"] = as_of.isoformat()
    out["generate_s"] = round(gen_s, 2)
    out["csv_mb"] = round(records_csv.stat().st_size / 2**20, 1)

    engine = make_engine(url)
    upgrade(engine)
    clock = FixedClock(dt.datetime(as_of.year, as_of.month, as_of.day, 12, tzinfo=dt.UTC))
    policy = load_policy_set([DEFAULT_PACK])
    ctx = Context(sessions=session_factory(engine), policy=policy, clock=clock, actor="bench")
    import_controllers(ctx, controllers_csv)
    add_agreement(ctx, code="ISA-EDU-2024", title="Educational indicators: schools and LA",
                  notice="3m", action="return")

    result, import_s, import_mb = _timed("import", "import_records",
                                         lambda: import_records(ctx, records_csv, fmt="csv"))
    assert result.rows == records, result
    out["import_s"] = round(import_s, 2)
    out["import_records_per_s"] = round(records / import_s)
    out["import_peak_rss_mb"] = round(import_mb, 1)

    holds, holds_s, _ = _timed("holds", "place holds", lambda: _place_holds(ctx, holds_csv))
    out["holds_placed"] = holds
    out["holds_place_s"] = round(holds_s, 2)
    _analyze(engine)
    with ctx.sessions() as session:
        due = session.scalar(select(func.count()).select_from(Record).where(Record.due_on <= as_of))
    out["due"] = int(due or 0)

    ev, evaluate_s, evaluate_mb = _timed("evaluate", "evaluate", lambda: evaluate(ctx, as_of))
    out["evaluate_s"] = round(evaluate_s, 3)
    out["evaluate_peak_rss_mb"] = round(evaluate_mb, 1)
    out["queued"] = ev.queued
    out["due_unheld_fraction"] = round(ev.queued / records, 4)
    with engine.begin() as conn:
        product = queued_fingerprint(conn, ev.evaluation_id)
        forget_evaluation(conn, ev.evaluation_id)
    _analyze(engine)

    def raw() -> tuple[int, int]:
        with engine.begin() as conn:
            return raw_evaluate(conn, as_of=as_of, now=clock.now(), actor="bench",
                                policy_version=policy.version)

    (raw_id, _), raw_s, _ = _timed("evaluate_raw_sql", "evaluate (hand-written SQL)", raw)
    with engine.connect() as conn:
        hand = queued_fingerprint(conn, raw_id)
    if hand != product:
        raise RuntimeError(f"hand-written SQL queued {hand} but evaluate queued {product}")
    out["evaluate_raw_sql_s"] = round(raw_s, 3)
    out["evaluate_ratio"] = round(evaluate_s / raw_s, 2) if raw_s else None

    out.update(_execute_phase(ctx, holding_url, workdir, execute_max=execute_max))

    changed = load_policy_set([_changed_policy(workdir)])
    ctx2 = Context(sessions=ctx.sessions, policy=changed, clock=clock, actor="bench")
    rc, recompute_s, recompute_mb = _timed("recompute", f"recompute_stale ({CHANGED_CATEGORY} changed)",
                                           lambda: recompute_stale(ctx2))
    out["recompute"] = {"recomputed": rc.recomputed, "changed": rc.changed,
                        "relabelled": rc.relabelled, "withdrawn": rc.withdrawn,
                        "seconds": round(recompute_s, 2)}
    out["recompute_records_per_s"] = round(rc.recomputed / recompute_s) if recompute_s else None
    out["recompute_peak_rss_mb"] = round(recompute_mb, 1)

    out["machine"] = {"nproc": os.cpu_count(), "python": platform.python_version(),
                      "database": f"{backend} {server_version(backend, url)}"}
    engine.dispose()
    return out
