"""Two workers on one PostgreSQL registry share the queue: no case is done twice."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from execution_support import (
    DUE_DOB,
    connectors,
    holding_database,
    holding_upns,
    make_holding,
    queue_and_approve,
    seed,
)
from sqlalchemy import func, select

from retentiond.connectors import ConnectorRegistry
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.execute import execute_due
from retentiond.registry.db import make_engine, session_factory
from retentiond.registry.models import AuditEvent, Disposal

pytestmark = pytest.mark.postgres
N = 30


@pytest.fixture
def holding_url(database_url, tmp_path):
    """A holding database beside the registry, on the same backend."""
    yield from holding_database(database_url, tmp_path)


class Recording:
    """Wraps a connector; records which worker deleted which idempotency key."""

    def __init__(self, inner, worker, log, lock):
        self.inner, self.worker, self.log, self.lock = inner, worker, log, lock
        self.name, self.kind = inner.name, inner.kind

    def delete(self, ref, key):
        with self.lock:
            self.log.append((self.worker, key))
        time.sleep(0.005)  # long enough for the other worker to claim meanwhile
        return self.inner.delete(ref, key)

    def exists(self, ref):
        return self.inner.exists(ref)

    def export(self, ref):
        return self.inner.export(ref)

    def close(self):
        self.inner.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_workers_share_a_queue_without_doing_anything_twice(ctx, database_url, tmp_path,
                                                                holding_url, policy, clock):
    """Each approved case is claimed, deleted and executed by exactly one of two workers."""
    upns = [f"U{i:03d}" for i in range(N)]
    make_holding(holding_url, upns)
    seed(ctx, tmp_path, [{"record_id": f"R{i:03d}", "system": "mis", "locator": u,
                          "date_of_birth": DUE_DOB} for i, u in enumerate(upns)])
    queue_and_approve(ctx)
    log: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)
    results = {}

    def worker(name):
        engine = make_engine(database_url)
        own = Context(sessions=session_factory(engine), policy=policy, clock=clock, actor=name)
        real = connectors(tmp_path / name, holding_url)
        registry = ConnectorRegistry({"mis": Recording(real.get("mis"), name, log, lock)},
                                     {"mis": "mis"})
        barrier.wait()
        try:
            results[name] = execute_due(own, registry, owner=name, batch_size=4, lease_s=60)
        finally:
            real.close()
            engine.dispose()

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results["a"].executed + results["b"].executed == N
    assert results["a"].executed > 0 and results["b"].executed > 0
    keys = Counter(key for _, key in log)
    assert len(keys) == N and set(keys.values()) == {1}
    assert holding_upns(holding_url)[0] == set()
    with ctx.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Disposal)
                              .where(Disposal.state == "executed")) == N
        per_case = Counter(session.scalars(
            select(AuditEvent.entity_id).where(AuditEvent.kind == "DisposalExecuted")))
        claims = Counter(session.scalars(
            select(AuditEvent.entity_id).where(AuditEvent.kind == "DisposalClaimed")))
    assert len(per_case) == N and set(per_case.values()) == {1}
    assert set(claims.values()) == {1}
