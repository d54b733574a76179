"""``retentiond run`` as systemd runs it: a subprocess with ``$NOTIFY_SOCKET``, signals, HTTP."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_harness import DEFAULT_PACK, DaemonProcess, NotifyListener, free_port, write_config
from sqlalchemy import select, text

from retentiond.clock import FixedClock
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.context import Context
from retentiond.policy import load_policy_set
from retentiond.registry.db import current_revision, head_revision, make_engine, session_factory
from retentiond.registry.models import Disposal, Evaluation, Record


def _pg_url(admin_url: str, name: str) -> str:
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A registry database that exists but has never been migrated, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    name = f"retentiond_e2e_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield _pg_url(str(admin.url.render_as_string(hide_password=False)), name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def notify_socket() -> Iterator[NotifyListener]:
    """An abstract-namespace notify socket, as systemd would give."""
    listener = NotifyListener()
    yield listener
    listener.close()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _seed(database_url: str, tmp_path: Path) -> None:
    """Two synthetic records: one long due (a 2001 referral), one not due until 2045."""
    engine = make_engine(database_url)
    ctx = Context(sessions=session_factory(engine), policy=load_policy_set([DEFAULT_PACK]),
                  clock=FixedClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)), actor="seed")
    (tmp_path / "c.csv").write_text("code,name,email\nLA-01,Synthetic Council,ig@la.example\n")
    import_controllers(ctx, tmp_path / "c.csv")
    (tmp_path / "r.csv").write_text(
        "record_id,category,controller,subject_ref,date_of_birth,opened_on\n"
        "E2E-DUE,safeguarding.referral,LA-01,,,2001-03-04\n"
        "E2E-LATER,education.pupil_record,LA-01,S-E2E-1,2020-05-06,\n")
    import_records(ctx, tmp_path / "r.csv")
    engine.dispose()


def test_service_lifecycle(empty_registry_url: str, notify_socket: NotifyListener,
                           tmp_path: Path) -> None:
    """READY=1 after migration, WATCHDOG=1, HTTP, catch-up, SIGTERM exits 0 with STOPPING=1."""
    port = free_port()
    config = write_config(tmp_path / "retentiond.toml", empty_registry_url, metrics_port=port)
    daemon = DaemonProcess(config, tmp_path / "daemon.log", notify=notify_socket,
                           watchdog_usec=600_000)
    try:
        migrating = notify_socket.wait_for(lambda m: m == "STATUS=starting: migrating the database")
        ready = notify_socket.wait_for(lambda m: m == "READY=1", after=migrating)
        engine = make_engine(empty_registry_url)
        assert current_revision(engine) == head_revision()
        assert not any(m.startswith("WATCHDOG=") for m in notify_socket.fields()[:ready])

        status = notify_socket.fields()[ready + 1]
        assert status.startswith("STATUS=") and "next evaluation" in status

        start = time.monotonic()
        dogs = ready
        for _ in range(3):
            dogs = notify_socket.wait_for(lambda m: m == "WATCHDOG=1", timeout=5, after=dogs + 1)
        assert time.monotonic() - start < 5

        daemon.wait_log("evaluation_catch_up")
        daemon.wait_log("evaluation_finished")
        with engine.connect() as conn:
            actors = conn.execute(select(Evaluation.actor)).scalars().all()
        assert actors == ["retentiond:scheduler"]
        engine.dispose()

        code, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200, body
        health = json.loads(body)
        assert health["status"] == "ok" and health["phase"] == "ready"
        assert health["jobs"]["evaluate"]["last_outcome"] == "ok"

        code, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        for needle in ('retentiond_registry_up 1.0', 'retentiond_disposals{state="pending_review"}',
                       'retentiond_records_overdue', 'retentiond_records_due',
                       'retentiond_job_last_success_timestamp_seconds{job="evaluate"}',
                       'retentiond_job_duration_seconds_bucket{job="evaluate"'):
            assert needle in body, needle
        assert _get(f"http://127.0.0.1:{port}/nothing")[0] == 404

        before = time.monotonic()
        daemon.send(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
        assert time.monotonic() - before < 5
        assert "STOPPING=1" in notify_socket.fields()
        assert daemon.logs()[-1]["event"] == "stopped"
    finally:
        daemon.stop()


def test_sighup_keeps_old_policy_when_new_one_is_bad(notify_socket: NotifyListener,
                                                     tmp_path: Path) -> None:
    """SIGHUP with a broken pack keeps the old version running; with a good one it switches."""
    pack = tmp_path / "pack.toml"
    pack.write_text(DEFAULT_PACK.read_text(encoding="utf-8"), encoding="utf-8")
    config = write_config(tmp_path / "retentiond.toml", f"sqlite:///{tmp_path / 'r.db'}",
                          policies=[pack])
    daemon = DaemonProcess(config, tmp_path / "daemon.log", notify=notify_socket)
    try:
        notify_socket.wait_for(lambda m: m == "READY=1")
        old = daemon.wait_log("daemon_started")["policy_version"]

        pack.write_text("[pack]\nname = 'broken'\n[[rules]]\nid = 3\n", encoding="utf-8")
        mark = len(notify_socket.fields())
        daemon.send(signal.SIGHUP)
        refused = daemon.wait_log("reload_refused")
        assert refused["kept_policy_version"] == old
        assert refused["problems"] and all("pack.toml" in p for p in refused["problems"])
        notify_socket.wait_for(lambda m: "last reload refused" in m and old in m, after=mark)
        time.sleep(0.3)
        assert daemon.proc.poll() is None

        pack.write_text(DEFAULT_PACK.read_text(encoding="utf-8") + "\n# edited\n",
                        encoding="utf-8")
        n = len(daemon.logs())
        daemon.send(signal.SIGHUP)
        reloaded = daemon.wait_log("reloaded", after=n)
        assert reloaded["previous_policy_version"] == old
        assert reloaded["policy_version"] != old
        notify_socket.wait_for(lambda m: m.startswith("STATUS=") and reloaded["policy_version"] in m
                               and "refused" not in m, after=mark)

        daemon.send(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
    finally:
        daemon.stop()


def test_run_once_evaluates_and_exits(database_url: str, tmp_path: Path) -> None:
    """``run --once`` queues exactly the due record and exits 0; a second pass skips evaluation."""
    _seed(database_url, tmp_path)
    config = write_config(tmp_path / "retentiond.toml", database_url)
    first = DaemonProcess(config, tmp_path / "once1.log", args=("--once",))
    try:
        assert first.wait(timeout=30) == 0, first.stderr_text()
        out = first.proc.stdout.read().decode() if first.proc.stdout else ""
    finally:
        first.stop()
    assert "evaluate: ok" in out and "digest: ok" in out
    engine = make_engine(database_url)
    with engine.connect() as conn:
        queued = conn.execute(
            select(Record.record_key, Disposal.state).join(Disposal, Disposal.record_id == Record.id)
        ).all()
    engine.dispose()
    assert [tuple(r) for r in queued] == [("E2E-DUE", "pending_review")]

    second = DaemonProcess(config, tmp_path / "once2.log", args=("--once",))
    try:
        assert second.wait(timeout=30) == 0, second.stderr_text()
        out = second.proc.stdout.read().decode() if second.proc.stdout else ""
    finally:
        second.stop()
    assert "evaluate: skipped (evaluation" in out


def test_second_daemon_on_one_sqlite_file_refuses(notify_socket: NotifyListener,
                                                  tmp_path: Path) -> None:
    """SQLite is single-instance: a second daemon on the same file exits with a clear error."""
    config = write_config(tmp_path / "retentiond.toml", f"sqlite:///{tmp_path / 'r.db'}")
    first = DaemonProcess(config, tmp_path / "first.log", notify=notify_socket)
    second = None
    try:
        notify_socket.wait_for(lambda m: m == "READY=1")
        second = DaemonProcess(config, tmp_path / "second.log")
        assert second.wait(timeout=20) == 75
        err = second.stderr_text()
        assert "already running" in err and f"pid {first.pid}" in err and "r.db" in err
        assert first.proc.poll() is None
    finally:
        if second is not None:
            second.stop()
        first.stop()


def test_refuses_unmigrated_database_without_migrate_on_start(tmp_path: Path) -> None:
    """With ``migrate_on_start = false`` an empty database is refused (exit 78), never READY."""
    config = write_config(tmp_path / "retentiond.toml", f"sqlite:///{tmp_path / 'r.db'}",
                          daemon="migrate_on_start = false")
    listener = NotifyListener(tmp_path)
    daemon = DaemonProcess(config, tmp_path / "d.log", notify=listener)
    try:
        assert daemon.wait(timeout=20) == 78
        assert "retentiond db upgrade" in daemon.stderr_text()
        time.sleep(0.1)
        fields = listener.fields()
        assert "READY=1" not in fields
        assert any(f.startswith("STATUS=failed to start") for f in fields)
    finally:
        daemon.stop()
        listener.close()
