"""The rule model: frozen value objects built by the loader and read by the engine."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

#: Dates a rule may count from, by their name in policy files and in record imports.
TRIGGERS: tuple[str, ...] = (
    "date_of_birth",
    "date_of_death",
    "opened_on",
    "closed_on",
    "event_on",
)

#: What a disposal does, most cautious first: when two rules fall due on the same day the
#: more cautious action wins.
ACTIONS: tuple[str, ...] = ("review", "transfer", "return", "anonymise", "delete")

#: End-of-period rounding: the date is moved forward to the next (month, day) on or after it.
ROUNDINGS: dict[str, tuple[int, int]] = {
    "academic_year_end": (8, 31),
    "financial_year_end": (3, 31),
    "calendar_year_end": (12, 31),
}

#: What to do when an anniversary falls on a day the target month lacks (29 February in a
#: common year, 31st in a 30-day month). ``next_day`` (the default) never disposes a day early.
MISSING_DAY: tuple[str, ...] = ("next_day", "last_day")

#: What a rule rests on, strongest first. ``local_reading`` is a choice the pack (or the council)
#: made where the source leaves it open or could not be found; it must say why.
BASES: tuple[str, ...] = ("statute", "statutory_guidance", "guidance", "agreement",
                          "local_reading")
#: The longest period a rule may have. Nothing is kept longer (the longest statutory periods,
#: such as a looked-after child's 75 years from birth, are half of it); a longer period in a
#: pack is a typing slip ("9000y" for "90y"), refused by ``policies check``.
MAX_PERIOD_YEARS = 150

_PERIOD_RE = re.compile(r"^(?:(?P<y>\d+)y)?(?:(?P<m>\d+)m)?(?:(?P<d>\d+)d)?$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Period:
    """A calendar period: years, months and days, added in that order."""

    years: int = 0
    months: int = 0
    days: int = 0

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse ``25y``, ``6y``, ``1y6m``, ``3m`` or ``30d``; raise ``ValueError`` otherwise."""
        match = _PERIOD_RE.match(text.strip().replace(" ", ""))
        if not match or not any(match.groupdict().values()):
            raise ValueError(f"{text!r} is not a period such as '25y', '6y', '1y6m', '3m' or '30d'")
        y, m, d = (int(match.group(k) or 0) for k in "ymd")
        return cls(years=y, months=m, days=d)

    def __str__(self) -> str:
        units = ((self.years, "y"), (self.months, "m"), (self.days, "d"))
        parts = [f"{n}{u}" for n, u in units if n]
        return "".join(parts) or "0d"

    def describe(self) -> str:
        """The period in words: ``25 years``, ``1 year 6 months``."""
        words = []
        for n, unit in ((self.years, "year"), (self.months, "month"), (self.days, "day")):
            if n:
                words.append(f"{n} {unit}{'' if n == 1 else 's'}")
        return " ".join(words) or "0 days"


@dataclass(frozen=True, kw_only=True, slots=True)
class Condition:
    """A test on the facts. Any field left ``None`` is not tested; all set fields must hold.

    A condition that needs a fact the record lacks is *unknown*, never false: the engine then
    refuses to choose an alternative rather than guess (and perhaps dispose early).
    """

    has_flags: frozenset[str] = frozenset()
    lacks_flags: frozenset[str] = frozenset()
    deceased: bool | None = None
    died_before_age: int | None = None
    age_at_closure_at_least: int | None = None
    age_at_closure_below: int | None = None

    def describe(self) -> str:
        """The condition in words, for explanations."""
        parts: list[str] = []
        if self.has_flags:
            parts.append("flagged " + ", ".join(sorted(self.has_flags)))
        if self.lacks_flags:
            parts.append("not flagged " + ", ".join(sorted(self.lacks_flags)))
        if self.deceased is not None:
            parts.append("the subject has died" if self.deceased else "the subject is alive")
        if self.died_before_age is not None:
            parts.append(f"the subject died before age {self.died_before_age}")
        if self.age_at_closure_at_least is not None:
            parts.append(f"the subject was at least {self.age_at_closure_at_least} at closure")
        if self.age_at_closure_below is not None:
            parts.append(f"the subject was under {self.age_at_closure_below} at closure")
        return " and ".join(parts) or "always"

    @property
    def is_empty(self) -> bool:
        """True when the condition tests nothing (always holds)."""
        return self.describe() == "always"


ALWAYS = Condition()


@dataclass(frozen=True, kw_only=True, slots=True)
class Alternative:
    """One way a rule computes its due date; the first alternative whose condition holds is used."""

    when: Condition = ALWAYS
    trigger: str
    period: Period
    round_to: str | None = None
    after_period_end: bool = False
    missing_day: str = "next_day"
    note: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Evidence:
    """What a rule rests on, for the person who signs the pack off. Never read by the engine.

    ``source_quote`` is the source's own words, ``source_url`` where they can be read, ``basis``
    one of ``BASES``, and ``local_reading`` which part of the rule is the pack's (or the
    council's) own choice and why.
    """

    source_quote: str | None = None
    source_url: str | None = None
    basis: str | None = None
    local_reading: str | None = None

    def missing(self) -> tuple[str, ...]:
        """The evidence fields a rule needing sign-off lacks. A local reading needs no quote or
        address (it says why instead); an agreement needs no address (it is the council's own
        document)."""
        gaps = []
        if self.basis is None:
            gaps.append("basis")
        if self.source_quote is None and self.basis != "local_reading":
            gaps.append("source_quote")
        if self.source_url is None and self.basis not in ("local_reading", "agreement"):
            gaps.append("source_url")
        if self.basis == "local_reading" and self.local_reading is None:
            gaps.append("local_reading")
        return tuple(gaps)


NO_EVIDENCE = Evidence()

#: The most stages a rule may name.
MAX_STAGES = 5
#: The longest cooling-off period, in days.
MAX_COOLING_OFF_DAYS = 365


@dataclass(frozen=True, kw_only=True, slots=True)
class Stage:
    """One ordered review stage: approved by a member of ``group`` (a review group's name),
    a different person from every earlier stage. A stage whose ``when`` does not hold for the
    record's facts when the case is queued is left out of that case (a condition that cannot
    be told for want of a fact keeps the stage: more review, never less)."""

    name: str
    group: str
    when: Condition = ALWAYS

    def describe(self) -> str:
        when = "" if self.when.is_empty else f" (when {self.when.describe()})"
        return f"{self.name}: group {self.group}{when}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    """A cited retention rule for one category."""

    id: str
    category: str
    title: str
    alternatives: tuple[Alternative, ...]
    action: str
    approvals_required: int
    auto_approve: bool
    citation: str
    source: str
    when: Condition = ALWAYS
    #: Ordered review stages instead of ``approvals_required`` unordered approvals (empty: a
    #: count rule). Left out of ``repr`` so that rules without stages digest as before; the
    #: digest adds them when set (``PolicySet.category_digest``).
    stages: tuple[Stage, ...] = field(default=(), repr=False)
    #: Days an approved case waits (state ``cooling_off``) before it may be carried out.
    cooling_off_days: int = field(default=0, repr=False)
    # Words for people: they cannot change a decision, so they are left out of ``repr`` and
    # with it out of ``category_digest`` (editing a quote must not recompute a single record).
    note: str | None = field(default=None, repr=False)
    evidence: Evidence = field(default=NO_EVIDENCE, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Pack:
    """One policy file: its metadata as written."""

    name: str
    title: str
    path: str
    requires_local_signoff: bool
    signed_off_by: str | None
    signed_off_on: dt.date | None
    description: str
    digest: str
    #: The report fingerprint the sign-off quotes (``retentiond policies report``).
    signed_off_report_sha256: str | None = None
    #: ``[categories."CODE"] label = "..."``: the words people read for a category code.
    labels: tuple[tuple[str, str], ...] = ()


def fallback_label(category: str) -> str:
    """Words for a category no pack labels: ``looked_after.case_record`` -> 'Case record
    (looked after)'. Readable, and still traceable to the code."""
    area, _, kind = category.rpartition(".")
    words = kind.replace("_", " ")
    text = f"{words} ({area.replace('.', ', ').replace('_', ' ')})" if area else words
    return text[:1].upper() + text[1:]


@dataclass(frozen=True, kw_only=True, slots=True)
class PolicySet:
    """The rules in force: one or more packs, with a version that is a hash of their content."""

    version: str
    packs: tuple[Pack, ...]
    rules: tuple[Rule, ...]

    def category_label(self, category: str) -> str:
        """The words a pack gives a category, else words made from its code."""
        for pack in self.packs:
            for code, label in pack.labels:
                if code == category:
                    return label
        return fallback_label(category)

    def rule(self, rule_id: str | None) -> Rule | None:
        """The rule with this id, if any (None for the engine's termination rule)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        return None

    def rules_for(self, category: str) -> tuple[Rule, ...]:
        """Every rule that names this category."""
        return tuple(r for r in self.rules if r.category == category)

    @property
    def categories(self) -> frozenset[str]:
        """Every category some rule names."""
        return frozenset(r.category for r in self.rules)

    def category_digest(self, category: str) -> str:
        """A hash of just this category's rules: when it changes, its records are recomputed."""
        import hashlib
        from dataclasses import replace

        h = hashlib.sha256()
        for rule in sorted(self.rules_for(category), key=lambda r: r.id):
            # ``source`` names the file the rule was read from; moving the policy directory
            # cannot change a decision, so it must not make every record look stale.
            h.update(repr(replace(rule, source="")).encode())
            # Stages and cooling-off only when set: a pack without them digests as it did
            # before they existed, so upgrading recomputes nothing.
            if rule.stages or rule.cooling_off_days:
                h.update(repr((rule.stages, rule.cooling_off_days)).encode())
        return h.hexdigest()[:16]
