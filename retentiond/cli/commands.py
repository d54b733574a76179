"""The output side of commands: each takes service results and prints them in a format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from retentiond.cli.output import csv_writer, print_json, print_table
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.filters import FilterView
from retentiond.lifecycle.holds import HoldView
from retentiond.lifecycle.review import DisposalView
from retentiond.lifecycle.tasks import TaskView
from retentiond.policy import PolicyError, PolicySet, load_policy_set
from retentiond.registry.models import Agreement, Controller


def _rules_json(policy: PolicySet) -> list[dict[str, Any]]:
    out = []
    for rule in policy.rules:
        out.append({
            "id": rule.id, "category": rule.category, "title": rule.title,
            "action": rule.action, "approvals_required": rule.approvals_required,
            "auto_approve": rule.auto_approve, "citation": rule.citation,
            "when": None if rule.when.is_empty else rule.when.describe(),
            "alternatives": [
                {"when": None if a.when.is_empty else a.when.describe(), "trigger": a.trigger,
                 "period": str(a.period), "round_to": a.round_to,
                 "after_period_end": a.after_period_end, "missing_day": a.missing_day}
                for a in rule.alternatives
            ],
        })
    return out


def _packs_json(policy: PolicySet) -> list[dict[str, Any]]:
    return [{"name": p.name, "title": p.title, "path": p.path, "sha256": p.digest,
             "requires_local_signoff": p.requires_local_signoff,
             "signed_off_by": p.signed_off_by,
             "signed_off_on": p.signed_off_on.isoformat() if p.signed_off_on else None}
            for p in policy.packs]


def unsigned_packs(policy: PolicySet) -> list[str]:
    """Packs that say they need local sign-off and have none."""
    return [p.name for p in policy.packs
            if p.requires_local_signoff and not (p.signed_off_by and p.signed_off_on)]


def policies_check(paths: Sequence[str], fmt: str) -> int:
    try:
        policy = load_policy_set(paths)
    except PolicyError as exc:
        if fmt == "json":
            print_json({"valid": False, "problems": exc.problems})
            return 1
        raise
    unsigned = unsigned_packs(policy)
    if fmt == "json":
        print_json({"valid": True, "version": policy.version, "packs": _packs_json(policy),
                    "rules": len(policy.rules), "categories": sorted(policy.categories),
                    "needs_local_signoff": unsigned})
        return 0
    print(f"valid: {len(policy.rules)} rules in {len(policy.packs)} pack(s), "
          f"{len(policy.categories)} categories; version {policy.version}")
    for name in unsigned:
        print(f"note: pack {name!r} needs local sign-off (set signed_off_by and signed_off_on "
              "in its [pack] table) before it is put in force")
    return 0


def policies_show(policy: PolicySet, fmt: str) -> int:
    if fmt == "json":
        print_json({"version": policy.version, "packs": _packs_json(policy),
                    "rules": _rules_json(policy),
                    "labels": {c: policy.category_label(c) for c in sorted(policy.categories)}})
        return 0
    print(f"Policy version {policy.version}")
    for pack in policy.packs:
        print(f"Pack {pack.name}: {pack.title} ({pack.path})")
    for rule in policy.rules:
        print(f"\n{rule.id}  [{rule.category}: {policy.category_label(rule.category)}]")
        print(f"  {rule.title}")
        for i, a in enumerate(rule.alternatives, start=1):
            cond = "" if a.when.is_empty else f"if {a.when.describe()}: "
            extra = f", rounded to {a.round_to}" if a.round_to else ""
            extra += ", then the day after" if a.after_period_end else ""
            print(f"  {i}. {cond}{a.period.describe()} from {a.trigger}{extra}")
        auto = ", may be approved automatically" if rule.auto_approve else ""
        print(f"  action: {rule.action}; approvers: {rule.approvals_required}{auto}")
        print(f"  citation: {rule.citation}")
    return 0


def controllers_list(ctx: Context, fmt: str) -> int:
    with ctx.sessions() as session:
        rows = list(session.scalars(select(Controller).order_by(Controller.code)))
    if fmt == "json":
        print_json([{"code": c.code, "name": c.name, "email": c.email,
                     "webhook_url": c.webhook_url} for c in rows])
    else:
        print_table(("code", "name", "email", "webhook_url"),
                    [(c.code, c.name, c.email, c.webhook_url) for c in rows])
    return 0


def agreements_list(ctx: Context, fmt: str) -> int:
    with ctx.sessions() as session:
        rows = list(session.scalars(select(Agreement).order_by(Agreement.code)))

    def iso(d: dt.date | None) -> str | None:
        return d.isoformat() if d else None

    docs = [{"code": a.code, "title": a.title, "status": a.status,
             "notice": f"{a.notice_months}m", "termination_action": a.termination_action,
             "terminated_on": iso(a.terminated_on), "disposal_due_on": iso(a.disposal_due_on)}
            for a in rows]
    if fmt == "json":
        print_json(docs)
    else:
        keys = ("code", "title", "status", "notice", "terminated_on", "disposal_due_on")
        print_table(keys, [[d[k] for k in keys] for d in docs])
    return 0


def evaluate(ctx: Context, as_of: dt.date, fmt: str) -> int:
    from retentiond.lifecycle.evaluate import evaluate as run

    result = run(ctx, as_of)
    doc = {
        "evaluation_id": result.evaluation_id, "as_of": as_of.isoformat(),
        "policy_version": result.policy_version, "queued": result.queued,
        "auto_approved": result.auto_approved, "holds_expired": result.holds_expired,
        "recomputed": result.recompute.recomputed,
        "due_dates_changed": result.recompute.changed,
        "cases_withdrawn": result.recompute.withdrawn,
    }
    if fmt == "json":
        print_json(doc)
    else:
        print(f"evaluated as of {as_of}: {result.queued} queued for review "
              f"({result.auto_approved} approved automatically); "
              f"{result.recompute.recomputed} records recomputed, "
              f"{result.recompute.withdrawn} cases withdrawn, {result.holds_expired} holds expired")
    return 0


def forecast(ctx: Context, as_of: dt.date, until: dt.date, fmt: str) -> int:
    from retentiond.lifecycle.forecast import ForecastTotals
    from retentiond.lifecycle.forecast import forecast as run

    totals = ForecastTotals()
    if fmt == "json":
        docs = [i.as_json() for i in run(ctx, as_of=as_of, until=until, totals=totals)]
        print_json({"as_of": as_of.isoformat(), "until": until.isoformat(), "items": docs,
                    "totals": totals.as_json()})
    elif fmt == "csv":
        w = csv_writer()
        w.writerow(("record_id", "due_on", "action", "rule", "category", "controller"))
        for i in run(ctx, as_of=as_of, until=until, totals=totals):
            w.writerow((i.record_id, i.due_on.isoformat(), i.action, i.rule, i.category,
                        i.controller))
    else:
        items = list(run(ctx, as_of=as_of, until=until, totals=totals))
        print_table(("record_id", "due_on", "action", "rule", "category", "controller"),
                    [(i.record_id, i.due_on, i.action, i.rule, i.category, i.controller)
                     for i in items])
        print(f"\n{totals.total} records fall due from {as_of} to {until}")
        print("\nBy month:")
        print_table(("month", "records"), sorted(totals.by_month.items()))
        print("\nBy category:")
        print_table(("category", "records"), sorted(totals.by_category.items()))
    return 0


def show_holds(holds: Sequence[HoldView], fmt: str) -> int:
    if fmt == "json":
        print_json([h.as_json() for h in holds])
    else:
        print_table(("id", "scope", "type", "active", "until", "records", "placed_by", "reason"),
                    [(h.id, h.scope, h.type, "yes" if h.active else "no", h.until,
                      h.records_covered, h.placed_by, h.reason) for h in holds])
    return 0


def show_filters(filters: Sequence[FilterView], fmt: str) -> int:
    if fmt == "json":
        print_json([f.as_json() for f in filters])
    else:
        print_table(("id", "name", "selects", "owner", "created_at", "active_holds"),
                    [(f.id, f.name, f.description, f.owner, f.created_at.date(),
                      ", ".join(map(str, f.holds))) for f in filters])
    return 0


def show_disposals(rows: Sequence[DisposalView], fmt: str) -> int:
    if fmt == "json":
        print_json([r.as_json() for r in rows])
    else:
        # A failed case's reason goes where its state is shown (only when there is one, so
        # that the usual table keeps its columns).
        errors = any(r.state == "failed" for r in rows)
        print_table(("id", "record_id", "category", "controller", "state", "due_on", "action",
                     "approvals", *(("why_failed",) if errors else ())),
                    [(r.id, r.record_id, r.category, r.controller, r.state, r.due_on, r.action,
                      f"{len(r.approved_by)}/{r.approvals_required}",
                      *((r.last_error or "" if r.state == "failed" else "",) if errors else ()))
                     for r in rows])
    return 0


def show_tasks(tasks: Sequence[TaskView], fmt: str) -> int:
    if fmt == "json":
        print_json([t.as_json() for t in tasks])
    else:
        print_table(("id", "record_id", "controller", "action", "system", "locator", "due_on",
                     "state", "destroyed_on", "certificate"),
                    [(t.disposal_id, t.record_id, t.controller, t.action, t.system, t.locator,
                      t.due_on, t.state, t.destroyed_on, t.certificate_no) for t in tasks])
    return 0
