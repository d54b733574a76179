"""Staged cases: their stages, read back for review (written when a case is queued:
``lifecycle/evaluate.py`` ``write_stages``).

A rule with ``stages`` (``retentiond/policy``) gives each case it queues an ordered list of
stages (``disposal_stages``), those whose ``when`` holds for the record's facts at that time.
The case waits for stage 0 (``disposals.stage``, ``stage_group``); the semantics of approving
a stage are in ``lifecycle/review.py``. A case keeps the stages it was queued with: a later
change of the rule's stages applies to cases queued after it (as ``approvals_required`` does).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from retentiond.registry.models import DisposalStage

BATCH = 5000


@dataclass(frozen=True, kw_only=True)
class StageView:
    """One stage of a case, as pages and commands show it."""

    position: int
    name: str
    group: str


def stages_of(session: Session, ids: list[int]) -> dict[int, list[StageView]]:
    """The stages of each staged case among ``ids``, in order."""
    found: dict[int, list[StageView]] = defaultdict(list)
    for start in range(0, len(ids), BATCH):
        for d, pos, name, group in session.execute(
                select(DisposalStage.disposal_id, DisposalStage.position, DisposalStage.name,
                       DisposalStage.group_name)
                .where(DisposalStage.disposal_id.in_(ids[start:start + BATCH]))
                .order_by(DisposalStage.disposal_id, DisposalStage.position)):
            found[d].append(StageView(position=pos, name=name, group=group))
    return dict(found)


def stage_count(session: Session, disposal_id: int) -> int:
    """How many stages a case has (0: a count case)."""
    return int(session.scalar(select(func.count()).select_from(DisposalStage)
                              .where(DisposalStage.disposal_id == disposal_id)) or 0)
