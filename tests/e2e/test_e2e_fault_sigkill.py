"""A run of at least 1,000 disposals survives the daemon being SIGKILLed at seeded random points
and restarted: nothing disposed early or under a hold, nothing lost, nothing done twice, no
audit event missing.

The size is ``RETENTIOND_FAULT_N`` (default 1000) approved disposals, the number of kills
``RETENTIOND_FAULT_KILLS`` (default 5) and the seed ``RETENTIOND_FAULT_SEED`` (default 20261122),
so a larger run can be made by hand (docs/daemon.md, "Fault test")::

    RETENTIOND_FAULT_N=10000 RETENTIOND_FAULT_KILLS=12 .venv/bin/pytest -s \\
        tests/e2e/test_e2e_fault_sigkill.py
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest
from daemon_harness import DaemonProcess
from disposal_support import (
    DUE_DOB,
    NOT_DUE_DOB,
    audit_verifies,
    bulk_files,
    bulk_holding,
    case_states,
    context,
    daemon_config,
    event_counts,
    holding_upns,
    live_count,
    seed_approved,
    wait_until,
)
from sqlalchemy import func, select

from retentiond.lifecycle.holds import place_hold
from retentiond.registry.db import make_engine
from retentiond.registry.models import AuditEvent, Disposal

N = int(os.environ.get("RETENTIOND_FAULT_N", "1000"))
KILLS = int(os.environ.get("RETENTIOND_FAULT_KILLS", "5"))
SEED = int(os.environ.get("RETENTIOND_FAULT_SEED", "20261122"))


def _executed(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(Disposal)
                        .where(Disposal.state == "executed"))
    engine.dispose()
    return int(n or 0)


def _controller(key: str) -> str:
    """Which controller ``_layout`` gave a due record."""
    return "SCH-02" if int(key[1:]) % 97 == 3 else "SCH-01"


def _already_absent(url: str) -> int:
    """Executed events whose connector found the data already gone (a kill after the delete)."""
    engine = make_engine(url)
    with engine.connect() as conn:
        data = conn.scalars(select(AuditEvent.data).where(AuditEvent.kind == "DisposalExecuted"))
        n = sum("already absent" in str((d or {}).get("method", "")) for d in data)
    engine.dispose()
    return n


def _layout(n: int) -> tuple[list[dict[str, object]], set[str], set[str], set[str]]:
    """Rows (a quarter in the folder, the rest in the holding DB), the due keys, the keys to
    hold (a controller-wide hold and per-record holds) and the not-due keys."""
    rows: list[dict[str, object]] = []
    due, held, not_due = set(), set(), set()
    for i in range(n):
        key = f"F{i:05d}"
        files = i % 4 == 0
        under_controller_hold = _controller(key) == "SCH-02"
        rows.append({"record_id": key, "system": "files" if files else "mis",
                     "locator": f"f{i}" if files else f"U{i}", "date_of_birth": DUE_DOB,
                     "controller": "SCH-02" if under_controller_hold else "SCH-01"})
        due.add(key)
        if under_controller_hold or i % 101 == 5:
            held.add(key)
    for j in range(max(10, n // 50)):
        key = f"X{j:05d}"
        files = j % 4 == 0
        rows.append({"record_id": key, "system": "files" if files else "mis",
                     "locator": f"nf{j}" if files else f"NU{j}", "date_of_birth": NOT_DUE_DOB})
        not_due.add(key)
    return rows, due, held, not_due


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigkill_at_random_points_loses_nothing_and_doubles_nothing(
        database_url: str, tmp_path: Path) -> None:
    """SIGKILL + restart repeatedly mid-run: every approved unheld case executed exactly once."""
    rng = random.Random(SEED)
    rows, due, held, not_due = _layout(N)
    locator = {str(r["record_id"]): str(r["locator"]) for r in rows}
    in_files = {str(r["record_id"]) for r in rows if r["system"] == "files"}
    holding_url = f"sqlite:///{tmp_path / 'holding.db'}"
    bulk_holding(holding_url, sorted([locator[k] for k in locator if k not in in_files]
                                     + ["U-STRAY"]))
    files = tmp_path / "files"
    bulk_files(files, sorted([locator[k] for k in in_files] + ["stray"]))

    ctx = context(database_url)
    cases = seed_approved(ctx, tmp_path, rows, approve_keys=due)
    assert set(cases) == due
    place_hold(ctx, scope="controller:SCH-02", hold_type="inquiry", reason="inquiry")
    for i, key in enumerate(sorted(k for k in held if _controller(k) == "SCH-01")):
        place_hold(ctx, scope=f"record:{key}", hold_type="legal", reason=f"litigation {i}")
    expected = due - held
    assert {k for k, s in case_states(database_url).items() if s == "approved"} == expected

    config = daemon_config(tmp_path / "retentiond.toml", database_url, holding_url, files,
                           batch_size=25, lease_s=2, interval_s=0.5, reap_s=0.5)
    started = time.monotonic()
    kills = restarts = 0
    kill_points: list[int] = []
    for k in range(KILLS):
        done = _executed(database_url)
        remaining = len(expected) - done
        if remaining <= 0:
            break
        # At most half of an even share of what is left, so that work remains for every
        # later kill however fast the daemon runs on the machine of the day.
        target = done + rng.randint(1, max(1, remaining // (2 * (KILLS - k + 1))))
        daemon = DaemonProcess(config, tmp_path / f"daemon-{k}.log")
        restarts += k > 0
        try:
            if k % 3 == 1:  # a random delay after start (start-up, catch-up or mid-batch),
                # cut short once the target is reached
                until = time.monotonic() + rng.uniform(0.2, 3.0)
                wait_until(lambda t=target, d=daemon, u=until: (
                    time.monotonic() >= u or _executed(database_url) >= t
                    or d.proc.poll() is not None),
                    timeout=60 + N / 20, what=f"{target} executed", interval=0.02)
            else:  # a random point mid-run: after a random amount of progress
                wait_until(lambda t=target, d=daemon: (_executed(database_url) >= t
                                                       or d.proc.poll() is not None),
                           timeout=60 + N / 20, what=f"{target} executed", interval=0.02)
                time.sleep(rng.uniform(0, 0.1))
            assert daemon.proc.poll() is None, daemon.stderr_text()
            kill_points.append(_executed(database_url))
            daemon.send(signal.SIGKILL)
            daemon.wait(timeout=10)
            kills += 1
        finally:
            daemon.stop()

    daemon = DaemonProcess(config, tmp_path / "daemon-final.log")
    restarts += 1
    try:
        # The queue may already be empty; SIGTERM before the daemon has installed its signal
        # handlers ends it by the default action (-15), which is not what this test checks.
        daemon.wait_log("daemon_started", timeout=60)
        wait_until(lambda: live_count(database_url) == 0, timeout=60 + N / 10,
                   what="the queue to drain")
        daemon.send(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0, daemon.stderr_text()
    finally:
        daemon.stop()
    wall = time.monotonic() - started

    states = case_states(database_url)
    assert {k for k, s in states.items() if s == "executed"} == expected  # none lost
    assert {k for k, s in states.items() if s != "executed"} == held
    assert {states[k] for k in held} == {"held"}  # never executed under a hold
    assert not set(states) & not_due  # never queued, let alone disposed of, early

    survivors = held | not_due
    pupils, marks = holding_upns(holding_url)
    rows_left = {locator[k] for k in survivors if k not in in_files} | {"U-STRAY"}
    assert pupils == rows_left and marks == rows_left
    assert {p.name for p in files.iterdir()} == {locator[k] for k in survivors & in_files} | {"stray"}

    executed_events = event_counts(database_url, "DisposalExecuted")
    assert set(executed_events) == {cases[k] for k in expected}  # every one has its event
    assert max(executed_events.values()) == 1  # and only one: never executed twice
    reaped = sum(event_counts(database_url, "DisposalLeaseExpired").values())
    assert kills == KILLS and reaped >= 1  # the kills landed mid-batch and the leases came back
    assert audit_verifies(tmp_path, database_url).startswith("audit trail intact")
    print(f"\nfault test: N={N} approved ({len(expected)} unheld, {len(held)} held, "
          f"{len(not_due)} not due), kills={kills} at {kill_points} executed, "
          f"restarts={restarts}, leases reaped={reaped}, "
          f"already absent on retry={_already_absent(database_url)}, wall={wall:.1f}s: ok")
