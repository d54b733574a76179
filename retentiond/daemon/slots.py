"""The nightly evaluation runs once per London date, however many instances and ticks.

The guard is the ``evaluations`` table itself: a finished evaluation by the scheduler for a
date is the proof that date's slot is done (evaluate writes its row in the same transaction
as the cases it queues, so a crashed run leaves no row and is run again). On PostgreSQL,
instances sharing the registry take ``pg_try_advisory_xact_lock`` first, held for the whole
run: a second instance that ticks at the same moment skips instead of waiting, and one that
ticks later finds the row. SQLite has one daemon per file (``instance_lock.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select, text

from retentiond.registry.models import Evaluation

#: The actor of the daemon's own decisions, and whose evaluations count for the slot.
SCHEDULER_ACTOR = "retentiond:scheduler"
#: Advisory lock of the nightly slot, in the two-key space (which does not overlap the
#: one-key space that registry/db.py and registry/chain.py use): (daemon, nightly evaluation).
NIGHTLY_LOCK_KEY = (742100, 1)


@dataclass(frozen=True, kw_only=True)
class Slot:
    """Whether this run may evaluate; if not, why."""

    claimed: bool
    reason: str = ""


def done_evaluation(conn: Connection, as_of: dt.date, actor: str) -> Evaluation | None:
    """The scheduler's finished evaluation for ``as_of``, if there is one."""
    row = conn.execute(
        select(Evaluation.id, Evaluation.finished_at)
        .where(Evaluation.as_of == as_of, Evaluation.actor == actor,
               Evaluation.finished_at.is_not(None))
        .order_by(Evaluation.id).limit(1)
    ).first()
    return None if row is None else Evaluation(id=row.id, finished_at=row.finished_at)


def evaluated_on(engine: Engine, as_of: dt.date, actor: str = SCHEDULER_ACTOR) -> bool:
    """True when the slot of ``as_of`` is done (for the catch-up check at start)."""
    with engine.connect() as conn:
        return done_evaluation(conn, as_of, actor) is not None


@contextmanager
def nightly_slot(engine: Engine, as_of: dt.date, actor: str = SCHEDULER_ACTOR) -> Iterator[Slot]:
    """Claim the slot of ``as_of`` for the duration of the ``with`` block."""
    with engine.connect() as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            got = conn.scalar(text("SELECT pg_try_advisory_xact_lock(:space, :key)"),
                              {"space": NIGHTLY_LOCK_KEY[0], "key": NIGHTLY_LOCK_KEY[1]})
            if not got:
                yield Slot(claimed=False, reason="another instance is running the evaluation")
                return
        done = done_evaluation(conn, as_of, actor)
        if done is not None:
            at = done.finished_at.isoformat(timespec="seconds") if done.finished_at else "?"
            yield Slot(claimed=False, reason=f"evaluation {done.id} already ran for "
                       f"{as_of.isoformat()} (finished {at})")
            return
        yield Slot(claimed=True)
