"""The output side of commands: each takes service results and prints them in a format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from retentiond.cli.output import csv_writer, print_json, print_table
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.filters import FilterView
from retentiond.lifecycle.holds import HoldView
from retentiond.lifecycle.review import DisposalView
from retentiond.lifecycle.tasks import TaskView
from retentiond.policy import PolicyError, PolicySet, load_policy_set, unsigned_packs
from retentiond.registry.models import Agreement, Controller


def _rules_json(policy: PolicySet) -> list[dict[str, Any]]:
    out = []
    for rule in policy.rules:
        out.append({
            "id": rule.id, "category": rule.category, "title": rule.title,
            "action": rule.action, "approvals_required": rule.approvals_required,
            "auto_approve": rule.auto_approve, "citation": rule.citation, "note": rule.note,
            "source_quote": rule.evidence.source_quote, "source_url": rule.evidence.source_url,
            "basis": rule.evidence.basis, "local_reading": rule.evidence.local_reading,
            "when": None if rule.when.is_empty else rule.when.describe(),
            "stages": [{"name": st.name, "group": st.group,
                        "when": None if st.when.is_empty else st.when.describe()}
                       for st in rule.stages],
            "cooling_off_days": rule.cooling_off_days,
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
             "signed_off_on": p.signed_off_on.isoformat() if p.signed_off_on else None,
             "signed_off_report_sha256": p.signed_off_report_sha256}
            for p in policy.packs]


def evidence_warnings(policy: PolicySet) -> list[str]:
    """``FILE: rule 'ID'.FIELD: ...`` for every rule of a pack needing sign-off that lacks
    evidence, and every pack whose sign-off quotes a report its content no longer gives."""
    from retentiond.policy.report import build_report

    warnings = []
    for pack in policy.packs:
        rules = [r for r in policy.rules if r.source == f"{pack.path}#{pack.name}"]
        if pack.requires_local_signoff:
            for rule in rules:
                for field in rule.evidence.missing():
                    warnings.append(f"{pack.path}: rule {rule.id!r}.{field}: missing: a pack "
                                    "that needs sign-off should say what each rule rests on")
        if pack.signed_off_by and pack.signed_off_on and not pack.signed_off_report_sha256 \
                and pack.requires_local_signoff:
            warnings.append(f"{pack.path}: pack.signed_off_report_sha256: missing: quote the "
                            "SHA-256 of the report the pack was signed off against")
        recorded = pack.signed_off_report_sha256
        if recorded is not None:
            alone = PolicySet(version=policy.version, packs=(pack,), rules=tuple(rules))
            given = {build_report(alone).fingerprint, build_report(policy).fingerprint}
            if recorded not in given:
                warnings.append(
                    f"{pack.path}: pack.signed_off_report_sha256: the pack no longer says what "
                    f"the signed-off report said (recorded {recorded[:16]}..., this pack's "
                    f"report is {build_report(alone).fingerprint[:16]}...): review the "
                    "changes and sign off again")
    return warnings


def policies_check(paths: Sequence[str], fmt: str) -> int:
    try:
        policy = load_policy_set(paths)
    except PolicyError as exc:
        if fmt == "json":
            print_json({"valid": False, "problems": exc.problems})
            return 1
        raise
    unsigned = unsigned_packs(policy)
    warnings = evidence_warnings(policy)
    if fmt == "json":
        print_json({"valid": True, "version": policy.version, "packs": _packs_json(policy),
                    "rules": len(policy.rules), "categories": sorted(policy.categories),
                    "needs_local_signoff": unsigned, "warnings": warnings})
        return 0
    print(f"valid: {len(policy.rules)} rules in {len(policy.packs)} pack(s), "
          f"{len(policy.categories)} categories; version {policy.version}")
    staged = [r for r in policy.rules if r.stages]
    if staged:
        groups = sorted({s.group for r in staged for s in r.stages})
        print(f"{len(staged)} rule(s) approved in stages, by the review groups "
              f"{', '.join(groups)} (each group needs members: 'retentiond groups')")
    for name in unsigned:
        print(f"note: pack {name!r} needs local sign-off (set signed_off_by and signed_off_on "
              "in its [pack] table) before it is put in force")
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


def policies_report(paths: Sequence[str], out: str) -> int:
    """Write the sign-off report (PDF and HTML) and print its SHA-256."""
    import hashlib
    from pathlib import Path

    from retentiond.policy.report import build_report, render_html
    from retentiond.policy.report_pdf import render_pdf

    policy = load_policy_set(paths)
    report = build_report(policy)
    base = Path(out)
    if base.suffix.lower() in (".pdf", ".html", ".htm"):
        base = base.with_suffix("")
    pdf_path, html_path = base.with_name(base.name + ".pdf"), base.with_name(base.name + ".html")
    pdf, page = render_pdf(report), render_html(report).encode("utf-8")
    for path, data in ((pdf_path, pdf), (html_path, page)):
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise LifecycleError(f"{path}: cannot be written: {exc.strerror}") from None
    print(f"wrote {pdf_path} and {html_path}: {len(report.rules)} rules from "
          f"{len(report.packs)} pack(s)")
    if report.missing_evidence:
        print(f"warning: {report.missing_evidence} rule(s) are not checked against their source "
              "(marked in the report)")
    print(f"report sha256: {report.fingerprint}")
    print(f"  (files: {pdf_path.name} sha256 {hashlib.sha256(pdf).hexdigest()}, "
          f"{html_path.name} sha256 {hashlib.sha256(page).hexdigest()})")
    print("once it is signed, add to each pack's [pack] table:")
    print(f'  signed_off_report_sha256 = "{report.fingerprint}"')
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
        if pack.signed_off_by or pack.signed_off_on:
            print(f"  signed off by {pack.signed_off_by} on {pack.signed_off_on}; report sha256 "
                  f"{pack.signed_off_report_sha256 or '(none recorded)'}")
    for rule in policy.rules:
        print(f"\n{rule.id}  [{rule.category}: {policy.category_label(rule.category)}]")
        print(f"  {rule.title}")
        for i, a in enumerate(rule.alternatives, start=1):
            cond = "" if a.when.is_empty else f"if {a.when.describe()}: "
            extra = f", rounded to {a.round_to}" if a.round_to else ""
            extra += ", then the day after" if a.after_period_end else ""
            print(f"  {i}. {cond}{a.period.describe()} from {a.trigger}{extra}")
        auto = ", may be approved automatically" if rule.auto_approve else ""
        if rule.stages:
            print(f"  action: {rule.action}; approved in {len(rule.stages)} stages, in order, "
                  "each by a different person:")
            for i, st in enumerate(rule.stages, start=1):
                print(f"    stage {i}. {st.describe()}")
        else:
            print(f"  action: {rule.action}; approvers: {rule.approvals_required}{auto}")
        if rule.cooling_off_days:
            print(f"  cooling-off: {rule.cooling_off_days} days after the last approval")
        print(f"  citation: {rule.citation}")
        ev = rule.evidence
        print(f"  basis: {ev.basis or '(not stated)'}")
        if ev.source_quote:
            print(f"  source's words: \"{ev.source_quote}\"")
        if ev.source_url:
            print(f"  source: {ev.source_url}")
        if ev.local_reading:
            print(f"  local reading: {ev.local_reading}")
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
                      _approvals(r),
                      *((r.last_error or "" if r.state == "failed" else "",) if errors else ()))
                     for r in rows])
    return 0


def show_matching(result: Any, fmt: str) -> int:
    """A bulk preview (``acting``) or result (``acted``) of ``disposals ... --matching``."""
    if fmt == "json":
        print_json(result.as_json())
        return 0
    if hasattr(result, "acted"):
        line = f"{result.verb}: {result.acted:,} of the {result.matching:,} cases selected"
        if result.verb == "approve":
            line += (f" ({result.completed:,} now approved, {result.waiting:,} waiting for "
                     "another approver or stage)")
    else:
        line = (f"{result.verb} would act on {result.acting:,} of the {result.matching:,} "
                "cases selected")
    print(line)
    for lo in result.left_out:
        print(f"left out: {lo.words}")
    return 0


def _approvals(r: DisposalView) -> str:
    """``1/2`` for a count case; ``stage 2/3 (ig)`` for a staged case pending review;
    ``until DATE`` while cooling off."""
    if r.state == "cooling_off" and r.cooling_until is not None:
        return f"cooling off until {r.cooling_until.isoformat(timespec='minutes')}"
    stage = r.waiting_stage
    if stage is not None:
        return f"stage {stage.position + 1}/{len(r.stages)} ({stage.group})"
    if r.stages:
        return f"{len(r.approved_by)}/{len(r.stages)} stages"
    return f"{len(r.approved_by)}/{r.approvals_required}"


def show_tasks(tasks: Sequence[TaskView], fmt: str) -> int:
    if fmt == "json":
        print_json([t.as_json() for t in tasks])
    else:
        print_table(("id", "kind", "record_id", "controller", "action", "system", "locator",
                     "due_on", "state", "destroyed_on", "certificate"),
                    [(t.disposal_id, t.kind, t.record_id, t.controller, t.action, t.system,
                      t.locator, t.due_on, t.state, t.destroyed_on, t.certificate_no)
                     for t in tasks])
    return 0
