"""Actions carried out one case at a time inside a batch (returns here: each exports,
encrypts and delivers a package, then deletes the source): each case is checked again just
before its own connector call, and the leases of the cases still waiting are renewed, so a
hold placed mid-batch stops the cases after it and a batch slower than its lease is neither
reaped nor repeated by another instance. Groups of deletes renew the leases between them too.
Real registry (both backends), holding database, folder and drop folder."""

from __future__ import annotations

import datetime as dt

import pytest
from execution_support import (
    DUE_DOB,
    connectors,
    events,
    holding_database,
    holding_upns,
    make_files,
    make_holding,
    make_returns,
    queue_and_approve,
    seed,
    states,
)

from retentiond.connectors import ConnectorRegistry, ReturnConnector, delete_each, exists_each
from retentiond.lifecycle.execute import execute_due, reap_leases
from retentiond.lifecycle.holds import place_hold

LEASE_S = 60
KEYS = ("R1", "R2", "R3")


@pytest.fixture
def holding_url(database_url, tmp_path):
    """A holding database beside the registry, on the same backend."""
    yield from holding_database(database_url, tmp_path)


@pytest.fixture
def returns(ctx, tmp_path, holding_url):
    """Three approved returns of one controller, in one batch; record key -> case id."""
    make_holding(holding_url, ["U1", "U2", "U3"])
    seed(ctx, tmp_path, [{"record_id": k, "system": "mis", "locator": f"U{k[1:]}",
                          "date_of_birth": DUE_DOB} for k in KEYS])
    cases = queue_and_approve(ctx)
    make_returns(ctx, list(KEYS))
    return cases


def _deliveries(monkeypatch, during=None):
    """Count each package delivery (by idempotency key), running ``during(key)`` after the
    real delivery, as if the delivery had taken that long or something happened meanwhile."""
    delivered: list[str] = []
    original = ReturnConnector.deliver

    def deliver(self, ref, key):
        package = original(self, ref, key)
        delivered.append(key)
        if during is not None:
            during(key)
        return package

    monkeypatch.setattr(ReturnConnector, "deliver", deliver)
    return delivered


def test_a_hold_placed_mid_batch_stops_the_cases_after_it(ctx, tmp_path, holding_url,
                                                           returns, monkeypatch):
    """A hold placed while the first return is delivered stops the next one before its
    package is made: held, its approval voided, its source data untouched."""
    first = f"disposal-{returns['R1']}"

    def hold_r2(key):
        if key == first:
            place_hold(ctx, scope="record:R2", hold_type="legal", reason="synthetic claim")

    delivered = _deliveries(monkeypatch, hold_r2)
    registry = connectors(tmp_path, holding_url)
    result = execute_due(ctx, registry, owner="w", batch_size=10, lease_s=LEASE_S)
    registry.close()
    assert (result.executed, result.held) == (2, 1)
    assert delivered == [f"disposal-{returns[k]}" for k in ("R1", "R3")]
    assert states(ctx) == {"R1": "executed", "R2": "held", "R3": "executed"}
    assert holding_upns(holding_url)[0] == {"U2"}
    assert not list((tmp_path / "drop" / "SCH-01").glob(f"*-{returns['R2']}.*"))
    assert events(ctx, returns["R2"])[-2:] == ["DisposalClaimed", "DisposalHeld"]


def test_a_batch_slower_than_its_lease_keeps_its_leases(ctx, clock, tmp_path, holding_url,
                                                        returns, monkeypatch):
    """Each delivery takes 0.6 of the lease and another instance reaps after each one: the
    three returns (1.8 leases in all) are carried out once each and nothing is reaped."""
    reaped: list[int] = []

    def slow_then_reap(_key):
        clock.instant += dt.timedelta(seconds=0.6 * LEASE_S)
        reaped.append(reap_leases(ctx))

    delivered = _deliveries(monkeypatch, slow_then_reap)
    registry = connectors(tmp_path, holding_url)
    result = execute_due(ctx, registry, owner="w", batch_size=10, lease_s=LEASE_S)
    registry.close()
    assert (result.executed, result.lease_lost) == (3, 0)
    assert reaped == [0, 0, 0]
    assert sorted(delivered) == sorted(f"disposal-{returns[k]}" for k in KEYS)
    assert set(states(ctx).values()) == {"executed"}
    assert holding_upns(holding_url)[0] == set()


def test_a_case_reaped_mid_batch_is_left_to_whoever_claims_it(ctx, clock, tmp_path,
                                                               holding_url, returns,
                                                               monkeypatch):
    """One delivery outlasts the whole lease (a single call longer than ``lease_s``, which
    the configuration must not allow): every case of the batch is reaped as if this worker
    had died. This worker then leaves the cases after it alone; the next claim carries out
    all three, once each from then on."""
    first = f"disposal-{returns['R1']}"
    reaped: list[int] = []

    def stall_once(key):
        if key == first and not reaped:
            clock.instant += dt.timedelta(seconds=LEASE_S + 1)
            reaped.append(reap_leases(ctx))

    delivered = _deliveries(monkeypatch, stall_once)
    registry = connectors(tmp_path, holding_url)
    result = execute_due(ctx, registry, owner="w", batch_size=10, lease_s=LEASE_S)
    assert reaped == [3]
    assert (result.executed, result.lease_lost) == (0, 3)
    assert delivered == [first]  # R2 and R3 were not started after the lease was lost
    again = execute_due(ctx, registry, owner="w2", batch_size=10, lease_s=LEASE_S)
    registry.close()
    assert again.executed == 3
    # R1's package could not be recorded under a lost lease, so it is made again (same name,
    # same drop folder); R2 and R3 are delivered once.
    assert sorted(delivered) == sorted([first, *(f"disposal-{returns[k]}" for k in KEYS)])
    assert set(states(ctx).values()) == {"executed"}
    assert holding_upns(holding_url)[0] == set()


class SlowDeletes:
    """The real connector (by its batch methods or one record at a time), whose
    ``delete_many`` takes ``fraction`` of the lease (the test clock moves on), after which
    another instance reaps expired leases."""

    def __init__(self, inner, ctx, clock, fraction, reaped):
        self.inner, self.ctx, self.clock = inner, ctx, clock
        self.fraction, self.reaped = fraction, reaped
        self.name, self.kind = inner.name, inner.kind

    def delete_many(self, items):
        out = delete_each(self.inner, items)
        self.clock.instant += dt.timedelta(seconds=self.fraction * LEASE_S)
        self.reaped.append(reap_leases(self.ctx))
        return out

    def exists_many(self, refs):
        still = exists_each(self.inner, [(ref, str(i)) for i, ref in enumerate(refs)])
        return {refs[int(i)] for i, there in still.items() if there is True}

    def delete(self, ref, key):
        raise AssertionError("the executor must use delete_many for a batch connector")

    def exists(self, ref):
        raise AssertionError("the executor must use exists_many for a batch connector")

    def export(self, ref):
        return self.inner.export(ref)

    def close(self):
        self.inner.close()


def test_groups_of_deletes_slower_than_the_lease_keep_it(ctx, clock, tmp_path, holding_url):
    """Two connectors' groups of deletes, each taking 0.6 of the lease: the leases are renewed
    between the groups, so nothing is reaped and all are executed once."""
    make_holding(holding_url, ["U1", "U2"])
    make_files(tmp_path / "files", ["case-a", "case-b"])
    seed(ctx, tmp_path, [
        {"record_id": "R1", "system": "mis", "locator": "U1", "date_of_birth": DUE_DOB},
        {"record_id": "R2", "system": "mis", "locator": "U2", "date_of_birth": DUE_DOB},
        {"record_id": "F1", "system": "files", "locator": "case-a", "date_of_birth": DUE_DOB},
        {"record_id": "F2", "system": "files", "locator": "case-b", "date_of_birth": DUE_DOB},
    ])
    queue_and_approve(ctx)
    real = connectors(tmp_path, holding_url)
    reaped: list[int] = []
    slow = {name: SlowDeletes(real.get(name), ctx, clock, 0.6, reaped)
            for name in ("mis", "casefiles")}
    registry = ConnectorRegistry(slow, {"mis": "mis", "files": "casefiles"})
    result = execute_due(ctx, registry, owner="w", batch_size=10, lease_s=LEASE_S)
    real.close()
    assert reaped == [0, 0]
    assert (result.executed, result.lease_lost) == (4, 0)
    assert set(states(ctx).values()) == {"executed"}
    assert holding_upns(holding_url)[0] == set()
    assert not list((tmp_path / "files").iterdir())
