"""The facts about one record that retention depends on."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from retentiond.policy.model import TRIGGERS


@dataclass(frozen=True, kw_only=True, slots=True)
class Facts:
    """What the registry knows about a record and its subject, and nothing more.

    ``terminated_on`` and ``termination_action`` come from the record's agreement when the
    agreement has been terminated (seed 003, clause 13.1): the date already includes the notice.
    """

    category: str
    date_of_birth: dt.date | None = None
    date_of_death: dt.date | None = None
    opened_on: dt.date | None = None
    closed_on: dt.date | None = None
    event_on: dt.date | None = None
    flags: frozenset[str] = field(default_factory=frozenset)
    terminated_on: dt.date | None = None
    termination_action: str | None = None

    def trigger(self, name: str) -> dt.date | None:
        """The value of a trigger by its policy name."""
        if name not in TRIGGERS:
            raise KeyError(name)
        value: dt.date | None = getattr(self, name)
        return value
