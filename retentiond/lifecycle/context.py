"""What every lifecycle operation needs: the registry, the policy in force, a clock, an actor."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from retentiond.clock import Clock
from retentiond.policy import PolicySet
from retentiond.text import visible_text


class LifecycleError(Exception):
    """An operation was refused; the message says why in words a user can act on."""


def required_text(text: str | None, refusal: str) -> str:
    """Free text (a reason, who destroyed a record, how) with at least one visible character,
    stripped; else refused with a message starting with ``refusal``."""
    try:
        return visible_text(text, refusal)
    except ValueError as exc:
        raise LifecycleError(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class Context:
    """The seams of the lifecycle (DESIGN.md section 5)."""

    sessions: sessionmaker[Session]
    policy: PolicySet
    clock: Clock
    actor: str
    #: The operating-system user of a command-line run that acts under another name (the
    #: break-glass ``[cli] allow_actor_override``); recorded beside the actor in the audit
    #: events of separation-of-duty acts. None everywhere else.
    os_user: str | None = None

    def sod_data(self) -> dict[str, str]:
        """What a separation-of-duty act's audit event records of who was really there."""
        return {"os_user": self.os_user, "break_glass": "actor_override"} \
            if self.os_user is not None else {}
