"""The daemon's jobs: thin adapters from the scheduler to the lifecycle services.

Every job finds its work in the database (DESIGN.md section 5), so running one twice, late or
after a restart loses nothing and does nothing twice. Each returns a ``JobOutcome`` with
counts only (they go to logs and metrics; no personal data), or raises.

The jobs that act on the outside world are wired to whatever this installation has
(``Wiring``): execution and lease reaping to ``retentiond.lifecycle.execute`` and
``retentiond.connectors``; certification to ``retentiond.certificates`` (with the signing keys
of ``[certificates]``); delivery and advance notices to ``retentiond.notify``. What is missing
(a module, or the signing keys on a fresh install) is reported plainly, in the log, the status
line, ``/healthz`` and the metrics, never pretended.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from retentiond.clock import LONDON
from retentiond.config import Config, ConfigError
from retentiond.daemon.queries import CountsCache
from retentiond.daemon.settings import DaemonSettings
from retentiond.daemon.slots import nightly_slot
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import expire_holds
from retentiond.logs import get_logger
from retentiond.registry.db import write_transaction

log = get_logger("retentiond.daemon")

#: Said where the digest cannot be emailed (no [notify] section, or no ig_email in it).
DIGEST_EMAIL_NOTE = ("the digest is this log line and the retentiond_job_last_count metrics; "
                     "set [notify].ig_email to have it emailed to IG officers")


@dataclass(frozen=True, kw_only=True)
class JobOutcome:
    """What a run did. ``status``: ok, skipped (nothing to do by design) or unavailable."""

    status: str = "ok"
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """The execution pipeline, if this installation has it."""

    execute_due: Callable[..., Any] | None = None
    reap_leases: Callable[[Context], int] | None = None
    connectors: Any = None
    unavailable: str | None = None

    def close(self) -> None:
        """Let the connectors go (connection pools, SFTP sessions)."""
        close = getattr(self.connectors, "close", None)
        if close is not None:
            close()


def _optional_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise  # the module exists but something it needs is missing: that is an error


def load_pipeline(cfg: Config) -> Pipeline:
    """Import the execution pipeline and load the configured connectors. Raises when the
    connectors' configuration is wrong (``ConfigError`` from ``load_connectors``)."""
    execute = _optional_module("retentiond.lifecycle.execute")
    connectors = _optional_module("retentiond.connectors")
    missing = []
    if execute is None:
        missing.append("retentiond.lifecycle.execute")
    else:
        missing += [f"retentiond.lifecycle.execute.{n}" for n in ("execute_due", "reap_leases")
                    if not hasattr(execute, n)]
    if connectors is None:
        missing.append("retentiond.connectors")
    elif not hasattr(connectors, "load_connectors"):
        missing.append("retentiond.connectors.load_connectors")
    if missing:
        return Pipeline(unavailable="execution is not available in this installation "
                        f"(missing {', '.join(missing)}): approved disposals are not carried out")
    return Pipeline(execute_due=execute.execute_due, reap_leases=execute.reap_leases,
                    connectors=connectors.load_connectors(cfg))


@dataclass(frozen=True, kw_only=True)
class Certification:
    """Issuing certificates, if this installation has the module and the signing keys."""

    issue: Callable[..., Any] | None = None
    signer: Any = None
    batch: str = "run"
    unavailable: str | None = None


def load_certification(cfg: Config) -> Certification:
    """A wrong ``[certificates]`` section is refused (``ConfigError``); keys not made yet, or
    no issuer, leave certification unavailable (the executed disposals wait for it)."""
    certs = _optional_module("retentiond.certificates")
    names = ("issue_certificates", "certificate_settings", "load_signer")
    if certs is None or not all(hasattr(certs, n) for n in names):
        return Certification(unavailable="certificates are not available in this installation")
    settings = certs.certificate_settings(cfg)
    try:
        signer = certs.load_signer(settings)
    except ConfigError as exc:
        return Certification(batch=settings.batch,
                             unavailable=f"certificates cannot be issued: {exc}")
    return Certification(issue=certs.issue_certificates, signer=signer, batch=settings.batch)


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """Delivering the outbox, and advance notices, if this installation has them."""

    deliver: Callable[..., Any] | None = None
    channels: Any = None
    advance: Callable[..., Any] | None = None
    issuer: str | None = None
    unavailable: str | None = None
    advance_unavailable: str | None = None


def load_delivery(cfg: Config) -> Delivery:
    """A wrong ``[notify]`` section is refused (``ConfigError``)."""
    notify = _optional_module("retentiond.notify")
    if notify is None or not all(hasattr(notify, n)
                                 for n in ("channels_from_config", "deliver_notifications")):
        missing = "notifications are not available in this installation"
        return Delivery(unavailable=missing, advance_unavailable=missing)
    channels = notify.channels_from_config(cfg)
    advance = _optional_module("retentiond.notify.advance")
    send = getattr(advance, "send_advance_notices", None)
    certs = _optional_module("retentiond.certificates")
    issuer = certs.certificate_settings(cfg).issuer if certs is not None else None
    why = None
    if send is None:
        why = "advance notices are not available in this installation"
    elif not issuer:
        why = "advance notices need [certificates].issuer (who the notice is from)"
    return Delivery(deliver=notify.deliver_notifications, channels=channels,
                    advance=send if why is None else None, issuer=issuer, advance_unavailable=why)


@dataclass(frozen=True, kw_only=True)
class Wiring:
    """Everything outside the registry that jobs act through, loaded from one config."""

    pipeline: Pipeline = field(default_factory=Pipeline)
    certification: Certification = field(default_factory=Certification)
    delivery: Delivery = field(default_factory=Delivery)
    #: The ``[sources.NAME]`` tables (retentiond/sources), checked.
    sources: tuple[Any, ...] = ()

    def unavailable(self) -> dict[str, str]:
        """What cannot run, and why: for the log, STATUS and /healthz."""
        reasons = {"execution": self.pipeline.unavailable,
                   "certificates": self.certification.unavailable,
                   "notifications": self.delivery.unavailable,
                   "advance notices": self.delivery.advance_unavailable}
        return {k: v for k, v in reasons.items() if v}

    def close(self) -> None:
        self.pipeline.close()


def load_wiring(cfg: Config) -> Wiring:
    """Load everything; raises ``ConfigError`` for a wrong section (nothing is half loaded:
    connectors already built are closed)."""
    from retentiond.sources import load_sources

    pipeline = load_pipeline(cfg)
    try:
        return Wiring(pipeline=pipeline, certification=load_certification(cfg),
                      delivery=load_delivery(cfg), sources=load_sources(cfg))
    except BaseException:
        pipeline.close()
        raise


@dataclass(frozen=True, kw_only=True)
class JobEnv:
    """What a job run sees: the state in force when it started (a reload does not change a
    run in hand)."""

    ctx: Context
    engine: Engine
    settings: DaemonSettings
    wiring: Wiring
    stop: threading.Event
    owner: str
    counts: CountsCache


def _int_fields(result: Any) -> dict[str, int]:
    """The whole-number fields of a result object: the only part of it we log."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        items = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}.items()
    elif isinstance(result, dict):
        items = result.items()
    else:
        items = getattr(result, "__dict__", {}).items()
    return {str(k): int(v) for k, v in items if isinstance(v, int) and not isinstance(v, bool)}


def job_expire_holds(env: JobEnv) -> JobOutcome:
    """Lift holds whose ``until`` date has passed; their cases go back to review."""
    ctx = env.ctx
    with write_transaction(ctx.sessions) as session:
        expired = expire_holds(ctx, session, ctx.clock.today())
    return JobOutcome(counts={"holds_expired": expired})


def job_sources(env: JobEnv) -> JobOutcome:
    """Run the ``[sources.NAME]`` that are due, in turn (each one all or nothing)."""
    from retentiond.sources import run_due_sources

    if not env.wiring.sources:
        # Not "skipped": that is logged at info, and this would say it every minute.
        return JobOutcome(note="no [sources.NAME] is configured")
    connectors = env.wiring.pipeline.connectors
    locators = None
    if connectors is not None:
        # Each locator is checked by its system's connector, as ``records import`` does.
        from retentiond.connectors import LocatorCheck

        locators = LocatorCheck(connectors)
    outcomes = run_due_sources(env.ctx, env.wiring.sources, stop=env.stop, locators=locators)
    ran = [o for o in outcomes if o.outcome != "skipped"]
    counts = {"sources_run": len(ran),
              "sources_refused": sum(o.outcome == "refused" for o in ran),
              "sources_failed": sum(o.outcome == "failed" for o in ran)}
    for key in ("rows", "created", "updated", "unchanged", "gone", "back"):
        counts[key] = sum(o.counts.get(key, 0) for o in ran)
    failed = [o.source for o in ran if o.outcome == "failed"]
    if failed:
        # A source that cannot be read is the job's failure: it shows on /healthz and in the
        # metrics as one, while the other sources have still run.
        raise RuntimeError(f"source(s) failed: {', '.join(failed)}: "
                           + "; ".join(e for o in ran if o.outcome == "failed" for e in o.errors))
    return JobOutcome(counts=counts, note=", ".join(f"{o.source} {o.outcome}" for o in ran))


def job_evaluate(env: JobEnv) -> JobOutcome:
    """The nightly evaluation: at most once per London date, across every instance."""
    ctx = env.ctx
    as_of = ctx.clock.today()
    with nightly_slot(env.engine, as_of, ctx.actor) as slot:
        if not slot.claimed:
            return JobOutcome(status="skipped", note=slot.reason)
        result = evaluate(ctx, as_of)
    counts = {
        "evaluation_id": result.evaluation_id, "queued": result.queued,
        "auto_approved": result.auto_approved, "holds_expired": result.holds_expired,
        "recomputed": result.recompute.recomputed, "cases_withdrawn": result.recompute.withdrawn,
    }
    connectors = env.wiring.pipeline.connectors
    if connectors is not None:
        # What was queued is looked for in its holding system before anyone reviews it.
        from retentiond.lifecycle.presence import check_presence

        presence = check_presence(ctx, connectors)
        counts |= {"presence_checked": presence.checked, "not_found": presence.not_found}
    return JobOutcome(counts=counts,
                      note=f"as of {as_of.isoformat()}, policy {result.policy_version}")


def job_execute(env: JobEnv) -> JobOutcome:
    """Carry out approved disposals. ``execute_due`` claims batches of ``batch_size`` until
    none is ready, and returns early (releasing the rest of its batch) when the service stops."""
    p = env.wiring.pipeline
    if p.execute_due is None:
        return JobOutcome(status="unavailable", note=p.unavailable or "")
    spec = env.settings.jobs["execute"]
    result = p.execute_due(env.ctx, p.connectors, owner=env.owner, batch_size=spec.batch_size,
                           lease_s=spec.lease_s, stop=env.stop)
    return JobOutcome(counts=_int_fields(result))


def job_reap_leases(env: JobEnv) -> JobOutcome:
    """Return disposals whose executor died (lease expired) to the queue."""
    p = env.wiring.pipeline
    if p.reap_leases is None:
        return JobOutcome(status="unavailable", note=p.unavailable or "")
    return JobOutcome(counts={"reaped": int(p.reap_leases(env.ctx))})


def job_certify(env: JobEnv) -> JobOutcome:
    """Certify executed disposals: one signed certificate per controller per batch, its
    notifications queued in the outbox in the same transaction."""
    c = env.wiring.certification
    if c.issue is None:
        return JobOutcome(status="unavailable", note=c.unavailable or "")
    issued = c.issue(env.ctx, c.signer, batch=c.batch)
    return JobOutcome(counts={
        "certificates": len(issued),
        "records": sum(int(getattr(i, "records", 0)) for i in issued),
        "notifications": sum(int(getattr(i, "notifications", 0)) for i in issued),
    })


def job_deliver(env: JobEnv) -> JobOutcome:
    """Deliver what the outbox holds (certificate notices, advance notices, alerts)."""
    d = env.wiring.delivery
    if d.deliver is None:
        return JobOutcome(status="unavailable", note=d.unavailable or "")
    return JobOutcome(counts=_int_fields(d.deliver(env.ctx, d.channels, stop=env.stop,
                                                   owner=env.owner)))


def job_advance_notice(env: JobEnv) -> JobOutcome:
    """Tell controllers that asked for notice what of theirs falls due within their window."""
    d = env.wiring.delivery
    if d.advance is None:
        return JobOutcome(status="unavailable", note=d.advance_unavailable or "")
    notices = d.advance(env.ctx, issuer=d.issuer)
    return JobOutcome(counts={
        "notices": len(notices),
        "records": sum(int(getattr(n, "records", 0)) for n in notices),
    })


def job_digest(env: JobEnv) -> JobOutcome:
    """What awaits IG officers' review and what is overdue, as one log line and metrics."""
    c = env.counts.get(max_age_s=0)
    counts = {
        "pending_review": c.pending_review, "overdue": c.overdue, "failed": c.failed,
        "held": c.disposals.get("held", 0), "approved": c.disposals.get("approved", 0),
        "needs_attention": c.needs_attention, "due": c.due,
        "notifications_dead": c.notifications_dead, "webhooks_refused": c.webhooks_refused,
        "gone_at_source": c.gone_at_source, "sources_not_ok": c.sources_not_ok,
    }
    if c.oldest_pending_due_on is not None:
        counts["oldest_pending_days"] = (c.as_of - c.oldest_pending_due_on).days
    counts["cooling_off"] = c.disposals.get("cooling_off", 0)
    if c.cooling_off_earliest_end is not None:
        # Days from today to the London date the first cooling-off ends (0: ends today).
        counts["cooling_off_ends_in_days"] = max(
            0, (c.cooling_off_earliest_end.astimezone(LONDON).date() - c.as_of).days)
    counts["exceptions"] = c.disposals.get("exception", 0)
    if c.oldest_exception_at is not None:
        counts["oldest_exception_days"] = max(
            0, (c.as_of - c.oldest_exception_at.astimezone(LONDON).date()).days)
    channels = env.wiring.delivery.channels
    note = DIGEST_EMAIL_NOTE
    if channels is not None:
        from retentiond.notify.digest import queue_digest

        queued = queue_digest(env.ctx, channels.settings, as_of=c.as_of, counts=counts)
        note = (f"emailed to [notify].ig_email by the deliver job (notice {queued})"
                if queued is not None else
                "already queued today" if channels.settings.ig_email else DIGEST_EMAIL_NOTE)
    log.info("digest", as_of=c.as_of.isoformat(), overdue_grace_days=c.grace_days,
             pending_by_category=c.pending_by_category, delivery=note, **counts)
    return JobOutcome(counts=counts, note=note)


JOBS: dict[str, Callable[[JobEnv], JobOutcome]] = {
    "expire_holds": job_expire_holds,
    "sources": job_sources,
    "evaluate": job_evaluate,
    "advance_notice": job_advance_notice,
    "reap_leases": job_reap_leases,
    "execute": job_execute,
    "certify": job_certify,
    "digest": job_digest,
    "deliver": job_deliver,
}
