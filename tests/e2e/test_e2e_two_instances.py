"""Two ``retentiond run`` instances on one PostgreSQL registry share one queue of disposals:
every case is done exactly once, and when one instance is SIGKILLed mid-batch the other
reaps its leases and finishes the work, still exactly once.

The queue size is ``RETENTIOND_TWO_N`` (default 200)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from daemon_harness import DaemonProcess, free_port
from disposal_support import (
    DUE_DOB,
    audit_verifies,
    bulk_files,
    bulk_holding,
    case_states,
    context,
    daemon_config,
    event_counts,
    holding_upns,
    live_count,
    seed,
    wait_until,
)
from execution_support import holding_database
from sqlalchemy import func, select

from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.review import approve, list_disposals
from retentiond.registry.db import make_engine
from retentiond.registry.models import AuditEvent, Disposal

pytestmark = pytest.mark.postgres
N = int(os.environ.get("RETENTIOND_TWO_N", "200"))


@pytest.fixture
def holding_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL holding database beside the registry."""
    yield from holding_database(database_url, tmp_path)


def _queue(database_url: str, holding_url: str, tmp_path: Path) -> tuple[dict[str, int], Path]:
    """N due records (a third in the folder, the rest in the holding DB), evaluated into
    review but not yet approved; returns record key -> case id and the folder."""
    rows = [{"record_id": f"T{i:04d}", "system": "files" if i % 3 == 0 else "mis",
             "locator": f"t{i}" if i % 3 == 0 else f"U{i}", "date_of_birth": DUE_DOB}
            for i in range(N)]
    bulk_holding(holding_url, [str(r["locator"]) for r in rows if r["system"] == "mis"])
    files = tmp_path / "files"
    bulk_files(files, [str(r["locator"]) for r in rows if r["system"] == "files"])
    ctx = context(database_url)
    seed(ctx, tmp_path, rows)
    evaluate(ctx, ctx.clock.today())
    return {c.record_id: c.id for c in list_disposals(ctx)}, files


def _approve_all(database_url: str, ids: list[int]) -> None:
    """Approve the whole queue in one transaction, so both instances find it at once."""
    approve(context(database_url), ids, reason="retention period over; checked")


def _start_two(database_url: str, holding_url: str, files: Path, tmp_path: Path,
               lease_s: int) -> dict[str, DaemonProcess]:
    # As under systemd/retentiond@.service: one shared config file; each instance's name and
    # metrics port come from its environment.
    config = daemon_config(tmp_path / "shared.toml", database_url, holding_url, files,
                           batch_size=10, lease_s=lease_s, interval_s=0.5, reap_s=0.5)
    daemons, ports = {}, {}
    for name in ("alpha", "beta"):
        ports[name] = free_port()
        daemons[name] = DaemonProcess(config, tmp_path / f"{name}.log", env={
            "RETENTIOND_INSTANCE": name,
            "RETENTIOND_METRICS_LISTEN": f"127.0.0.1:{ports[name]}"})
    for d in daemons.values():
        d.wait_log("daemon_started", timeout=60)
    for name, port in ports.items():
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert f'instance="{name}"' in metrics, metrics[:500]
    return daemons


def _claims_by_owner(database_url: str) -> Counter[str]:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        data = conn.scalars(select(AuditEvent.data).where(AuditEvent.kind == "DisposalClaimed"))
        owners = Counter(str((d or {}).get("owner")) for d in data)
    engine.dispose()
    return owners


def _check_all_done_once(database_url: str, holding_url: str, files: Path,
                         cases: dict[str, int], tmp_path: Path) -> None:
    states = case_states(database_url)
    assert Counter(states.values()) == Counter({"executed": N})  # none failed, none left
    executed = event_counts(database_url, "DisposalExecuted")
    assert set(executed) == set(cases.values()) and max(executed.values()) == 1
    assert holding_upns(holding_url) == (set(), set())
    assert list(files.iterdir()) == []
    assert audit_verifies(tmp_path, database_url).startswith("audit trail intact")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_instances_share_the_queue_and_do_each_case_once(
        database_url: str, holding_url: str, tmp_path: Path) -> None:
    """Both instances claim work from one queue; each case is executed exactly once."""
    cases, files = _queue(database_url, holding_url, tmp_path)
    daemons = _start_two(database_url, holding_url, files, tmp_path, lease_s=60)
    try:
        _approve_all(database_url, list(cases.values()))
        wait_until(lambda: live_count(database_url) == 0, timeout=90, what="the queue to drain")
        for d in daemons.values():
            d.send(signal.SIGTERM)
        for d in daemons.values():
            assert d.wait(timeout=20) == 0, d.stderr_text()
    finally:
        for d in daemons.values():
            d.stop()
    owners = _claims_by_owner(database_url)
    assert set(owners) == {"alpha", "beta"} and sum(owners.values()) == N  # each claimed once
    assert not event_counts(database_url, "DisposalLeaseExpired")
    _check_all_done_once(database_url, holding_url, files, cases, tmp_path)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_other_instance_reaps_and_finishes_after_one_is_sigkilled(
        database_url: str, holding_url: str, tmp_path: Path) -> None:
    """SIGKILL one instance mid-batch: the other reaps its leases and finishes, exactly once."""
    cases, files = _queue(database_url, holding_url, tmp_path)
    daemons = _start_two(database_url, holding_url, files, tmp_path, lease_s=3)
    engine = make_engine(database_url)

    def alpha_in_hand() -> int:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Disposal).where(
                Disposal.state == "executing", Disposal.lease_owner == "alpha")) or 0)

    try:
        _approve_all(database_url, list(cases.values()))
        wait_until(lambda: alpha_in_hand() >= 5, timeout=60, interval=0.01,
                   what="alpha to hold a batch")
        daemons["alpha"].send(signal.SIGKILL)
        daemons["alpha"].wait(timeout=10)
        orphaned = alpha_in_hand()
        assert orphaned >= 1  # killed mid-batch: leased cases left behind
        wait_until(lambda: live_count(database_url) == 0, timeout=90, what="the queue to drain")
        daemons["beta"].send(signal.SIGTERM)
        assert daemons["beta"].wait(timeout=20) == 0, daemons["beta"].stderr_text()
    finally:
        engine.dispose()
        for d in daemons.values():
            d.stop()
    reaped = event_counts(database_url, "DisposalLeaseExpired")
    assert sum(reaped.values()) == orphaned
    engine = make_engine(database_url)
    with engine.connect() as conn:
        previous = {str((d or {}).get("previous_owner")) for d in conn.scalars(
            select(AuditEvent.data).where(AuditEvent.kind == "DisposalLeaseExpired"))}
    engine.dispose()
    assert previous == {"alpha"}
    _check_all_done_once(database_url, holding_url, files, cases, tmp_path)
