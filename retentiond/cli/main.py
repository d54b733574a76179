"""``retentiond``: the command line. Commands, flags and JSON keys are a contract
(``docs/cli.md``); change them only with a deprecation."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from retentiond import __version__
from retentiond.cli.context import (
    acting_context,
    load_policy,
    log_override,
    make_context,
    open_registry,
)
from retentiond.clock import SystemClock
from retentiond.config import Config, ConfigError, load_config
from retentiond.ingest import ImportRefused
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.logs import configure_logging, get_logger
from retentiond.policy import PolicyError
from retentiond.registry.db import SchemaError, make_engine

Handler = Callable[[argparse.Namespace, Config], int]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from None


def _positive_ids(values: Sequence[str]) -> list[int]:
    ids = []
    for v in values:
        if not v.isdigit():
            raise LifecycleError(f"{v!r} is not a disposal id (a whole number)")
        ids.append(int(v))
    return ids


def _today() -> dt.date:
    return SystemClock().today()


# --- commands -------------------------------------------------------------------------------

def cmd_db_upgrade(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.registry.db import current_revision, upgrade

    engine = make_engine(cfg.database_url)
    upgrade(engine)
    print(f"database {engine.url.render_as_string(hide_password=True)} is at revision "
          f"{current_revision(engine)} ({cfg.describe_database()})")
    return 0


def cmd_db_status(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.registry.db import current_revision, head_revision

    engine = open_registry(cfg, check_schema=False)
    current, head = current_revision(engine), head_revision()
    print(f"database: {engine.url.render_as_string(hide_password=True)} "
          f"({cfg.describe_database()})")
    print(f"revision: {current or 'none (empty database)'}; this version needs {head}")
    return 0 if current == head else 1


def cmd_policies_check(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import policies_check

    return policies_check(args.paths or cfg.policy_paths, args.format)


def cmd_policies_show(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import policies_show

    return policies_show(load_policy(cfg), args.format)


def cmd_policies_report(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import policies_report

    return policies_report(args.paths or cfg.policy_paths, args.out)


def cmd_controllers_import(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.ingest.controllers import import_controllers
    from retentiond.ingest.reader import detect_format
    from retentiond.notify.settings import allow_private_webhooks

    path = Path(args.file)
    result = import_controllers(make_context(cfg), path, fmt=detect_format(path, args.format),
                                allow_private_webhooks=allow_private_webhooks(cfg))
    print(f"{path}: {result.rows} controllers: {result.created} created, {result.updated} updated")
    return 0


def cmd_controllers_list(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import controllers_list

    return controllers_list(make_context(cfg), args.format)


def cmd_agreements_add(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.lifecycle.agreements import add_agreement

    add_agreement(make_context(cfg), code=args.code, title=args.title,
                  notice=args.notice, action=args.action, starts_on=args.starts_on)
    print(f"agreement {args.code} recorded")
    return 0


def cmd_agreements_list(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import agreements_list

    return agreements_list(make_context(cfg), args.format)


def cmd_agreements_terminate(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates.settings import certificate_settings
    from retentiond.lifecycle.agreements import terminate_agreement
    from retentiond.notify.termination import termination_notices

    ctx = make_context(cfg)
    result = terminate_agreement(
        ctx, args.code, on=args.on, notice=args.notice,
        notices=termination_notices(ctx, issuer=certificate_settings(cfg).issuer))
    print(f"agreement {args.code} terminated on {args.on}; its {result.records} records are "
          f"due on {result.due_on} ({result.changed} due dates changed)")
    return 0


def cmd_records_import(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.connectors import LocatorCheck, load_connectors
    from retentiond.ingest.reader import Progress, detect_format
    from retentiond.ingest.records import import_records

    path = Path(args.file)
    ctx = make_context(cfg)
    # Each locator is checked by its system's connector, where one is configured.
    connectors = load_connectors(cfg)
    try:
        result = import_records(ctx, path, fmt=detect_format(path, args.format),
                                progress=Progress(path), locators=LocatorCheck(connectors))
    finally:
        connectors.close()
    print(f"{path}: {result.rows} rows: {result.created} created, {result.updated} updated, "
          f"{result.unchanged} unchanged, {result.due_dates_changed} due dates changed, "
          f"{result.cases_withdrawn} cases withdrawn"
          + (f", {result.back} back at source" if result.back else ""))
    return 0


def cmd_records_explain(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.lifecycle.explain import explain, explain_text

    doc = explain(make_context(cfg), args.record_id, as_of=args.as_of or _today())
    if args.format == "json":
        print_json(doc)
    else:
        print(explain_text(doc))
    return 0


def cmd_evaluate(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import evaluate

    return evaluate(make_context(cfg), args.as_of or _today(), args.format)


def cmd_forecast(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import forecast
    from retentiond.policy.dates import add_period
    from retentiond.policy.model import Period

    as_of = args.as_of or _today()
    until = args.until or add_period(as_of, Period(years=1))
    return forecast(make_context(cfg), as_of, until, args.format)


def cmd_holds_place(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_holds
    from retentiond.lifecycle.holds import place_hold

    hold = place_hold(make_context(cfg), scope=args.scope, hold_type=args.type,
                      reason=args.reason, until=args.until)
    return show_holds([hold], args.format)


def cmd_holds_import(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.ingest.holds import import_holds
    from retentiond.ingest.reader import detect_format

    path = Path(args.file)
    result = import_holds(make_context(cfg), path, fmt=detect_format(path, args.format))
    ids = result.hold_ids
    placed = f" (ids {ids[0]} to {ids[-1]})" if ids else ""
    print(f"{path}: {len(ids)} holds placed{placed}")
    return 0


def cmd_holds_lift(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_holds
    from retentiond.lifecycle.holds import lift_hold

    return show_holds([lift_hold(make_context(cfg), args.hold_id, reason=args.reason)], args.format)


def cmd_holds_list(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_holds
    from retentiond.lifecycle.holds import list_holds

    return show_holds(list_holds(make_context(cfg), include_lifted=args.all), args.format)


def cmd_filters_list(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_filters
    from retentiond.lifecycle.filters import list_filters

    return show_filters(list_filters(make_context(cfg)), args.format)


def cmd_filters_show(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_filters
    from retentiond.lifecycle.filters import get_filter

    return show_filters([get_filter(make_context(cfg), args.filter)], args.format)


def cmd_filters_save(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_filters
    from retentiond.lifecycle.filters import RECORD_FIELDS, save_filter

    criteria = {k: getattr(args, k) for k in (*RECORD_FIELDS, "state") if getattr(args, k)}
    return show_filters([save_filter(make_context(cfg), name=args.name, criteria=criteria)],
                        args.format)


def cmd_filters_delete(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_filters
    from retentiond.lifecycle.filters import delete_filter

    return show_filters([delete_filter(make_context(cfg), args.filter)], args.format)


def cmd_sources_list(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.sources import load_sources, source_statuses

    ctx = make_context(cfg)
    with ctx.sessions() as session:
        statuses = source_statuses(session, load_sources(cfg), ctx.clock.now())
    if args.format == "json":
        print_json([s.as_json() for s in statuses])
        return 0
    for s in statuses:
        last = s.last
        print(f"{s.spec.name}: {s.spec.kind}, {s.spec.mode}, {s.spec.describe()}; last run "
              + (f"{last.outcome} at {last.started_at:%Y-%m-%d %H:%M} UTC" if last else "never")
              + (f"; next {s.next_run_at:%Y-%m-%d %H:%M} UTC" if s.next_run_at else "")
              + f"; {s.gone} gone at source")
    return 0


def cmd_sources_run(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.sources import load_sources, run_source

    specs = {s.name: s for s in load_sources(cfg)}
    unknown = [n for n in args.names if n not in specs]
    if unknown:
        raise LifecycleError(f"no source {unknown[0]!r} (configured: "
                             f"{', '.join(specs) or 'none'})")
    from retentiond.connectors import LocatorCheck, load_connectors

    ctx = make_context(cfg)
    connectors = load_connectors(cfg)
    try:
        # Each locator is checked by its system's connector, as ``records import`` does.
        outcomes = [run_source(ctx, specs[n], force=args.force, locators=LocatorCheck(connectors))
                    for n in args.names or specs]
    finally:
        connectors.close()
    if args.format == "json":
        print_json([{"source": o.source, "outcome": o.outcome, "counts": o.counts,
                     "errors": o.errors, "run_id": o.run_id, "note": o.note} for o in outcomes])
    else:
        for o in outcomes:
            counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in o.counts.items() if v)
            print(f"{o.source}: {o.outcome}" + (f" ({o.note})" if o.note else "")
                  + (f": {counts}" if counts else ""))
            for error in o.errors:
                print(f"  {error}")
    return 0 if all(o.outcome in ("ok", "skipped") for o in outcomes) else 1


def cmd_disposals_execute(args: argparse.Namespace, cfg: Config) -> int:
    import os
    import socket

    from retentiond.cli.output import print_json
    from retentiond.connectors import load_connectors
    from retentiond.lifecycle.execute import execute_due, reap_leases

    ctx = make_context(cfg)
    connectors = load_connectors(cfg)
    try:
        reaped = reap_leases(ctx)
        result = execute_due(ctx, connectors, owner=f"cli:{socket.gethostname()}:{os.getpid()}",
                             batch_size=args.batch_size, lease_s=args.lease_s)
    finally:
        connectors.close()
    if args.format == "json":
        print_json({"leases_reaped": reaped, **result.as_json()})
    else:
        print(f"{result.claimed} claimed: {result.executed} executed, "
              f"{result.pending_confirmation} pending confirmation, "
              f"{result.not_found} not found (for a person to look into), "
              f"{result.retry_scheduled} to retry, {result.failed} failed, {result.held} held, "
              f"{result.withdrawn} withdrawn; {reaped} expired leases reaped")
    return 1 if result.failed else 0


def cmd_disposals_tasks(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_tasks
    from retentiond.lifecycle.tasks import list_tasks

    return show_tasks(list_tasks(make_context(cfg)), args.format)


def cmd_disposals_confirm(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_tasks
    from retentiond.connectors import load_connectors
    from retentiond.lifecycle.context import LifecycleError
    from retentiond.lifecycle.tasks import confirm_destruction, confirm_not_found

    manual = (args.destroyed_by, args.destroyed_on, args.method)
    if args.evidence is not None:
        if any(v is not None for v in (*manual, args.certificate)):
            raise LifecycleError("--evidence confirms data not found; --destroyed-by, "
                                 "--destroyed-on, --method and --certificate confirm a manual "
                                 "destruction: give one or the other")
    elif any(v is None for v in manual):
        raise LifecycleError("give --destroyed-by, --destroyed-on and --method (a manual "
                             "destruction), or --evidence (data not found)")
    ctx = make_context(cfg)
    connectors = load_connectors(cfg)
    try:
        if args.evidence is not None:
            task = confirm_not_found(ctx, args.id, evidence=args.evidence, connectors=connectors)
        else:
            task = confirm_destruction(ctx, args.id, destroyed_by=args.destroyed_by,
                                       destroyed_on=args.destroyed_on, method=args.method,
                                       certificate_no=args.certificate, connectors=connectors)
    finally:
        connectors.close()
    return show_tasks([task], args.format)


def cmd_disposals_check(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.connectors import load_connectors
    from retentiond.lifecycle.presence import check_presence

    connectors = load_connectors(cfg)
    try:
        result = check_presence(make_context(cfg), connectors, max_age_s=args.max_age_s)
    finally:
        connectors.close()
    if args.format == "json":
        print_json(result.as_json())
    else:
        print(f"{result.checked} checked: {result.found} found, {result.not_found} not found in "
              f"their holding system; {result.unchecked} could not be checked")
    return 0


def cmd_disposals_send_back(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_tasks
    from retentiond.lifecycle.tasks import send_back

    return show_tasks([send_back(make_context(cfg), args.id, reason=args.reason)], args.format)


def cmd_disposals_list(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_disposals
    from retentiond.lifecycle.review import count_disposals, list_disposals

    ctx = make_context(cfg)
    rows = list_disposals(ctx, state=args.state, limit=args.limit, after_id=args.after_id)
    status = show_disposals(rows, args.format)
    if args.limit is not None and len(rows) == args.limit:
        # On stderr, so that the table or JSON on stdout stays exactly the rows.
        more = count_disposals(ctx, state=args.state, after_id=rows[-1].id) if rows else 0
        if more:
            print(f"{len(rows):,} shown; {more:,} more: add --after-id {rows[-1].id} for the "
                  "next ones", file=sys.stderr)
    return status


def cmd_disposals_act(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.commands import show_disposals
    from retentiond.lifecycle import failed, review

    matching = getattr(args, "matching", False)
    if matching:
        # What the filters select depends on who acts (their scope, their stage groups): bound
        # to the operating-system user, as approving is.
        return _disposals_matching(args, acting_context(cfg, f"{args.verb} by filter"))
    ctx = acting_context(cfg, "approving") if args.verb == "approve" else make_context(cfg)
    if not args.ids:
        raise LifecycleError(f"name the disposal ids to {args.verb}, or select cases with "
                             "--matching and the queue's filters")
    ids = _positive_ids(args.ids)
    if args.verb == "approve":
        rows = review.approve(ctx, ids, reason=args.reason,
                              acknowledge_not_found=args.acknowledge_not_found)
        log_override(ctx, "approving")
    elif args.verb == "defer":
        rows = review.defer(ctx, ids, reason=args.reason, until=args.until)
    elif args.verb == "retry":
        rows = failed.retry(ctx, ids, reason=args.reason)
    elif args.verb == "return-to-review":
        rows = failed.return_to_review(ctx, ids, reason=args.reason)
    else:
        rows = review.reject(ctx, ids, reason=args.reason)
    return show_disposals(rows, args.format)


#: The queue's filters, as ``disposals approve|defer|reject --matching`` takes them.
MATCHING_FILTERS = (("controller", "controller code"), ("category", "category"),
                    ("rule", "rule id"), ("action", "disposal action"),
                    ("due-from", "due on or after (YYYY-MM-DD)"),
                    ("due-to", "due on or before (YYYY-MM-DD)"),
                    ("state", "case state (default pending_review; 'any' for every state)"))


def _matching_options(p: argparse.ArgumentParser) -> None:
    """``--matching``, the queue's filters and ``--expect`` (``disposals approve|defer|reject|
    exception``)."""
    p.add_argument("--matching", action="store_true",
                   help="act on every case the filters below select (the review queue's); "
                   "without --expect, only say how many and change nothing")
    for name, help_text in MATCHING_FILTERS:
        p.add_argument(f"--{name}", default=None, help=help_text)
    p.add_argument("--gone-at-source", action="store_true",
                   help="only records their source no longer lists")
    p.add_argument("--expect", type=int, default=None, metavar="N",
                   help="with --matching: the number of cases you expect to act on (as the "
                   "command without it said); refused if the filters now select another "
                   "number")


def _disposals_matching(args: argparse.Namespace, ctx: Context) -> int:
    """Everything the filters select: without ``--expect``, say how many cases would be acted
    on (and left out, and why) and change nothing; with it, act, or refuse if the count moved."""
    from retentiond.cli.commands import show_matching
    from retentiond.lifecycle import bulk_review
    from retentiond.lifecycle.filters import parse_criteria

    if args.ids:
        raise LifecycleError("--matching acts on what the filters select: name no ids with it")
    raw = {name.replace("-", "_"): getattr(args, name.replace("-", "_"))
           for name, _ in MATCHING_FILTERS}
    state = raw.pop("state")
    raw["state"] = None if state == "any" else (state or "pending_review")
    criteria = parse_criteria({k: v for k, v in raw.items() if v is not None})
    gone = args.gone_at_source
    ack = getattr(args, "acknowledge_not_found", False)
    if args.expect is None:
        preview = bulk_review.preview_matching(ctx, args.verb, criteria, gone_at_source=gone,
                                               acknowledge_not_found=ack)
        status = show_matching(preview, args.format)
        print(f"nothing was changed: to {args.verb} these {preview.acting:,} cases, run the "
              f"same command with --expect {preview.acting}", file=sys.stderr)
        return status
    if args.verb == "approve":
        result = bulk_review.approve_matching(ctx, criteria, reason=args.reason,
                                              expected=args.expect, gone_at_source=gone,
                                              acknowledge_not_found=ack)
    elif args.verb == "defer":
        result = bulk_review.defer_matching(ctx, criteria, reason=args.reason, until=args.until,
                                            expected=args.expect, gone_at_source=gone)
    elif args.verb == "exception":
        result = bulk_review.except_matching(ctx, criteria, reason=args.reason,
                                             expected=args.expect, gone_at_source=gone)
    else:
        result = bulk_review.reject_matching(ctx, criteria, reason=args.reason,
                                             expected=args.expect, gone_at_source=gone)
    log_override(ctx, f"{args.verb} by filter")
    return show_matching(result, args.format)


def cmd_disposals_case(args: argparse.Namespace, cfg: Config) -> int:
    """``disposals exception|resume|cancel-cooling IDS --reason`` and ``comment ID --text``."""
    from retentiond.cli.commands import show_disposals
    from retentiond.lifecycle import review

    # Who acts decides what is in scope: bound to the operating-system user like approving.
    doing = {"comment": "commenting", "exception": "raising an exception",
             "resume": "sending a case on to review",
             "cancel-cooling": "cancelling a cooling-off"}[args.verb]
    ctx = acting_context(cfg, doing)
    if getattr(args, "matching", False):
        return _disposals_matching(args, ctx)
    if args.verb == "exception" and not args.ids:
        raise LifecycleError("name the disposal ids to raise an exception on, or select cases "
                             "with --matching and the queue's filters")
    if args.verb == "comment":
        rows = [review.comment(ctx, args.id, text=args.text)]
    else:
        act = {"exception": review.raise_exception, "resume": review.resume,
               "cancel-cooling": review.cancel_cooling}[args.verb]
        rows = act(ctx, _positive_ids(args.ids), reason=args.reason)
    log_override(ctx, doing)
    return show_disposals(rows, args.format)


def _show_groups(groups: list[Any], fmt: str) -> int:
    from retentiond.cli.output import print_json, print_table

    if fmt == "json":
        print_json([g.as_json() for g in groups])
    else:
        print_table(("name", "label", "members", "scope"),
                    [(g.name, g.label, ", ".join(g.members) or "-", _scope_words(g.scope))
                     for g in groups])
    return 0


def _scope_words(rows: Any) -> str:
    if not rows:
        return "unscoped"
    return "; ".join(f"{c or 'any controller'} / {k or 'any category'}" for c, k in rows)


def cmd_groups(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.lifecycle import groups

    ctx = make_context(cfg)
    verb = args.verb
    if verb == "add":
        return _show_groups([groups.add_group(ctx, args.name, label=args.label)], args.format)
    if verb == "list":
        return _show_groups(groups.list_groups(ctx), args.format)
    if verb == "show":
        return _show_groups([groups.show_group(ctx, args.name)], args.format)
    if verb == "delete":
        groups.delete_group(ctx, args.name)
        print(f"review group {args.name} deleted")
        return 0
    if verb == "member-add":
        return _show_groups([groups.add_member(ctx, args.name, args.username)], args.format)
    if verb == "member-remove":
        return _show_groups([groups.remove_member(ctx, args.name, args.username)], args.format)
    rows = groups.set_scope(ctx, "group", args.name, controllers=args.controller,
                            categories=args.category, clear=args.clear)
    if args.format == "json":
        print_json([{"controller": c, "category": k} for c, k in rows])
    else:
        print(f"group {args.name}: {_scope_words(rows)}")
    return 0


def cmd_users_scope(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.lifecycle import groups

    ctx = make_context(cfg)
    if args.show:
        rows = groups.user_scope(ctx, args.username)
    else:
        rows = groups.set_scope(ctx, "user", args.username, controllers=args.controller,
                                categories=args.category, clear=args.clear)
    if args.format == "json":
        print_json([{"controller": c, "category": k} for c, k in rows])
    else:
        print(f"user {args.username}: {_scope_words(rows)} (their own rows; their groups' "
              "rows add to them)")
    return 0


def cmd_audit_verify(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.audit.chain import verify
    from retentiond.cli.output import print_json

    anchors: dict[int, str] = {}
    for text in args.anchor:
        seq, sep, digest = text.partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64:
            raise LifecycleError(f"--anchor {text!r} is not SEQ:SHA256HEX")
        anchors[int(seq)] = digest.lower()
    ctx = make_context(cfg)
    with ctx.sessions() as session:
        result = verify(session, anchors=anchors)
    problem = result.problem
    if args.format == "json":
        print_json({"ok": result.ok, "events": result.events, "head_seq": result.head_seq,
                    "head_hash": result.head_hash,
                    "problem": None if problem is None else {
                        "kind": problem.kind, "seq": problem.seq, "event_id": problem.event_id,
                        "message": problem.message}})
    elif problem is None:
        print(f"audit trail intact: {result.events} events; head {result.head_seq} "
              f"{result.head_hash}")
    if problem is not None:
        print(f"retentiond: error: audit trail broken: {problem.message}", file=sys.stderr)
        return 1
    return 0


def cmd_audit_head(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.registry.chain import head

    ctx = make_context(cfg)
    with ctx.sessions() as session:
        seq, digest = head(session)
    print(f"{seq}:{digest}")
    return 0


def cmd_audit_export(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.audit.export import events, write

    ctx = make_context(cfg)
    with ctx.sessions() as session:
        write(events(session, start=args.start, end=args.end), sys.stdout, args.format)
    return 0


def cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.daemon import run

    return run(cfg, once=args.once)


def cmd_init(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.firstrun import SYSTEM_DIR, init

    result = init(Path(args.dir), issuer=args.issuer, contact=args.contact,
                  database_url=args.database_url, public_url=args.url, force=args.force,
                  user=args.user, now=dt.datetime.now(dt.UTC))
    print(f"retentiond is set up in {result.directory}:")
    for w in result.files:
        print(f"  {w.path.relative_to(result.directory)}  ({w.mode:04o})")
    print(f"database: {result.database}, at revision {result.revision}")
    print(f"signing key id: {result.key_id}")
    if result.owner:
        print(f"the database and the config's group belong to the service user {result.owner}")
    r = "retentiond" if result.directory == SYSTEM_DIR else f"retentiond --config {result.config}"
    ca_key = result.directory / "credentials" / "keys" / "ca-key.pem"
    print("\nNext (docs/install.md has each step in full):")
    print(f"  1. Read {result.config} and set what is yours: [notify] from, ig_email and\n"
          "     [notify.smtp]; the address behind your reverse proxy (public_url, ack_url);\n"
          "     a [connectors.NAME] for each system that holds the data.")
    print("  2. Make the first administrator (who can add the others in the web UI):\n"
          f"       {r} users add admin --role admin")
    print("  3. Publish the public keys that check certificates, then move the CA's private key\n"
          f"     offline: {r} keys publish --out DIR; {ca_key}")
    print("  4. Import controllers and records, and see what falls due:\n"
          f"       {r} controllers import controllers.csv\n"
          f"       {r} records import records.csv\n"
          f"       {r} forecast --until {_today().year + 1}-12-31")
    print("  5. Start the service: under systemd with the units in systemd/ (docs/install.md),\n"
          f"     or in the foreground: {r} run")
    return 0


def cmd_demo_load(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.demo import load_demo

    summary = load_demo(make_context(cfg), records=args.records, seed=args.seed)
    print(summary)
    return 0


def cmd_demo_run(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.daemon import run
    from retentiond.demo.mailsink import serve_pages, start_smtp
    from retentiond.demo.site import ACCOUNTS, DEMO_INTERVAL_S, Ports, demo_pages, prepare

    clock = SystemClock()
    ports = Ports(web=args.web_port, mail_page=args.mail_port, smtp=args.smtp_port)
    configure_logging("warning", "console")  # setting up says what it did below
    site = prepare(Path(args.dir), clock=clock, ports=ports, records=args.records)
    smtp = start_smtp(site.mail_dir, "127.0.0.1", ports.smtp, clock=clock)
    pages = serve_pages(demo_pages(site), "127.0.0.1", ports.mail_page)
    here = Path.cwd()

    def shown(path: Path) -> str:
        return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)

    for note in site.notes:
        print(note)
    print(f"""
The retentiond demo is running in {shown(site.var)}, with synthetic data only.
  review service  {site.web_url}/
                  accounts {", ".join(ACCOUNTS)} (school is Demo Primary School 1's user)
                  password {site.password}  (in {shown(site.var / "demo-password")})
  demo mailbox    {site.mail_url}/  (and {shown(site.mail_dir)}/*.eml), beside the holding systems
  command line    RETENTIOND_CONFIG={shown(site.config)} retentiond disposals list --state pending_review
The daemon carries out, certifies and notifies every {DEMO_INTERVAL_S} seconds: approve a case
and follow it (README.md, "Quick start"). Ctrl-C stops it all.
""", flush=True)
    demo_cfg = load_config(str(site.config))
    configure_logging(demo_cfg.log_level, demo_cfg.log_format, demo_cfg.pseudonym_key)
    try:
        return run(demo_cfg, once=args.once)
    finally:
        pages.shutdown()
        smtp.stop()


def cmd_web(args: argparse.Namespace, cfg: Config) -> int:
    import signal
    import threading

    from retentiond.web import create_app, serve

    # The app is built here, so that a bad [web] section or policy fails the command; it is
    # served from a thread, so that SIGTERM and SIGINT stop it through the event and the
    # command exits 0 after a graceful shutdown.
    app = create_app(cfg)
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            serve(cfg, stop, app=app)
        except Exception as exc:
            failed.append(exc)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=run, name="retentiond-web")
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    if failed:
        raise failed[0]
    return 0


def _read_password(args: argparse.Namespace) -> str:
    """From --password-file, else a prompt (twice) at a terminal, else one line of stdin."""
    import getpass

    if args.password_file:
        return Path(args.password_file).read_text(encoding="utf-8").rstrip("\r\n")
    if sys.stdin.isatty():
        first = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != first:
            raise LifecycleError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _users_tokens(args: argparse.Namespace, ctx: Context) -> int:
    """``users tokens [NAME]`` and ``users revoke-token ID``."""
    from retentiond.cli.output import print_json, print_table
    from retentiond.web.sessions import list_tokens, revoke_token

    if args.verb == "revoke-token":
        tokens = [revoke_token(ctx, args.token_id)]
    else:
        tokens = list_tokens(ctx, args.username)
    if args.format == "json":
        print_json([t.as_json() for t in tokens])
    else:
        print_table(("id", "user", "name", "issued_by", "created_at", "state"),
                    [(t.id, t.username, t.name, t.issued_by or "-",
                      t.created_at.isoformat(timespec="seconds"),
                      "active" if t.active else "revoked") for t in tokens])
    return 0


def cmd_users(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.web import accounts

    if args.verb == "token":
        from retentiond.web.sessions import create_token

        ctx = acting_context(cfg, "making an API token")
        print(create_token(ctx, args.username, name=args.token_name))
        log_override(ctx, "making an API token")
        return 0
    ctx = make_context(cfg)
    if args.verb in ("tokens", "revoke-token"):
        return _users_tokens(args, ctx)
    if args.verb == "add":
        password = None if args.oidc_only else _read_password(args)
        users = [accounts.add_user(ctx, username=args.username, roles=args.role,
                                   password=password, controller=args.controller,
                                   display_name=args.name)]
    elif args.verb == "disable":
        users = [accounts.disable_user(ctx, args.username)]
    elif args.verb == "reset-password":
        users = [accounts.reset_password(ctx, args.username, _read_password(args))]
    else:
        users = accounts.list_users(ctx)
    if args.format == "json":
        print_json([u.as_json() for u in users])
    else:
        for u in users:
            state = "disabled" if u.disabled else "active"
            print(f"{u.username}\t{','.join(u.roles)}\t{u.controller or '-'}\t{state}")
    return 0


# --- parser ---------------------------------------------------------------------------------

def _scope_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--controller", action="append", default=[], metavar="CODE",
                   help="a controller in scope (repeat for several)")
    p.add_argument("--category", action="append", default=[], metavar="CATEGORY",
                   help="a category in scope (repeat for several; with --controller: those "
                   "categories of those controllers)")
    p.add_argument("--clear", action="store_true", help="remove the scope rows")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="config file (TOML); default $RETENTIOND_CONFIG or "
                        "/etc/retentiond/retentiond.toml")
    parser = argparse.ArgumentParser(
        prog="retentiond", parents=[common],
        description="Retention and disposal scheduling for data shared under ISAs.",
    )
    parser.add_argument("--version", action="version", version=f"retentiond {__version__}")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def group(name: str, help: str) -> Any:
        p = top.add_parser(name, help=help, parents=[common])
        return p.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")

    def leaf(parent: Any, name: str, help: str, handler: Handler,
             formats: tuple[str, ...] | None = None, **kw: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help, parents=[common], **kw)
        p.set_defaults(handler=handler)
        if formats:
            p.add_argument("--format", choices=formats, default=formats[0])
        return p

    db = group("db", "the registry database")
    leaf(db, "upgrade", "create or migrate the database to this version's schema", cmd_db_upgrade)
    leaf(db, "status", "show the database's schema revision", cmd_db_status)

    pol = group("policies", "retention policy packs")
    p = leaf(pol, "check", "validate policy packs without applying them", cmd_policies_check,
             ("text", "json"))
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: "
                   "the configured policies)")
    leaf(pol, "show", "show the rules in force with their citations", cmd_policies_show,
         ("text", "json"))
    p = leaf(pol, "report", "write the sign-off report (PDF and HTML) for policy packs",
             cmd_policies_report)
    p.add_argument("paths", nargs="*", metavar="PATH", help="files or directories (default: "
                   "the configured policies)")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="where to write: FILE.pdf and FILE.html (a .pdf or .html suffix is "
                   "replaced)")

    ctl = group("controllers", "organisations that provide data")
    p = leaf(ctl, "import", "create or update controllers from CSV (code,name,email[,webhook_url])",
             cmd_controllers_import)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=("csv", "jsonl"), default=None)
    leaf(ctl, "list", "list controllers", cmd_controllers_list, ("table", "json"))

    agr = group("agreements", "information sharing agreements")
    p = leaf(agr, "add", "record an agreement", cmd_agreements_add)
    p.add_argument("code")
    p.add_argument("--title", required=True)
    p.add_argument("--notice", choices=("1m", "3m"), default="1m")
    p.add_argument("--action", choices=("return", "delete"), default="return",
                   help="what happens to records on termination (default: return)")
    p.add_argument("--starts-on", type=_date, default=None)
    leaf(agr, "list", "list agreements", cmd_agreements_list, ("table", "json"))
    p = leaf(agr, "terminate", "terminate an agreement: its records fall due after the notice",
             cmd_agreements_terminate)
    p.add_argument("code")
    p.add_argument("--on", type=_date, required=True, metavar="DATE")
    p.add_argument("--notice", choices=("1m", "3m"), default=None,
                   help="notice period (default: the agreement's)")

    rec = group("records", "the register of records")
    p = leaf(rec, "import", "create or update records from CSV or JSON lines", cmd_records_import)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=("csv", "jsonl"), default=None,
                   help="default: from the file name (.jsonl is JSON lines, else CSV)")
    p = leaf(rec, "explain", "explain a record's retention decision", cmd_records_explain,
             ("text", "json"))
    p.add_argument("record_id", metavar="RECORD_ID")
    p.add_argument("--as-of", type=_date, default=None, metavar="DATE")

    p = leaf(top, "evaluate", "queue every due, unheld record for review", cmd_evaluate,
             ("text", "json"))
    p.add_argument("--as-of", type=_date, default=None, metavar="DATE",
                   help="default: today in Europe/London")

    p = leaf(top, "forecast", "what becomes due in a window", cmd_forecast,
             ("table", "json", "csv"))
    p.add_argument("--as-of", type=_date, default=None, metavar="DATE")
    p.add_argument("--until", type=_date, default=None, metavar="DATE",
                   help="default: a year after --as-of")

    hol = group("holds", "holds that block disposal")
    p = leaf(hol, "place", "place a hold", cmd_holds_place, ("table", "json"))
    p.add_argument("--scope", required=True,
                   help="record:ID, subject:REF, category:CODE, controller:CODE, or "
                   "filter:NAME (or filter:ID) for a saved filter, whose record criteria the "
                   "hold copies")
    p.add_argument("--type", required=True,
                   choices=("legal", "subject_access", "inquiry", "complaint", "police", "other"))
    p.add_argument("--reason", required=True)
    p.add_argument("--until", type=_date, default=None, metavar="DATE",
                   help="last day the hold applies (default: until lifted)")
    p = leaf(hol, "import", "place many holds from CSV (scope,type,reason[,until]), all or none",
             cmd_holds_import)
    p.add_argument("file", metavar="FILE")
    p.add_argument("--format", choices=("csv", "jsonl"), default=None)
    p = leaf(hol, "lift", "lift a hold", cmd_holds_lift, ("table", "json"))
    p.add_argument("hold_id", type=int, metavar="HOLD_ID")
    p.add_argument("--reason", required=True)
    p = leaf(hol, "list", "list holds", cmd_holds_list, ("table", "json"))
    p.add_argument("--all", action="store_true", help="include lifted holds")

    fil = group("filters", "saved review-queue filters (a hold can be scoped by one)")
    leaf(fil, "list", "list saved filters", cmd_filters_list, ("table", "json"))
    p = leaf(fil, "show", "show one saved filter", cmd_filters_show, ("table", "json"))
    p.add_argument("filter", metavar="NAME_OR_ID")
    p = leaf(fil, "save", "save criteria under a new name", cmd_filters_save, ("table", "json"))
    p.add_argument("name", metavar="NAME")
    for name, help_text in (("controller", "controller code"), ("category", "category"),
                            ("rule", "rule id"), ("action", "disposal action"),
                            ("due-from", "due on or after (YYYY-MM-DD)"),
                            ("due-to", "due on or before (YYYY-MM-DD)"),
                            ("state", "case state (the queue only; never part of a hold)")):
        p.add_argument(f"--{name}", default=None, help=help_text)
    p = leaf(fil, "delete", "delete a saved filter (holds placed from it keep their copy)",
             cmd_filters_delete, ("table", "json"))
    p.add_argument("filter", metavar="NAME_OR_ID")

    src = group("sources", "the sources the registry reads its records from ([sources.NAME])")
    leaf(src, "list", "each source's schedule, last and next run, records gone at source",
         cmd_sources_list, ("table", "json"))
    p = leaf(src, "run", "run sources now if due (all, or those named)", cmd_sources_run,
             ("table", "json"))
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--force", action="store_true", help="run even if not due")

    dis = group("disposals", "disposal cases")
    p = leaf(dis, "list", "list disposal cases", cmd_disposals_list, ("table", "json"))
    p.add_argument("--state", default=None)
    p.add_argument("--limit", type=int, default=None,
                   help="at most N cases (stderr then says how many more there are)")
    p.add_argument("--after-id", type=int, default=0, metavar="ID",
                   help="only cases after this id (the next page)")
    p = leaf(dis, "execute", "carry out approved disposals through the connectors (one pass)",
             cmd_disposals_execute, ("text", "json"))
    p.add_argument("--batch-size", type=int, default=100, metavar="N")
    p.add_argument("--lease-s", type=int, default=600, metavar="SECONDS",
                   help="how long a claimed case is leased (longer than the slowest single connector call)")
    leaf(dis, "tasks", "manual disposal tasks pending confirmation", cmd_disposals_tasks,
         ("table", "json"))
    p = leaf(dis, "confirm", "confirm a manual destruction with its evidence, or what became "
             "of data not found", cmd_disposals_confirm, ("table", "json"))
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--destroyed-by", default=None, metavar="NAME",
                   help="who destroyed it (person or contractor)")
    p.add_argument("--destroyed-on", type=_date, default=None, metavar="DATE")
    p.add_argument("--method", default=None, metavar="TEXT", help="e.g. cross-cut shredding")
    p.add_argument("--certificate", default=None, metavar="NO",
                   help="the contractor's certificate of destruction number")
    p.add_argument("--evidence", default=None, metavar="TEXT",
                   help="data not found: what became of it, in your words (e.g. 'destroyed "
                   "earlier by the school's MIS clean-up of March 2024, its log ref 118'); "
                   "the certificate quotes it")
    p = leaf(dis, "send-back", "send a case whose data was not found back to review (after "
             "correcting its locator with 'records import')", cmd_disposals_send_back,
             ("table", "json"))
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--reason", required=True)
    for verb, help in (("approve", "approve cases"), ("defer", "defer cases to a later date"),
                       ("reject", "reject cases: the records are retained"),
                       ("retry", "try failed cases again, after fixing the cause (back to "
                        "approved; holds and due dates are checked again)"),
                       ("return-to-review", "send failed cases back to review (their "
                        "approvals no longer count)")):
        p = leaf(dis, verb, help, cmd_disposals_act, ("table", "json"))
        p.set_defaults(verb=verb)
        bulk = verb in ("approve", "defer", "reject")
        p.add_argument("ids", nargs="*" if bulk else "+", metavar="ID")
        p.add_argument("--reason", required=True)
        if verb == "defer":
            p.add_argument("--until", type=_date, required=True, metavar="DATE")
        if bulk:
            _matching_options(p)
        if verb == "approve":
            p.add_argument("--acknowledge-not-found", action="store_true",
                           help="approve cases whose data their holding system did not find "
                           "when last checked (the executor still looks again first)")
    for verb, help in (("exception", "raise an exception on cases: out of review and back to "
                        "the IG officer, approvals voided"),
                       ("resume", "send cases raised as exceptions on to review (stage 1 "
                        "again)"),
                       ("cancel-cooling", "cancel the cooling-off of approved cases: back to "
                        "review, approvals voided")):
        p = leaf(dis, verb, help, cmd_disposals_case, ("table", "json"))
        p.set_defaults(verb=verb)
        p.add_argument("ids", nargs="*" if verb == "exception" else "+", metavar="ID")
        p.add_argument("--reason", required=True)
        if verb == "exception":
            _matching_options(p)
    p = leaf(dis, "comment", "comment on a case (its history shows it; nothing else changes)",
             cmd_disposals_case, ("table", "json"))
    p.set_defaults(verb="comment")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--text", required=True)
    p = leaf(dis, "check", "look for the data of cases awaiting review or execution in their "
             "holding systems (the daemon does this after each evaluation)",
             cmd_disposals_check, ("text", "json"))
    p.add_argument("--max-age-s", type=float, default=0, metavar="SECONDS",
                   help="do not ask again about findings younger than this (default: ask all)")

    aud = group("audit", "the hash-chained audit trail")
    p = leaf(aud, "verify", "walk the hash chain; report the first altered, removed or inserted "
             "event", cmd_audit_verify, ("text", "json"))
    p.add_argument("--anchor", action="append", default=[], metavar="SEQ:HASH",
                   help="a position and hash known from outside (a certificate); repeatable")
    leaf(aud, "head", "print the chain's head as SEQ:HASH", cmd_audit_head)
    p = leaf(aud, "export", "export audit events", cmd_audit_export, ("csv", "jsonl"))
    p.add_argument("--from", dest="start", type=_date, default=None, metavar="DATE")
    p.add_argument("--to", dest="end", type=_date, default=None, metavar="DATE")

    p = leaf(top, "run", "run the service: scheduled evaluation, execution, hold expiry, "
             "digest (docs/daemon.md)", cmd_run)
    p.add_argument("--once", action="store_true",
                   help="run one pass of every job and exit (non-zero if a job failed)")

    leaf(top, "web", "serve the review UI and REST API in the foreground ([web] in the config; "
         "docs/web.md)", cmd_web)
    usr = group("users", "people and machines who use the web UI and REST API")
    for verb, help in (("add", "add a user"), ("disable", "disable a user and end their sessions"),
                       ("reset-password", "set a new password (enables a disabled user)"),
                       ("token", "create an API token for yourself (printed once): USERNAME "
                                 "is the operating-system user running the command"),
                       ("tokens", "list API tokens (everyone's, or USERNAME's)"),
                       ("revoke-token", "revoke an API token"),
                       ("list", "list users")):
        p = leaf(usr, verb, help, cmd_users, ("table", "json") if verb != "token" else None)
        p.set_defaults(verb=verb)
        if verb == "tokens":
            p.add_argument("username", metavar="USERNAME", nargs="?", default=None)
        elif verb == "revoke-token":
            p.add_argument("token_id", metavar="TOKEN_ID", type=int)
        elif verb != "list":
            p.add_argument("username", metavar="USERNAME")
        if verb in ("add", "reset-password"):
            p.add_argument("--password-file", default=None, metavar="FILE",
                           help="read the password from FILE (default: prompt, or stdin)")
        if verb == "add":
            p.add_argument("--role", required=True,
                           help="comma-separated: admin, ig_officer, approver, auditor, controller")
            p.add_argument("--controller", default=None, metavar="CODE",
                           help="the organisation a controller user belongs to")
            p.add_argument("--name", default=None, help="display name")
            p.add_argument("--oidc-only", action="store_true",
                           help="no password: the user signs in through OpenID Connect only")
        if verb == "token":
            p.add_argument("--name", dest="token_name", required=True,
                           help="what uses the token (shown in the audit trail)")

    p = leaf(usr, "scope", "limit what a user may review to controllers and categories "
             "(their groups' scopes add to it)", cmd_users_scope, ("table", "json"))
    p.add_argument("username", metavar="USERNAME")
    _scope_arguments(p)
    p.add_argument("--show", action="store_true", help="show the user's own scope rows")

    grp = group("groups", "review groups: who approves each stage, and what they may review")
    for verb, help in (("add", "add a review group"), ("list", "list review groups"),
                       ("show", "show a review group"),
                       ("delete", "delete a review group (refused while cases wait for it)"),
                       ("scope", "limit what a group may review to controllers and categories")):
        p = leaf(grp, verb, help, cmd_groups, ("table", "json"))
        p.set_defaults(verb=verb)
        if verb != "list":
            p.add_argument("name", metavar="GROUP")
        if verb == "add":
            p.add_argument("--label", default=None, help="words for people (default: the name)")
        if verb == "scope":
            _scope_arguments(p)
    members = grp.add_parser("members", help="a group's members", parents=[common])
    msub = members.add_subparsers(dest="members_verb", required=True, metavar="SUBCOMMAND")
    for verb, help in (("add", "add a user to a group"),
                       ("remove", "remove a user from a group")):
        p = leaf(msub, verb, help, cmd_groups, ("table", "json"))
        p.set_defaults(verb=f"member-{verb}")
        p.add_argument("name", metavar="GROUP")
        p.add_argument("username", metavar="USERNAME")

    from retentiond.cli.certs import add_commands

    add_commands(top=top, group=group, leaf=leaf, controllers=ctl)

    p = top.add_parser("init", parents=[common],
                       help="first run: a commented config, keys and secrets, the database")
    p.set_defaults(handler=cmd_init)
    p.add_argument("--dir", default="/etc/retentiond",
                   help="where to write the config, packs and secrets (default: %(default)s)")
    p.add_argument("--issuer", required=True, metavar="NAME",
                   help="the organisation that issues disposal certificates")
    p.add_argument("--contact", default=None, metavar="EMAIL",
                   help="the contact printed on each certificate")
    p.add_argument("--database-url", default=None, metavar="URL",
                   help="the registry, with no password in it (default: SQLite in "
                        "/var/lib/retentiond for the system folder, else in --dir)")
    p.add_argument("--url", default=None, metavar="URL",
                   help="the address people reach the service at, behind the reverse proxy")
    p.add_argument("--user", default=None,
                   help="(as root) the user the service runs as: given the SQLite database and "
                        "the config's group (default: retentiond, where it exists)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing config, keys and secrets")

    demo = group("demo", "synthetic demonstration data")
    p = leaf(demo, "load", "load synthetic controllers, records and holds", cmd_demo_load)
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--seed", type=int, default=2026)
    p = leaf(demo, "run", "set up the whole demo in a folder and run it (./dev run)",
             cmd_demo_run)
    p.add_argument("--dir", default="var", help="the demo's folder (default: %(default)s)")
    p.add_argument("--web-port", type=int, default=8080, help="the review service")
    p.add_argument("--mail-port", type=int, default=8081,
                   help="the demo page: mailbox and holding systems")
    p.add_argument("--smtp-port", type=int, default=8025, help="the mail sink's SMTP server")
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--once", action="store_true", help="run every job once, then stop")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log = get_logger("retentiond.cli")
    try:
        cfg = load_config(getattr(args, "config", None))
        configure_logging(cfg.log_level, cfg.log_format, cfg.pseudonym_key)
        handler: Handler = args.handler
        return handler(args, cfg)
    except ImportRefused as exc:
        print(f"retentiond: error: {exc}", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        if exc.more:
            print(f"  ... and {exc.more} more", file=sys.stderr)
        # Logged after the error lines, so that the first line on stderr is the error
        # (docs/cli.md). Counts only: problems quote values, which may be personal data.
        log.warning("import_refused", command=args.command, file=Path(exc.filename).name,
                    problems=len(exc.problems) + exc.more)
        return 1
    except PolicyError as exc:
        print(f"retentiond: error: policy refused: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (ConfigError, SchemaError, LifecycleError) as exc:
        print(f"retentiond: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (``| head``): not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("retentiond: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the one place an unexpected error becomes an exit status
        # One line, and the first on stderr: a database error's further lines carry the SQL
        # and its parameters, which may be personal data.
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        print(f"retentiond: error: {type(exc).__name__}: {first}", file=sys.stderr)
        log.error("command_failed", command=args.command, error_type=type(exc).__name__)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
