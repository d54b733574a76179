"""Helpers for the separation-of-duties tests: a three-approver policy, calls started at the
same moment in threads, and approvals made from separate processes.

Every value is synthetic: actors like ``approver.a``, records like ``R-CP-001``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import DEFAULT_PACK

from retentiond.clock import FixedClock
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.policy import PolicySet, load_policy_set
from retentiond.registry import models as m
from retentiond.registry.db import make_engine, session_factory


def three_approver_pack(folder: Path) -> Path:
    """The default pack with child protection cases needing three different approvers."""
    text = DEFAULT_PACK.read_text(encoding="utf-8")
    marker = 'id = "isa.child_protection.case"'
    head, _, tail = text.partition(marker)
    assert tail, "the default pack no longer has the child protection rule"
    tail = tail.replace("approvals_required = 2", "approvals_required = 3", 1)
    path = folder / "three-approvers.toml"
    path.write_text(head + marker + tail, encoding="utf-8")
    return path


def three_approver_policy(folder: Path) -> PolicySet:
    """A policy set in which ``child_protection.case`` needs three approvers."""
    policy = load_policy_set([three_approver_pack(folder)])
    assert {r.approvals_required for r in policy.rules_for("child_protection.case")} == {3}
    return policy


def with_policy(ctx: Context, policy: PolicySet) -> Context:
    """The same registry and clock under another policy set."""
    return dataclasses.replace(ctx, policy=policy)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """What one of several simultaneous calls did: its result or the error it raised."""

    result: Any = None
    error: BaseException | None = None


def together(*calls: Callable[[], Any], timeout_s: float = 120) -> list[Outcome]:
    """Run the calls in threads released at the same moment; every outcome, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Outcome] = [Outcome()] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            outcomes[i] = Outcome(result=call())
        except BaseException as exc:  # the caller decides which errors are expected
            outcomes[i] = Outcome(error=exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
        assert not t.is_alive(), "a concurrent call did not finish"
    return outcomes


def only_refusals(outcomes: list[Outcome]) -> None:
    """Every error among ``outcomes`` is a lifecycle refusal (never a crash or a deadlock)."""
    unexpected = [o.error for o in outcomes
                  if o.error is not None and not isinstance(o.error, LifecycleError)]
    assert not unexpected, unexpected


def approve_in_process(args: tuple[str, str, str, int, float, str]) -> str:
    """Run in a separate process: approve one case as ``actor`` once ``start_at`` (epoch
    seconds) comes; return ``ok`` or the refusal's message."""
    from retentiond.lifecycle.review import approve

    url, pack, actor, disposal_id, start_at, now_iso = args
    engine = make_engine(url)
    ctx = Context(sessions=session_factory(engine), policy=load_policy_set([Path(pack)]),
                  clock=FixedClock(dt.datetime.fromisoformat(now_iso)), actor=actor)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        approve(ctx, [disposal_id], reason="reviewed in a separate process")
        return "ok"
    except LifecycleError as exc:
        return f"refused: {exc}"
    finally:
        engine.dispose()


def case_state(ctx: Context, disposal_id: int) -> str:
    """A case's state as committed."""
    with ctx.sessions() as session:
        return session.get_one(m.Disposal, disposal_id).state
