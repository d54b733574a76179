"""What every lifecycle operation needs: the registry, the policy in force, a clock, an actor."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from retentiond.clock import Clock
from retentiond.policy import PolicySet


class LifecycleError(Exception):
    """An operation was refused; the message says why in words a user can act on."""


@dataclass(frozen=True, kw_only=True)
class Context:
    """The seams of the lifecycle (DESIGN.md section 5)."""

    sessions: sessionmaker[Session]
    policy: PolicySet
    clock: Clock
    actor: str
