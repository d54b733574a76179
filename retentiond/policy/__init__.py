"""The pure retention engine: rules, policy loading, date arithmetic and decisions.

Nothing in this package reads a clock, a database or (apart from ``loader``) a file.
"""

from __future__ import annotations

from retentiond.policy.engine import (
    Decision,
    RuleOutcome,
    citations,
    decide,
    decide_safely,
    stages_for,
)
from retentiond.policy.facts import Facts
from retentiond.policy.loader import (
    PolicyError,
    load_policy_in_force,
    load_policy_set,
    unsigned_packs,
)
from retentiond.policy.model import (
    ACTIONS,
    BASES,
    TRIGGERS,
    Alternative,
    Condition,
    Evidence,
    Period,
    PolicySet,
    Rule,
    Stage,
)

__all__ = [
    "ACTIONS",
    "BASES",
    "TRIGGERS",
    "Alternative",
    "Condition",
    "Decision",
    "Evidence",
    "Facts",
    "Period",
    "PolicyError",
    "PolicySet",
    "Rule",
    "RuleOutcome",
    "Stage",
    "citations",
    "decide",
    "decide_safely",
    "load_policy_in_force",
    "load_policy_set",
    "stages_for",
    "unsigned_packs",
]
