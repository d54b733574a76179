"""The daemon's jobs on real SQLite and PostgreSQL: the once-per-date slot, the counts behind
metrics and the digest, ``--once`` exit status, and SIGTERM finishing the job in hand."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from retentiond.clock import FixedClock
from retentiond.config import Config
from retentiond.daemon import jobs as daemon_jobs
from retentiond.daemon.jobs import (
    JobEnv,
    JobOutcome,
    Pipeline,
    Wiring,
    job_advance_notice,
    job_certify,
    job_deliver,
    job_digest,
    job_evaluate,
    load_wiring,
)
from retentiond.daemon.queries import CountsCache, registry_counts
from retentiond.daemon.service import Service
from retentiond.daemon.settings import load_settings
from retentiond.daemon.slots import SCHEDULER_ACTOR, evaluated_on, nightly_slot
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.holds import place_hold

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 11, 22)


def seed(ctx, tmp_path: Path) -> None:
    """Synthetic records either side of ``DAY``: long overdue, held, recently due, not due,
    and one that cannot be decided (an open child protection case)."""
    (tmp_path / "c.csv").write_text("code,name,email\nLA-01,Synthetic Council,ig@la.example\n")
    import_controllers(ctx, tmp_path / "c.csv")
    (tmp_path / "r.csv").write_text(
        "record_id,category,controller,subject_ref,date_of_birth,opened_on,closed_on\n"
        "R-OLD,safeguarding.referral,LA-01,,,2001-01-01,\n"
        "R-HELD,safeguarding.referral,LA-01,,,2002-01-01,\n"
        "R-RECENT,safeguarding.referral,LA-01,,,2020-11-10,\n"
        "R-LATER,education.pupil_record,LA-01,S-INT-1,2020-05-06,,\n"
        "R-OPEN,child_protection.case,LA-01,,,1990-01-01,\n")
    import_records(ctx, tmp_path / "r.csv")
    place_hold(ctx, scope="record:R-HELD", hold_type="legal", reason="litigation (synthetic)")


def env_for(ctx, wiring: Wiring | None = None) -> JobEnv:
    engine = ctx.sessions.kw["bind"]
    settings = load_settings(Config(raw={}))
    counts = CountsCache(ctx.sessions, ctx.clock, grace_days=30, max_age_s=0)
    return JobEnv(ctx=ctx, engine=engine, settings=settings,
                  wiring=wiring or Wiring(pipeline=Pipeline(unavailable="x")),
                  stop=threading.Event(), owner="test:1", counts=counts)


def test_nightly_evaluation_runs_once_per_london_date(ctx, tmp_path):
    """The first run of a date evaluates; the next is skipped; a new date runs again."""
    seed(ctx, tmp_path)
    sched = dataclasses.replace(ctx, actor=SCHEDULER_ACTOR)
    engine = ctx.sessions.kw["bind"]
    assert not evaluated_on(engine, DAY)
    first = job_evaluate(env_for(sched))
    assert first.status == "ok" and first.counts["queued"] == 2
    assert evaluated_on(engine, DAY)
    again = job_evaluate(env_for(sched))
    assert again.status == "skipped" and "already ran for 2026-11-22" in again.note
    tomorrow = dataclasses.replace(
        sched, clock=FixedClock(dt.datetime(2026, 11, 23, 3, 30, tzinfo=dt.UTC)))
    assert job_evaluate(env_for(tomorrow)).status == "ok"


def test_an_officer_evaluation_does_not_use_up_the_nightly_slot(ctx, tmp_path):
    """Only the scheduler's own evaluation counts: a manual 'retentiond evaluate' does not."""
    from retentiond.lifecycle.evaluate import evaluate

    evaluate(ctx, DAY)
    assert not evaluated_on(ctx.sessions.kw["bind"], DAY)


@pytest.mark.postgres
def test_two_instances_ticking_together_evaluate_once(pg_template, pg_admin, tmp_path):
    """On PostgreSQL a second instance that ticks while the first evaluates skips at once."""
    import uuid

    from sqlalchemy import text

    from retentiond.registry.db import make_engine

    name = f"retentiond_t_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    engine = make_engine(str(pg_admin.url.set(database=name).render_as_string(False)))
    try:
        with nightly_slot(engine, DAY) as a:
            assert a.claimed
            with nightly_slot(engine, DAY) as b:
                assert not b.claimed and "another instance" in b.reason
    finally:
        engine.dispose()
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_counts_for_metrics_and_digest(ctx, tmp_path):
    """Due, overdue (past the grace, not held), pending, needing attention, by state."""
    seed(ctx, tmp_path)
    job_evaluate(env_for(dataclasses.replace(ctx, actor=SCHEDULER_ACTOR)))
    with ctx.sessions() as session:
        c = registry_counts(session, DAY, grace_days=30)
    assert c.records == {"pending_review": 2, "retained": 3}
    assert c.pending_review == 2 and c.failed == 0
    assert c.due == 3            # R-OLD, R-HELD, R-RECENT
    assert c.overdue == 1        # R-OLD: R-HELD is held, R-RECENT is within the grace
    assert c.needs_attention == 1
    assert c.pending_by_category == {"safeguarding.referral": 2}
    assert c.oldest_pending_due_on == dt.date(2007, 1, 1)
    with ctx.sessions() as session:
        assert registry_counts(session, DAY, grace_days=0).overdue == 2

    digest = job_digest(env_for(ctx))
    assert digest.counts["pending_review"] == 2 and digest.counts["overdue"] == 1
    assert "email" in digest.note


def _config(database_url: str, **daemon) -> Config:
    return Config(source=None, database_url=database_url, actor="test",
                  policy_paths=[str(ROOT / "policies" / "isa-default.toml")],
                  raw={"daemon": {"heartbeat_s": 0.1, "stop_timeout_s": 10, **daemon},
                       "metrics": {"listen": ""}})


def test_run_once_exits_non_zero_when_a_job_fails(database_url, monkeypatch, capsys):
    """A failing job is reported and makes --once exit 1; the other jobs still run."""
    def broken(env):
        raise RuntimeError("connector exploded")

    monkeypatch.setitem(daemon_jobs.JOBS, "reap_leases", broken)
    assert Service(_config(database_url)).run_once() == 1
    out = capsys.readouterr().out
    assert "reap_leases: failed (RuntimeError: connector exploded)" in out
    assert "evaluate: ok" in out and "digest: ok" in out


def test_sigterm_finishes_the_job_in_hand(database_url, monkeypatch):
    """SIGTERM while a job runs: the job finishes (told to stop), no new job starts, exit 0."""
    started, finished = threading.Event(), []

    def slow(env):
        started.set()
        time.sleep(0.8)
        finished.append(env.stop.is_set())
        return JobOutcome(counts={"done": 1})

    monkeypatch.setitem(daemon_jobs.JOBS, "execute", slow)
    cfg = _config(database_url, jobs={"execute": {"interval_s": 3600},
                                      "reap_leases": {"enabled": False}})
    service = Service(cfg)

    def terminate():
        if started.wait(20):
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate, daemon=True).start()
    t0 = time.monotonic()
    assert service.serve() == 0
    assert finished == [True]
    assert service.health.jobs()["execute"].last_outcome == "ok"
    assert time.monotonic() - t0 < 15


def test_certify_is_unavailable_until_the_signing_keys_exist(ctx, tmp_path):
    """Certify says why it cannot run until the keys exist; then it, deliver and notices run."""
    from retentiond.certificates.keys import init_keys

    cfg = Config(source=str(tmp_path / "retentiond.toml"),
                 raw={"certificates": {"issuer": "Synthetic Borough Council", "key_dir": "keys"}})
    wiring = load_wiring(cfg)
    assert "keys init" in wiring.unavailable()["certificates"]
    outcome = job_certify(env_for(ctx, wiring))
    assert outcome.status == "unavailable" and "keys init" in outcome.note

    init_keys(tmp_path / "keys", issuer="Synthetic Borough Council",
              now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    wiring = load_wiring(cfg)
    assert not {"certificates", "notifications", "advance notices"} & set(wiring.unavailable())
    env = env_for(ctx, wiring)
    assert job_certify(env).counts == {"certificates": 0, "records": 0, "notifications": 0}
    assert job_deliver(env).status == "ok"
    assert job_advance_notice(env).counts == {"notices": 0, "records": 0}


def test_run_once_emails_the_digest_it_queues(database_url, tmp_path, capsys):
    """One --once pass queues the IG digest and delivers it by email in that same pass, not a
    day later with the next run."""
    from notify_support import SmtpReceiver

    smtp = SmtpReceiver().start()
    try:
        cfg = _config(database_url)
        cfg.raw["notify"] = {"from": "retentiond@la01.example", "ig_email": "ig-team@la01.example",
                             "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none"}}
        assert Service(cfg).run_once() == 0
        out = capsys.readouterr().out
        assert "digest: ok" in out and "deliver: ok" in out
        subjects = [m["Subject"] for m in smtp.received.all]
    finally:
        smtp.stop()
    assert len(subjects) == 1 and subjects[0].startswith("retentiond digest ")


def test_digest_counts_cooling_off_and_exceptions(ctx, tmp_path):
    """The digest counts cases in cooling-off (with the day the first may be carried out) and
    exceptions waiting for an IG officer (with how long the oldest has waited), and says so in
    plain words with the command that lists each."""
    from sqlalchemy import select, update

    from retentiond.lifecycle.review import raise_exception
    from retentiond.notify.digest import digest_text
    from retentiond.registry.models import Disposal

    seed(ctx, tmp_path)
    job_evaluate(env_for(dataclasses.replace(ctx, actor=SCHEDULER_ACTOR)))
    quiet = job_digest(env_for(ctx)).counts
    assert quiet["cooling_off"] == 0 and quiet["exceptions"] == 0
    assert "cooling_off_ends_in_days" not in quiet and "oldest_exception_days" not in quiet
    with ctx.sessions() as session:
        first, second = session.scalars(select(Disposal.id).order_by(Disposal.id)).all()
    # Raised by a reviewer five days before the digest's date.
    earlier = FixedClock(dt.datetime(2026, 11, 17, 12, 0, tzinfo=dt.UTC))
    raise_exception(dataclasses.replace(ctx, actor="reviewer", clock=earlier), [first],
                    reason="category looks wrong (synthetic)")
    # Set up as the last-stage approval leaves it: cooling off until three days after.
    with ctx.sessions.begin() as session:
        session.execute(update(Disposal).where(Disposal.id == second).values(
            state="cooling_off", cooling_until=dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)))
    env = env_for(dataclasses.replace(ctx, clock=FixedClock(
        dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC))))
    counts = job_digest(env).counts
    assert counts["cooling_off"] == 1 and counts["cooling_off_ends_in_days"] == 3
    assert counts["exceptions"] == 1 and counts["oldest_exception_days"] == 5
    _, text = digest_text({"as_of": DAY.isoformat(), **counts})
    assert ("1 approved case is in cooling-off: an IG officer can still cancel it back to "
            "review. It may be carried out on 25 November 2026 (in 3 days).") in text
    assert ("1 case raised as an exception by a reviewer is waiting for an IG officer to decide. "
            "The oldest was raised 5 days ago.") in text
    assert "retentiond disposals list --state cooling_off" in text
    assert "retentiond disposals list --state exception" in text
