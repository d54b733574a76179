"""``kind = "manual"``: paper, and systems with no interface a program can use.

The executor does not delete anything through this connector: it opens a task for a person
(``retentiond disposals tasks``) and the disposal waits in ``pending_confirmation`` until an
IG officer confirms the destruction with evidence (``retentiond disposals confirm``: who
destroyed it, on which date, by what method, the contractor's certificate number). Only then
does it count as executed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retentiond.connectors.base import (
    ConnectorRef,
    Export,
    PermanentConnectorError,
    RemainingCopy,
    option,
    remaining_option,
)


class ManualConnector:
    """A task for a person; the evidence of destruction is the verification."""

    kind = "manual"
    #: The executor opens a task instead of calling ``delete``.
    requires_confirmation = True

    def __init__(self, name: str, instructions: str = "", *,
                 backups_kept_days: int | None = None) -> None:
        self.name = name
        self.instructions = instructions
        self.backups_kept_days = backups_kept_days

    @classmethod
    def from_config(cls, name: str, table: Mapping[str, Any], *, base_dir: Path) -> ManualConnector:
        where = f"[connectors.{name}]"
        return cls(name, option(table, "instructions", str, where, default=""),
                   backups_kept_days=remaining_option(table, "backups_kept_days", where))

    def remaining_copies(self, executed_on: dt.date) -> tuple[RemainingCopy, ...]:
        """Backup copies of the system, as configured (``backups_kept_days = 0`` for paper,
        which has none); not configured, they are stated with no date."""
        return RemainingCopy.backups(self.backups_kept_days, executed_on,
                                     f"[connectors.{self.name}].backups_kept_days")

    def _refuse(self) -> PermanentConnectorError:
        return PermanentConnectorError(
            f"{self.name}: a manual connector acts only through a person: confirm the "
            "destruction with 'retentiond disposals confirm'"
        )

    def delete(self, ref: ConnectorRef, idempotency_key: str) -> str:
        raise self._refuse()

    def exists(self, ref: ConnectorRef) -> bool:
        raise self._refuse()

    def export(self, ref: ConnectorRef) -> Export:
        raise self._refuse()

    def close(self) -> None:
        pass
