"""The watchdog is fed only while the scheduler loop is healthy."""

from __future__ import annotations

import socket
import uuid

import pytest

from retentiond.config import Config
from retentiond.daemon.health import Health
from retentiond.daemon.service import Service, describe_error


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def health(t: FakeTime) -> Health:
    return Health(heartbeat_max_age_s=10, stall_s={"evaluate": 60, "execute": 30}, monotonic=t)


def test_no_heartbeat_yet_is_not_healthy():
    """Until the scheduler has run its heartbeat once, the loop is not known to be alive."""
    assert health(FakeTime()).loop_problems() == ["the scheduler has not run its heartbeat yet"]


def test_a_fresh_heartbeat_is_healthy_and_a_stale_one_is_not():
    """A heartbeat older than heartbeat_max_age_s means the loop has stopped."""
    t = FakeTime()
    h = health(t)
    h.beat()
    t.t += 9
    assert h.loop_problems() == []
    t.t += 2
    assert h.loop_problems() == ["the scheduler's heartbeat is 11s old"]


def test_a_job_running_past_its_stall_limit_is_not_healthy():
    """A job stuck for longer than its stall_s stops the watchdog, so systemd restarts us."""
    t = FakeTime()
    h = health(t)
    h.job_started("execute")
    for _ in range(4):
        t.t += 8
        h.beat()
    assert h.loop_problems() == ["job execute has run for 32s (stall_s is 30)"]
    assert h.job_finished("execute", "ok") == 32
    assert h.loop_problems() == []


def test_job_state_keeps_the_last_success_through_a_failure():
    """A failure records its error but keeps the time of the last success (for metrics)."""
    t = FakeTime()
    h = health(t)
    h.job_started("evaluate")
    h.job_finished("evaluate", "ok")
    ok_at = h.jobs()["evaluate"].last_success_at
    h.job_started("evaluate")
    h.job_finished("evaluate", "failed", error="OperationalError: boom")
    state = h.jobs()["evaluate"]
    assert state.last_success_at == ok_at and state.failures == 1 and state.runs == 2
    assert state.last_error == "OperationalError: boom"


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"retentiond-test-{uuid.uuid4().hex}"
    sock.bind("\0" + name)
    sock.setblocking(False)
    yield sock, "@" + name
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.extend(sock.recv(4096).decode().split("\n"))
        except BlockingIOError:
            return out


def test_tick_feeds_the_watchdog_only_while_healthy(listener):
    """The main loop's tick sends WATCHDOG=1 when the heartbeat is fresh, and not otherwise."""
    sock, address = listener
    service = Service(Config(source=None, raw={}), environ={"NOTIFY_SOCKET": address})
    t = FakeTime()
    service.health = health(t)
    service.health.beat()
    service._tick(watchdog=30.0)
    assert "WATCHDOG=1" in received(sock)
    t.t += 60
    service._tick(watchdog=30.0)
    msgs = received(sock)
    assert "WATCHDOG=1" not in msgs
    assert any(m.startswith("STATUS=") and "UNHEALTHY" in m and "heartbeat" in m for m in msgs)
    service.health.beat()
    service._tick(watchdog=30.0)
    assert "WATCHDOG=1" in received(sock)


def test_database_errors_are_described_without_their_parameters():
    """Only the driver's first line is logged: parameters and DETAIL may name a record."""
    from sqlalchemy.exc import IntegrityError

    orig = Exception('duplicate key value violates unique constraint "x"\n'
                     "DETAIL:  Key (record_key)=(R-SECRET) already exists.")
    exc = IntegrityError("INSERT INTO records ...", {"record_key": "R-SECRET"}, orig)
    text = describe_error(exc)
    assert text == 'Exception: duplicate key value violates unique constraint "x"'
    assert "R-SECRET" not in text
