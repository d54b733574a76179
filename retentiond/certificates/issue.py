"""Issuing certificates: executed disposals -> one signed certificate per originating
controller per batch, with its notifications queued in the same transaction.

Entry point for the daemon and the CLI::

    signer = load_signer(certificate_settings(cfg))
    issued = issue_certificates(ctx, signer, batch="daily")   # or batch="run"

``batch`` is the batching mode (``[certificates].batch``):

- ``"run"``: every call gathers what is executed now into a new certificate per controller;
- ``"daily"``: at most one certificate per controller per calendar day (Europe/London): the
  first call of the day issues it, later calls that day issue nothing, and disposals executed
  after it wait for the next day's certificate.

Each certificate is issued in its own transaction, which moves its disposals ``executed ->
certified``, writes the audit events and the outbox rows (one per channel of the controller),
so a certificate is never issued without its notifications, nor a disposal certified twice.
Calling it twice does what calling it once does. On PostgreSQL the controller's row is
locked while its certificate is issued, so two daemons cannot fork a controller's chain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from retentiond import __version__
from retentiond.audit import record_event
from retentiond.certificates.document import (
    AgreementFacts,
    ChainLink,
    Evidence,
    ItemFacts,
    build_document,
    document_hash,
)
from retentiond.certificates.jws import sign_document
from retentiond.certificates.keys import Signer
from retentiond.certificates.pdf import render_pdf, sign_pdf
from retentiond.certificates.settings import BATCH_MODES
from retentiond.clock import Clock
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.sql import among
from retentiond.logs import get_logger
from retentiond.notify.recipients import controller_channels
from retentiond.policy.engine import TERMINATION_CITATION, TERMINATION_RULE_ID, TERMINATION_TITLE
from retentiond.registry.db import refresh_statistics
from retentiond.registry.models import (
    Agreement,
    Approval,
    AuditEvent,
    Certificate,
    CertificateItem,
    Controller,
    ControllerSettings,
    Disposal,
    DisposalExecution,
    Notification,
    Record,
    WebUser,
)

log = get_logger("retentiond.certificates")

CHANNELS = ("email", "webhook")
#: Records per certificate: beyond this a controller's batch is split into several.
MAX_RECORDS = 1000


@dataclass(frozen=True, kw_only=True)
class IssuedCertificate:
    """One certificate issued by a call."""

    serial: str
    controller: str
    batch: str
    sequence: int
    records: int
    sha256: str
    notifications: int

    def as_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "controller": self.controller, "batch": self.batch,
                "sequence": self.sequence, "records": self.records, "sha256": self.sha256,
                "notifications": self.notifications}


def batch_label(mode: str, clock: Clock) -> str:
    """The batch a certificate issued now belongs to."""
    if mode == "daily":
        return f"daily-{clock.today().isoformat()}"
    if mode == "run":
        return "run-" + clock.now().strftime("%Y%m%dT%H%M%S.%fZ")
    raise ValueError(f"unknown batch mode {mode!r} (one of: {', '.join(BATCH_MODES)})")


def _audit_head(session: Session) -> tuple[int, str] | None:
    """The audit chain's head, where the chain exists (``retentiond.registry.chain``)."""
    try:
        from retentiond.registry.chain import head
    except ImportError:
        return None
    return head(session)


def approver_role(roles: str | None) -> str:
    """The role an approver acted in, as far as the service knows it: an account of the
    review service holding the approver role, or (no such account) the command line."""
    if roles is not None and "approver" in roles.split(","):
        return "approver"
    return "officer using the command line"


def _items(ctx: Context, session: Session, controller_id: int, limit: int,
           candidates: list[int]) -> tuple[
        list[ItemFacts], list[AgreementFacts], dict[str, str], list[dict[str, Any]]]:
    """The certificate's items: of ``candidates`` (the controller's disposals executed when
    the batch began), those still ``executed``, locked, at most ``limit``."""
    rows = session.execute(
        select(Disposal, Record, DisposalExecution, Agreement)
        .join(Record, Record.id == Disposal.record_id)
        .outerjoin(DisposalExecution, DisposalExecution.disposal_id == Disposal.id)
        .outerjoin(Agreement, Agreement.id == Record.agreement_id)
        .where(among(session, Disposal.id, candidates), Record.controller_id == controller_id,
               Disposal.state == "executed")
        .order_by(Disposal.id)
        .limit(limit)
        .with_for_update(of=Disposal)
    ).all()
    ids = [d.id for d, *_ in rows]
    approvers: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(ids), 5000):
        for did, who in session.execute(
            select(Approval.disposal_id, Approval.approver)
            .where(Approval.disposal_id.in_(ids[start:start + 5000]), Approval.voided_at.is_(None))
            .order_by(Approval.id)
        ):
            approvers[did].append(who)
    names = sorted({n for ns in approvers.values() for n in ns})
    roles: dict[str, str] = {}
    for start in range(0, len(names), 5000):
        roles.update(session.execute(select(WebUser.username, WebUser.roles)
                                     .where(WebUser.username.in_(names[start:start + 5000]))).all())
    rules = {r.id: (r.title, r.citation) for r in ctx.policy.rules}
    rules[TERMINATION_RULE_ID] = (TERMINATION_TITLE, TERMINATION_CITATION)
    agreements: dict[str, AgreementFacts] = {}
    categories: dict[str, str] = {}
    items = []
    remaining: list[tuple[str | None, Any]] = []
    for case, record, ex, agreement in rows:
        if agreement is not None:
            agreements[agreement.code] = AgreementFacts(
                code=agreement.code, title=agreement.title,
                terminated_on=agreement.terminated_on if agreement.status == "terminated" else None)
        categories[record.category] = ctx.policy.category_label(record.category)
        manual = ex is not None and (ex.connector_kind == "manual" or ex.destroyed_by is not None)
        evidence = None
        if manual and ex is not None:
            evidence = Evidence(destroyed_by=ex.destroyed_by, destroyed_on=ex.destroyed_on,
                                method=ex.destruction_method, certificate_no=ex.certificate_no,
                                confirmed_by=ex.confirmed_by, confirmed_at=ex.confirmed_at)
        system = (ex.system if ex is not None else None) or record.system
        title, citation = rules.get(case.rule_id, (None, None))
        returned = ex is not None and case.action == "return"
        approved = tuple(approvers.get(case.id, ()))
        items.append(ItemFacts(
            disposal_id=case.id, record=record.record_key, category=record.category,
            agreement=agreement.code if agreement is not None else None,
            rule_id=case.rule_id, rule_title=title, citation=citation,
            policy_version=case.policy_version, action=case.action,
            manual=manual, method=ex.method if ex is not None else None,
            verification=ex.verification if ex is not None else None,
            systems=(system,) if system else (),
            package_name=ex.package_name if returned and ex is not None else None,
            package_sha256=ex.package_sha256 if returned and ex is not None else None,
            evidence=evidence,
            executed_at=(ex.executed_at if ex is not None and ex.executed_at else case.updated_at),
            approved_by=approved,
            approver_roles=tuple(approver_role(roles.get(n)) for n in approved),
            outcome=ex.outcome if ex is not None else None,
            outcome_note=ex.outcome_note if ex is not None else None,
        ))
        remaining.append((system, ex.remaining if ex is not None else None))
    return items, list(agreements.values()), categories, remaining_statement(remaining)


#: Said of a disposal executed before what remains was recorded (before migration 0009).
NOT_RECORDED = {"what": "copies this service did not record for the disposal (backups, "
                "journals)", "expire_by": None, "basis": "not recorded at the time"}


def remaining_statement(per_item: Sequence[tuple[str | None, Any]]) -> list[dict[str, Any]]:
    """What outlives a certificate's disposals, per system and kind of copy, with the latest
    date by which it expires (no date if any of its disposals has none)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for system, copies in per_item:
        for copy in (copies if copies is not None else [NOT_RECORDED]):
            key = (system or "-", str(copy.get("what")))
            entry = merged.setdefault(key, {"system": key[0], "what": key[1],
                                            "expire_by": copy.get("expire_by"),
                                            "basis": copy.get("basis")})
            have, new = entry["expire_by"], copy.get("expire_by")
            entry["expire_by"] = None if have is None or new is None else max(have, new)
    return [merged[k] for k in sorted(merged)]


def _issue_one(ctx: Context, signer: Signer, controller_id: int, label: str,
               limit: int, candidates: list[int]) -> IssuedCertificate | None:
    now = ctx.clock.now()
    with ctx.sessions.begin() as session:
        controller = session.scalar(select(Controller).where(Controller.id == controller_id)
                                    .with_for_update())
        if controller is None:
            return None
        if session.scalar(select(Certificate.id).where(
                Certificate.controller_id == controller_id, Certificate.batch == label)):
            return None  # this batch's certificate is out already (daily mode)
        items, agreements, categories, remaining = _items(ctx, session, controller_id, limit,
                                                          candidates)
        if not items:
            return None
        prev = session.scalars(
            select(Certificate).where(Certificate.controller_id == controller_id)
            .order_by(Certificate.sequence.desc()).limit(1)).first()
        sequence = prev.sequence + 1 if prev is not None else 1
        serial = f"{controller.code}-{sequence:06d}"
        doc = build_document(
            serial=serial, sequence=sequence, batch=label, issued_at=now, issuer=signer.issuer,
            issuer_contact=signer.issuer_contact, controller_code=controller.code,
            controller_name=controller.name, agreements=agreements, items=items,
            categories=categories,
            previous=None if prev is None else ChainLink(serial=prev.serial, sequence=prev.sequence,
                                                         sha256=prev.sha256),
            audit_head=_audit_head(session), software=f"retentiond {__version__}",
            remaining_copies=remaining,
        )
        signed = sign_document(doc, jwk=signer.jwk, kid=signer.kid, chain_der=signer.jws_chain_der)
        sha = document_hash(doc)
        pdf = sign_pdf(render_pdf(doc, signed, kid=signer.kid, sha256=sha), signer, serial=serial)
        head = doc["audit_head"]
        cert = Certificate(
            serial=serial, controller_id=controller_id, batch=label, sequence=sequence,
            previous_sha256=prev.sha256 if prev is not None else None, sha256=sha,
            audit_head=f"{head['seq']}:{head['sha256']}" if head else None, key_id=signer.kid,
            records=len(items), issued_at=now, issued_by=ctx.actor, document=doc, jws=signed,
            pdf=pdf,
        )
        session.add(cert)
        session.flush()
        ids = [int(r["disposal_id"]) for r in doc["records"]]
        session.execute(insert(CertificateItem), [
            {"certificate_id": cert.id, "disposal_id": did, "position": n}
            for n, did in enumerate(ids, start=1)])
        for start in range(0, len(ids), 5000):
            session.execute(update(Disposal).where(among(session, Disposal.id,
                                                         ids[start:start + 5000]),
                                                   Disposal.state == "executed")
                            .values(state="certified", updated_at=now)
                            .execution_options(synchronize_session=False))
        record_event(session, kind="CertificateIssued", actor=ctx.actor, entity="certificate",
                     entity_id=serial, at=now, policy_version=ctx.policy.version,
                     reason=f"disposal certificate for {controller.code}",
                     data={"controller": controller.code, "batch": label, "sequence": sequence,
                           "records": len(items), "sha256": sha, "key_id": signer.kid,
                           "previous_sha256": cert.previous_sha256})
        session.add_all([AuditEvent(
            occurred_at=now, kind="DisposalCertified", actor=ctx.actor, entity="disposal",
            entity_id=str(i.disposal_id), reason=f"stated in certificate {serial}",
            policy_version=i.policy_version, data={"certificate": serial}) for i in items])
        settings = session.get(ControllerSettings, controller_id)
        channels = controller_channels(controller, settings)
        for channel, target in channels:
            session.add(Notification(
                kind="certificate", certificate_id=cert.id, controller_id=controller_id,
                channel=channel, target=target, state="pending", attempts=0,
                next_attempt_at=now, idempotency_key=f"certificate:{serial}:{channel}",
                payload={}, created_at=now, updated_at=now))
        if not channels:
            log.warning("certificate_without_channel", serial=serial, controller=controller.code)
        record_event(session, kind="NotificationsQueued", actor=ctx.actor, entity="certificate",
                     entity_id=serial, at=now,
                     data={"channels": [c for c, _ in channels]})
        log.info("certificate_issued", serial=serial, controller=controller.code,
                 records=len(items), batch=label)
        return IssuedCertificate(serial=serial, controller=controller.code, batch=label,
                                 sequence=sequence, records=len(items), sha256=sha,
                                 notifications=len(channels))


#: Disposals moved at once past which issuing refreshes the planner's statistics
#: (``registry.db.refresh_statistics``).
ANALYZE_AFTER = 5000


def issue_certificates(ctx: Context, signer: Signer, *, batch: str,
                       max_records: int = MAX_RECORDS) -> list[IssuedCertificate]:
    """Certify every executed disposal: one certificate per controller for this batch.

    ``batch`` is ``"run"`` or ``"daily"`` (see the module docstring). A controller with more
    than ``max_records`` executed disposals gets several certificates in the batch (batch
    ``LABEL``, ``LABEL#2``, ...), each in the chain, so that no PDF grows past what a person
    can read or a mail server accepts. Returns the certificates issued by this call (none
    when nothing is executed, or when the day's certificates are already out in daily mode).
    """
    label = batch_label(batch, ctx.clock)
    signer.check_valid(ctx.clock.now())
    # Every executed disposal, by controller, read once: each certificate then locks its own
    # from that list. (Asking the database, for each certificate, for its controller's
    # executed disposals went through every executed disposal of every controller when the
    # planner's statistics predated the day's execution: 0.1 s a certificate at 1M records.)
    # A disposal executed after this is certified by the next run.
    executed: dict[int, list[int]] = defaultdict(list)
    with ctx.sessions() as session:
        for disposal_id, controller_id in session.execute(
                select(Disposal.id, Record.controller_id)
                .join(Record, Record.id == Disposal.record_id)
                .where(Disposal.state == "executed").order_by(Disposal.id)):
            executed[controller_id].append(disposal_id)
    if sum(map(len, executed.values())) >= ANALYZE_AFTER:
        # Fresh statistics for the state just reached by so many: each certificate's query
        # then finds its disposals by id, not by reading every executed one.
        refresh_statistics(ctx.sessions, "disposals")
    issued = []
    for controller_id in sorted(executed):
        ids = executed[controller_id]
        for part, start in enumerate(range(0, len(ids), max_records), start=1):
            part_label = label if part == 1 else f"{label}#{part}"
            try:
                one = _issue_one(ctx, signer, controller_id, part_label, max_records,
                                 ids[start:start + max_records])
            except IntegrityError:
                # Another instance issued this controller's certificate at the same moment.
                log.info("certificate_issued_elsewhere", controller_id=controller_id,
                         batch=part_label)
                break
            if one is None:
                break
            issued.append(one)
    if sum(one.records for one in issued) >= ANALYZE_AFTER:
        # And for delivery, which finds each certificate's disposals still ``certified``.
        refresh_statistics(ctx.sessions, "disposals", "certificate_items")
    return issued
