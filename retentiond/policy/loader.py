"""Load and validate policy packs (TOML). A bad pack is refused whole, naming file, rule, field.

The file format is documented in ``docs/policies.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from retentiond.policy.dates import longer_than
from retentiond.policy.model import (
    ACTIONS,
    ALWAYS,
    BASES,
    MAX_COOLING_OFF_DAYS,
    MAX_PERIOD_YEARS,
    MAX_STAGES,
    MISSING_DAY,
    ROUNDINGS,
    TRIGGERS,
    Alternative,
    Condition,
    Evidence,
    Pack,
    Period,
    PolicySet,
    Rule,
    Stage,
)
from retentiond.usernames import UsernameError, check_group_name

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# An address a reviewer can open: no spaces, no other scheme (``javascript:`` in a report).
_URL_RE = re.compile(r"^https?://[^\s<>\"']+$")
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

_PACK_KEYS = {"name", "title", "description", "requires_local_signoff", "signed_off_by",
              "signed_off_on", "signed_off_report_sha256"}
_EVIDENCE_KEYS = {"source_quote", "source_url", "basis", "local_reading"}
_RULE_KEYS = {"id", "category", "title", "action", "approvals_required", "auto_approve",
              "citation", "when", "alternatives", "trigger", "period", "round_to",
              "after_period_end", "missing_day", "note", "stages",
              "cooling_off_days"} | _EVIDENCE_KEYS
_DEFAULTS_KEYS = {"stages", "cooling_off_days"}
_STAGE_KEYS = {"name", "group", "when"}
_ALT_KEYS = {"when", "trigger", "period", "round_to", "after_period_end", "missing_day", "note"}
_COND_KEYS = {"has_flags", "lacks_flags", "deceased", "died_before_age",
              "age_at_closure_at_least", "age_at_closure_below"}


class PolicyError(ValueError):
    """A policy pack is wrong. ``problems`` lists every fault as ``file: rule: field: message``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class _Collector:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{self.path}: {where}: {message}")


def _check_keys(c: _Collector, where: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in sorted(set(table) - allowed):
        c.add(f"{where}.{key}" if where else key,
              f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _str(c: _Collector, where: str, table: Mapping[str, Any], key: str, *,
         required: bool = True) -> str | None:
    value = table.get(key)
    if value is None:
        if required:
            c.add(f"{where}.{key}", "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        c.add(f"{where}.{key}", f"must be a non-empty string, not {value!r}")
        return None
    return value.strip()


def _int(c: _Collector, where: str, value: Any, *, minimum: int, maximum: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        c.add(where, f"must be a whole number, not {value!r}")
        return None
    if not minimum <= value <= maximum:
        c.add(where, f"must be between {minimum} and {maximum}, not {value}")
        return None
    return value


def _bool(c: _Collector, where: str, value: Any) -> bool | None:
    if not isinstance(value, bool):
        c.add(where, f"must be true or false, not {value!r}")
        return None
    return value


def _flags(c: _Collector, where: str, value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        c.add(where, f"must be a list of flag names, not {value!r}")
        return frozenset()
    return frozenset(value)


def _condition(c: _Collector, where: str, value: Any) -> Condition:
    if value is None:
        return ALWAYS
    if not isinstance(value, dict):
        c.add(where, f"must be a table of conditions, not {value!r}")
        return ALWAYS
    _check_keys(c, where, value, _COND_KEYS)
    kwargs: dict[str, Any] = {}
    for key in ("has_flags", "lacks_flags"):
        if key in value:
            kwargs[key] = _flags(c, f"{where}.{key}", value[key])
    if "deceased" in value:
        kwargs["deceased"] = _bool(c, f"{where}.deceased", value["deceased"])
    for key in ("died_before_age", "age_at_closure_at_least", "age_at_closure_below"):
        if key in value:
            kwargs[key] = _int(c, f"{where}.{key}", value[key], minimum=0, maximum=150)
    if not value:
        c.add(where, "is empty: leave it out to mean 'always'")
    return Condition(**kwargs)


def _stages(c: _Collector, where: str, value: Any) -> tuple[Stage, ...] | None:
    """``stages = [{ name = "...", group = "...", when = { has_flags = [...] } }, ...]``."""
    if not isinstance(value, list) or not value:
        c.add(where, "must be a non-empty list of stages such as "
              '[{ name = "ig", group = "ig" }]')
        return None
    if len(value) > MAX_STAGES:
        c.add(where, f"names {len(value)} stages: at most {MAX_STAGES}")
        return None
    stages: list[Stage] = []
    seen: set[str] = set()
    before = len(c.problems)
    ok = True
    for i, table in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(table, dict):
            c.add(at, "must be a table such as { name = \"ig\", group = \"ig\" }")
            ok = False
            continue
        _check_keys(c, at, table, _STAGE_KEYS)
        name = _str(c, at, table, "name")
        if name is not None and len(name) > 100:
            c.add(f"{at}.name", "must be at most 100 characters")
            name = None
        if name is not None and name.lower() in seen:
            c.add(f"{at}.name", f"{name!r} names an earlier stage too: each stage needs its "
                  "own name")
            name = None
        group_text = _str(c, at, table, "group")
        group = None
        if group_text is not None:
            try:
                group = check_group_name(group_text)
            except UsernameError as exc:
                c.add(f"{at}.group", str(exc))
        when = _condition(c, f"{at}.when", table.get("when"))
        if name is None or group is None:
            ok = False
            continue
        seen.add(name.lower())
        stages.append(Stage(name=name, group=group, when=when))
    return tuple(stages) if ok and len(c.problems) == before else None


def _cooling(c: _Collector, where: str, value: Any) -> int | None:
    return _int(c, where, value, minimum=0, maximum=MAX_COOLING_OFF_DAYS)


def _defaults(c: _Collector, table: Any) -> tuple[tuple[Stage, ...], int]:
    """``[defaults]``: the stages and cooling-off of the pack's rules that set none."""
    if table is None:
        return (), 0
    if not isinstance(table, dict):
        c.add("defaults", "must be a table: [defaults]")
        return (), 0
    _check_keys(c, "defaults", table, _DEFAULTS_KEYS)
    stages: tuple[Stage, ...] = ()
    if "stages" in table:
        stages = _stages(c, "defaults.stages", table["stages"]) or ()
    cooling = 0
    if "cooling_off_days" in table:
        cooling = _cooling(c, "defaults.cooling_off_days", table["cooling_off_days"]) or 0
    return stages, cooling


def _evidence(c: _Collector, where: str, table: Mapping[str, Any]) -> Evidence:
    quote = _str(c, where, table, "source_quote", required=False)
    url = _str(c, where, table, "source_url", required=False)
    if url is not None and not _URL_RE.match(url):
        c.add(f"{where}.source_url", f"{url!r} is not an http(s) address")
        url = None
    basis = _str(c, where, table, "basis", required=False)
    if basis is not None and basis not in BASES:
        c.add(f"{where}.basis", f"unknown basis {basis!r} (one of: {', '.join(BASES)})")
        basis = None
    local = _str(c, where, table, "local_reading", required=False)
    if basis == "local_reading" and local is None:
        c.add(f"{where}.local_reading", "is required when basis is 'local_reading': say what "
              "the council chose and why")
    return Evidence(source_quote=quote, source_url=url, basis=basis, local_reading=local)


def _alternative(c: _Collector, where: str, table: Mapping[str, Any]) -> Alternative | None:
    trigger = _str(c, where, table, "trigger")
    if trigger is not None and trigger not in TRIGGERS:
        c.add(f"{where}.trigger", f"unknown trigger {trigger!r} (one of: {', '.join(TRIGGERS)})")
        trigger = None
    period_text = _str(c, where, table, "period")
    period = None
    if period_text is not None:
        try:
            period = Period.parse(period_text)
        except ValueError as exc:
            c.add(f"{where}.period", str(exc))
        else:
            if longer_than(period, MAX_PERIOD_YEARS):
                c.add(f"{where}.period", f"{period_text!r} is longer than {MAX_PERIOD_YEARS} "
                      "years, the longest period a rule may have")
                period = None
    round_to = table.get("round_to")
    # A list or table is unhashable: test the type first so that it is reported, not raised.
    if round_to is not None and (not isinstance(round_to, str) or round_to not in ROUNDINGS):
        c.add(f"{where}.round_to",
              f"unknown rounding {round_to!r} (one of: {', '.join(ROUNDINGS)})")
    after = table.get("after_period_end", False)
    if _bool(c, f"{where}.after_period_end", after) is None:
        after = False
    missing_day = table.get("missing_day", "next_day")
    if missing_day not in MISSING_DAY:
        c.add(f"{where}.missing_day",
              f"must be one of {', '.join(MISSING_DAY)}, not {missing_day!r}")
    note = table.get("note")
    if note is not None and not isinstance(note, str):
        c.add(f"{where}.note", "must be a string")
    when = _condition(c, f"{where}.when", table.get("when"))
    if trigger is None or period is None:
        return None
    return Alternative(
        when=when, trigger=trigger, period=period, round_to=round_to,
        after_period_end=bool(after), missing_day=str(missing_day), note=note,
    )


def _rule(c: _Collector, index: int, table: Any, pack_name: str, path: str,
          defaults: tuple[tuple[Stage, ...], int] = ((), 0)) -> Rule | None:
    if not isinstance(table, dict):
        c.add(f"rules[{index}]", "must be a table ([[rules]])")
        return None
    rid = table.get("id")
    where = f"rule {rid!r}" if isinstance(rid, str) and rid else f"rules[{index}]"
    _check_keys(c, where, table, _RULE_KEYS)
    rule_id = _str(c, where, table, "id")
    if rule_id is not None and not _ID_RE.match(rule_id):
        c.add(f"{where}.id", "may hold only lower-case letters, digits, '.', '_' and '-'")
    category = _str(c, where, table, "category")
    if category is not None and not _CATEGORY_RE.match(category):
        c.add(f"{where}.category", f"{category!r} is not a dotted lower-case name such as "
              "'education.pupil_record'")
    title = _str(c, where, table, "title", required=False) or rule_id or ""
    action = _str(c, where, table, "action")
    if action is not None and action not in ACTIONS:
        c.add(f"{where}.action", f"unknown action {action!r} (one of: {', '.join(ACTIONS)})")
    approvals = _int(c, f"{where}.approvals_required", table.get("approvals_required", 1),
                     minimum=1, maximum=5)
    auto = _bool(c, f"{where}.auto_approve", table.get("auto_approve", False))
    if auto and approvals is not None and approvals > 1:
        c.add(f"{where}.auto_approve", "cannot be true when approvals_required is more than 1")
    stages: tuple[Stage, ...] | None = ()
    if "stages" in table:
        stages = _stages(c, f"{where}.stages", table["stages"])
        if "approvals_required" in table and approvals is not None and approvals > 1:
            c.add(f"{where}.approvals_required", "cannot be more than 1 when the rule names "
                  "stages: each stage is one approval (give stages or a count, not both)")
    elif "approvals_required" not in table:
        # The pack's default stages, for a rule that asks for neither stages nor a count.
        stages = defaults[0]
    if stages and auto:
        c.add(f"{where}.auto_approve", "cannot be true when the rule has stages: each stage "
              "is approved by a person")
    cooling: int | None = defaults[1]
    if "cooling_off_days" in table:
        cooling = _cooling(c, f"{where}.cooling_off_days", table["cooling_off_days"])
    citation = _str(c, where, table, "citation")
    when = _condition(c, f"{where}.when", table.get("when"))
    evidence = _evidence(c, where, table)
    rule_note = _str(c, where, table, "note", required=False)

    alt_keys = _ALT_KEYS - {"when"}
    inline = {k: v for k, v in table.items() if k in alt_keys}
    alternatives: list[Alternative | None] = []
    raw_alts = table.get("alternatives")
    # A rule-level note documents the whole rule; only trigger/period and their companions
    # conflict with [[rules.alternatives]].
    if raw_alts is not None and set(inline) - {"note"}:
        c.add(where, "give either trigger/period or [[rules.alternatives]], not both")
    elif raw_alts is not None:
        if not isinstance(raw_alts, list) or not raw_alts:
            c.add(f"{where}.alternatives", "must be a non-empty list of tables")
        else:
            for i, alt in enumerate(raw_alts):
                alt_where = f"{where}.alternatives[{i}]"
                if not isinstance(alt, dict):
                    c.add(alt_where, "must be a table")
                    alternatives.append(None)
                    continue
                _check_keys(c, alt_where, alt, _ALT_KEYS)
                alternatives.append(_alternative(c, alt_where, alt))
            if all(a is not None for a in alternatives) and alternatives:
                last = alternatives[-1]
                assert last is not None
                if not last.when.is_empty:
                    c.add(f"{where}.alternatives[{len(raw_alts) - 1}].when",
                          "the last alternative must have no condition, so that every record "
                          "is covered")
    else:
        alternatives.append(_alternative(c, where, inline))
    if (rule_id is None or category is None or action is None or approvals is None
            or auto is None or citation is None or any(a is None for a in alternatives)
            or stages is None or cooling is None):
        return None
    return Rule(
        id=rule_id, category=category, title=title,
        alternatives=tuple(a for a in alternatives if a is not None),
        action=action, approvals_required=approvals, auto_approve=auto,
        citation=citation, source=f"{path}#{pack_name}", when=when, note=rule_note,
        evidence=evidence, stages=stages, cooling_off_days=cooling,
    )


def _load_pack(path: Path, data: bytes, c: _Collector) -> tuple[Pack | None, list[Rule]]:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        c.add("file", f"is not UTF-8: {exc}")
        return None, []
    except tomllib.TOMLDecodeError as exc:
        c.add("file", f"is not valid TOML: {exc}")
        return None, []
    _check_keys(c, "", doc, {"pack", "rules", "categories", "defaults"})
    meta = doc.get("pack")
    if not isinstance(meta, dict):
        c.add("pack", "a [pack] table with at least name and title is required")
        meta = {}
    _check_keys(c, "pack", meta, _PACK_KEYS)
    name = _str(c, "pack", meta, "name") or path.stem
    title = _str(c, "pack", meta, "title") or name
    signoff = meta.get("requires_local_signoff", False)
    if _bool(c, "pack.requires_local_signoff", signoff) is None:
        signoff = False
    signed_by = meta.get("signed_off_by")
    if signed_by is not None and (not isinstance(signed_by, str) or not signed_by.strip()):
        c.add("pack.signed_off_by", f"must be a non-empty string, not {signed_by!r}")
        signed_by = None
    signed_on = meta.get("signed_off_on")
    # A TOML date-time is a datetime, which is also a date: a sign-off is a calendar date.
    if signed_on is not None and (not isinstance(signed_on, dt.date)
                                  or isinstance(signed_on, dt.datetime)):
        c.add("pack.signed_off_on", "must be a date such as 2026-09-01")
        signed_on = None
    report_sha = meta.get("signed_off_report_sha256")
    if report_sha is not None and (not isinstance(report_sha, str)
                                   or not _SHA256_RE.match(report_sha)):
        c.add("pack.signed_off_report_sha256", "must be the 64 lower-case hexadecimal digits "
              "that 'retentiond policies report' printed")
        report_sha = None
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        c.add("rules", "a pack needs at least one [[rules]] table")
        raw_rules = []
    defaults = _defaults(c, doc.get("defaults"))
    rules = [r for i, t in enumerate(raw_rules)
             if (r := _rule(c, i, t, name, str(path), defaults))]
    labels = _labels(c, doc.get("categories", {}))
    pack = Pack(
        name=name, title=title, path=str(path), requires_local_signoff=bool(signoff),
        signed_off_by=signed_by if isinstance(signed_by, str) else None,
        signed_off_on=signed_on, description=str(meta.get("description", "")),
        digest=hashlib.sha256(data).hexdigest(), signed_off_report_sha256=report_sha, labels=labels,
    )
    return pack, rules


def _labels(c: _Collector, table: Any) -> tuple[tuple[str, str], ...]:
    """``[categories."education.pupil_record"] label = "Pupil educational record"``."""
    if not isinstance(table, dict):
        c.add("categories", 'must be tables such as [categories."education.pupil_record"]')
        return ()
    out: list[tuple[str, str]] = []
    for code, entry in sorted(table.items()):
        where = f"categories.{code!r}"
        if not _CATEGORY_RE.match(code):
            c.add(where, f"{code!r} is not a dotted lower-case name such as "
                  "'education.pupil_record'")
            continue
        if not isinstance(entry, dict):
            c.add(where, 'must be a table with a label: [categories."CODE"] label = "..."')
            continue
        _check_keys(c, where, entry, {"label"})
        label = _str(c, where, entry, "label")
        if label is not None and len(label) > 120:
            c.add(f"{where}.label", "must be at most 120 characters")
        elif label is not None:
            out.append((code, label))
    return tuple(out)


def pack_files(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories to the ``*.toml`` files in them, sorted, so the order is stable."""
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.toml")) if p.is_dir() else [p])
    return files


def load_policy_set(paths: Iterable[str | Path]) -> PolicySet:
    """Load every pack named (files or directories of ``*.toml``) into one policy set.

    Raises ``PolicyError`` listing every problem found; nothing is partly loaded. The version is
    a hash of the packs' names and bytes, so that the same packs always give the same version.
    """
    files = pack_files(paths)
    problems: list[str] = []
    packs: list[Pack] = []
    rules: list[Rule] = []
    if not files:
        raise PolicyError(["no policy files given (name a .toml file or a directory of them)"])
    seen_ids: dict[str, str] = {}
    for path in files:
        c = _Collector(str(path))
        try:
            data = path.read_bytes()
        except OSError as exc:
            problems.append(f"{path}: file: cannot be read: {exc.strerror}")
            continue
        pack, pack_rules = _load_pack(path, data, c)
        for rule in pack_rules:
            if rule.id in seen_ids:
                c.add(f"rule {rule.id!r}.id", f"is also the id of a rule in {seen_ids[rule.id]}")
            seen_ids[rule.id] = str(path)
        problems.extend(c.problems)
        if pack is not None:
            packs.append(pack)
            rules.extend(pack_rules)
    if problems:
        raise PolicyError(problems)
    names = [p.name for p in packs]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"pack name {name!r} is used by more than one file")
    labelled: dict[str, tuple[str, str]] = {}
    for pack in packs:
        for code, label in pack.labels:
            first = labelled.setdefault(code, (label, pack.path))
            if first[0] != label:
                problems.append(f"{pack.path}: categories.{code!r}.label: {label!r} differs "
                                f"from {first[0]!r} in {first[1]}: one category, one label")
    if problems:
        raise PolicyError(problems)
    h = hashlib.sha256()
    for pack in sorted(packs, key=lambda p: p.name):
        h.update(pack.name.encode() + b"\0" + pack.digest.encode() + b"\0")
    return PolicySet(version=h.hexdigest()[:16], packs=tuple(packs), rules=tuple(rules))


def unsigned_packs(policy: PolicySet) -> list[str]:
    """Packs that say they need local sign-off and have none."""
    return [p.name for p in policy.packs
            if p.requires_local_signoff and not (p.signed_off_by and p.signed_off_on)]


def load_policy_in_force(paths: Iterable[str | Path]) -> PolicySet:
    """The policy set to put in force. A pack that says it needs local sign-off is refused
    until it has one (``policies check`` still validates it)."""
    policy = load_policy_set(paths)
    unsigned = unsigned_packs(policy)
    if unsigned:
        raise PolicyError([
            f"{p.path}: pack.signed_off_by: pack {p.name!r} needs local sign-off before it is "
            "put in force: review it, then set signed_off_by and signed_off_on in its [pack] table"
            for p in policy.packs if p.name in unsigned
        ])
    return policy
