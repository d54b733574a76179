"""The daemon (a subprocess) runs its sources on their schedules, and survives being SIGKILLed
in the middle of a run with nothing half-applied: after each kill a source's records are all
there or none are, an inbox file is unread, or applied once and then moved to done/.

``RETENTIOND_SOURCES_KILLS`` (default 3) kills at seeded random points
(``RETENTIOND_SOURCES_SEED``) of runs of ``RETENTIOND_SOURCES_N`` (default 20,000) rows each.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from daemon_harness import DaemonProcess, write_config
from disposal_support import audit_verifies, wait_until
from sqlalchemy import create_engine, func, select, text

from retentiond.clock import SystemClock
from retentiond.ingest.controllers import import_controllers
from retentiond.lifecycle.context import Context
from retentiond.policy import load_policy_set
from retentiond.registry.db import make_engine, session_factory, upgrade
from retentiond.registry.models import ImportRun, Record, SourceRun

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("RETENTIOND_SOURCES_N", "20000"))
KILLS = int(os.environ.get("RETENTIOND_SOURCES_KILLS", "3"))
SEED = int(os.environ.get("RETENTIOND_SOURCES_SEED", "20261204"))
#: Every job but the one under test is switched off.
QUIET = "\n".join(f"[daemon.jobs.{job}]\nenabled = false" for job in (
    "expire_holds", "evaluate", "advance_notice", "reap_leases", "execute", "certify",
    "deliver", "digest"))


def _registry(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = make_engine(url)
    upgrade(engine)
    controllers = tmp_path / "controllers.csv"
    controllers.write_text("code,name,email\nLA-01,Synthetic Borough Council,ig@la01.example\n")
    ctx = Context(sessions=session_factory(engine), clock=SystemClock(), actor="test.setup",
                  policy=load_policy_set([ROOT / "policies" / "isa-default.toml"]))
    import_controllers(ctx, controllers)
    engine.dispose()
    return url


def _rows(prefix: str, n: int) -> list[tuple[str, str, str, str]]:
    return [(f"{prefix}-{i:06d}", "safeguarding.referral", "LA-01",
             (dt.date(2019, 1, 1) + dt.timedelta(days=i % 700)).isoformat()) for i in range(n)]


def _holding(tmp_path: Path, n: int) -> str:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE cases (ref TEXT, kind TEXT, org TEXT, opened TEXT)"))
        conn.execute(text("INSERT INTO cases VALUES (:a, :b, :c, :d)"),
                     [dict(zip("abcd", r, strict=True)) for r in _rows("W", n)])
    engine.dispose()
    return url


def _inbox_file(folder: Path, name: str, n: int) -> None:
    tmp = folder / f".{name}.part"
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["record_id", "category", "controller", "opened_on"])
        w.writerows(_rows("M", n))
    tmp.rename(folder / name)  # a hidden name while written: never read half-written


def _config(tmp_path: Path, registry: str, holding: str, *, interval_s: float) -> Path:
    sources = f"""
[daemon.jobs.sources]
interval_s = 0.5

[sources.mis]
kind = "inbox"
path = "{tmp_path / 'inbox'}"
mode = "full"
interval_s = {interval_s}
settle_s = 0.3

[sources.wh]
kind = "sql"
url = "{holding}"
query = "SELECT ref, kind AS category, org AS controller, opened AS opened_on FROM cases"
columns = {{ record_id = "ref" }}
mode = "full"
interval_s = {interval_s}
"""
    return write_config(tmp_path / "retentiond.toml", registry, daemon="", extra=QUIET + sources)


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        by_source = dict(conn.execute(select(Record.source, func.count())
                                      .group_by(Record.source)).all())
        imports = conn.scalar(select(func.count()).select_from(ImportRun)
                              .where(ImportRun.filename.like("%-export.csv")))
        runs = dict(conn.execute(select(SourceRun.source, func.count())
                                 .where(SourceRun.outcome == "ok")
                                 .group_by(SourceRun.source)).all())
        running = conn.scalar(select(func.count()).select_from(SourceRun)
                              .where(SourceRun.outcome == "running"))
    engine.dispose()
    return {"mis": int(by_source.get("mis", 0)), "wh": int(by_source.get("wh", 0)),
            "imports": int(imports or 0), "mis_runs": int(runs.get("mis", 0)),
            "wh_runs": int(runs.get("wh", 0)), "running": int(running or 0)}


def test_daemon_runs_sources_on_schedule(tmp_path: Path) -> None:
    """Sources run on their own schedules: the query every interval, the inbox file once it
    is whole, moved to done/ with its receipt; the outcome is on /metrics-backed counts."""
    registry = _registry(tmp_path)
    (tmp_path / "inbox").mkdir()
    config = _config(tmp_path, registry, _holding(tmp_path, 50), interval_s=1)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("daemon_started")
        wait_until(lambda: _counts(registry)["wh"] == 50, 30, "the SQL source's records")
        _inbox_file(tmp_path / "inbox", "export.csv", 30)
        wait_until(lambda: _counts(registry)["mis"] == 30, 30, "the inbox file's records")
        wait_until(lambda: _counts(registry)["wh_runs"] >= 3, 30, "three runs of the query")
        done = sorted(p.name for p in (tmp_path / "inbox" / "done").iterdir())
        assert [n.split("-", 2)[2] for n in done] == ["export.csv", "export.csv.receipt.json"]
    finally:
        daemon.stop()
    assert audit_verifies(tmp_path, registry)
    listed = subprocess.run(
        [sys.executable, "-m", "retentiond.cli.main", "--config", str(config), "sources", "list",
         "--format", "json"], capture_output=True, text=True, check=True, cwd=tmp_path)
    doc = {s["name"]: s for s in json.loads(listed.stdout)}
    assert doc["wh"]["last_run"]["outcome"] == "ok"
    assert doc["mis"]["last_run"]["counts"]["files_done"] >= 0
    ran = subprocess.run(
        [sys.executable, "-m", "retentiond.cli.main", "--config", str(config), "sources", "run",
         "wh", "--force"], capture_output=True, text=True, cwd=tmp_path)
    assert ran.returncode == 0 and ran.stdout.startswith("wh: ok: 50 rows, 50 unchanged"), ran


def test_sigkill_mid_run_leaves_nothing_half_applied(tmp_path: Path) -> None:
    """SIGKILL while sources run: after each kill each source's records are all there or none
    (one transaction a run), no run is left 'running', the inbox file is applied at most once;
    after a restart everything is applied exactly once and the audit trail verifies."""
    rng = random.Random(SEED)
    registry = _registry(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _inbox_file(inbox, "export.csv", N)
    config = _config(tmp_path, registry, _holding(tmp_path, N), interval_s=3600)
    kills = interrupted = 0
    for _ in range(KILLS):
        daemon = DaemonProcess(config, tmp_path / "daemon.log")
        try:
            daemon.wait_log("daemon_started", timeout=60)
            # Mid-run: the inbox file has been claimed (its run has begun) or the first run
            # has already committed and the next is reading the query.
            wait_until(lambda: not (inbox / "export.csv").exists(), 60, "the file claimed",
                       interval=0.02)
            time.sleep(rng.uniform(0.0, 0.5))
            daemon.send(signal.SIGKILL)
            daemon.wait(10)
            kills += 1
        finally:
            daemon.stop()
        c = _counts(registry)
        # Killed after the claim and before the commit: the file waits in work/, unapplied.
        interrupted += c["mis"] == 0 and any((inbox / "work").iterdir())
        assert c["mis"] in (0, N) and c["wh"] in (0, N), c
        assert c["imports"] <= 1 and c["running"] == 0, c
        assert c["imports"] == (1 if c["mis"] == N else 0), c
        if c["mis"] == N and c["wh"] == N:
            break
    assert kills >= 1 and interrupted >= 1, (kills, interrupted)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("daemon_started", timeout=60)
        wait_until(lambda: (lambda c: c["mis"] == N and c["wh"] == N)(_counts(registry)), 120,
                   "both sources applied")
        wait_until(lambda: any(p.name.endswith("export.csv.receipt.json")
                               for p in (inbox / "done").iterdir()), 30, "the receipt")
    finally:
        daemon.stop()
    c = _counts(registry)
    assert c["imports"] == 1 and c["running"] == 0, c
    assert not [p for p in (inbox / "work").iterdir()]
    assert audit_verifies(tmp_path, registry)
