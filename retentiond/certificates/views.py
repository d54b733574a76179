"""Reading certificates back: lists, one certificate with its notices and acknowledgements,
and the files a controller receives."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.registry.models import Acknowledgement, Certificate, Controller, Notification


@dataclass(frozen=True, kw_only=True)
class CertificateView:
    serial: str
    controller: str
    sequence: int
    batch: str
    records: int
    issued_at: dt.datetime
    issued_by: str
    sha256: str
    previous_sha256: str | None
    audit_head: str | None
    key_id: str
    #: ``notified`` when any notice reached the controller, ``pending``, or ``failed`` (all dead).
    delivery: str
    #: ``acknowledged``, ``disputed`` or None.
    acknowledgement: str | None

    def as_json(self) -> dict[str, Any]:
        return {"serial": self.serial, "controller": self.controller, "sequence": self.sequence,
                "batch": self.batch, "records": self.records,
                "issued_at": self.issued_at.isoformat(), "issued_by": self.issued_by,
                "sha256": self.sha256, "previous_sha256": self.previous_sha256,
                "audit_head": self.audit_head, "key_id": self.key_id, "delivery": self.delivery,
                "acknowledgement": self.acknowledgement}


def _delivery(states: list[str]) -> str:
    if "delivered" in states:
        return "notified"
    if states and all(s == "dead" for s in states):
        return "failed"
    return "pending" if states else "no channel"


def _views(ctx: Context, query: Any) -> list[CertificateView]:
    with ctx.sessions() as session:
        rows = session.execute(query.add_columns(Controller.code)
                               .join(Controller, Controller.id == Certificate.controller_id)).all()
        ids = [c.id for c, _ in rows]
        states: dict[int, list[str]] = {}
        acks: dict[int, str] = {}
        for i in range(0, len(ids), 5000):
            chunk = ids[i:i + 5000]
            for cid, state in session.execute(
                    select(Notification.certificate_id, Notification.state)
                    .where(Notification.certificate_id.in_(chunk))):
                if cid is not None:
                    states.setdefault(cid, []).append(state)
            for cid, kind in session.execute(
                    select(Acknowledgement.certificate_id, Acknowledgement.kind)
                    .where(Acknowledgement.certificate_id.in_(chunk)).order_by(Acknowledgement.id)):
                # A dispute stands over an acknowledgement, whatever the order.
                if acks.get(cid) != "disputed":
                    acks[cid] = kind
    return [CertificateView(
        serial=c.serial, controller=code, sequence=c.sequence, batch=c.batch, records=c.records,
        issued_at=c.issued_at, issued_by=c.issued_by, sha256=c.sha256,
        previous_sha256=c.previous_sha256, audit_head=c.audit_head, key_id=c.key_id,
        delivery=_delivery(states.get(c.id, [])), acknowledgement=acks.get(c.id),
    ) for c, code in rows]


def list_certificates(ctx: Context, *, controller: str | None = None,
                      limit: int | None = None) -> list[CertificateView]:
    """Certificates, newest first."""
    query = select(Certificate).order_by(Certificate.id.desc())
    if controller is not None:
        query = query.where(Controller.code == controller)
    if limit is not None:
        query = query.limit(limit)
    return _views(ctx, query)


@dataclass(frozen=True, kw_only=True)
class CertificateDetail:
    view: CertificateView
    document: dict[str, Any]
    notifications: list[dict[str, Any]]
    acknowledgements: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {**self.view.as_json(), "document": self.document,
                "notifications": self.notifications, "acknowledgements": self.acknowledgements}


def show_certificate(ctx: Context, serial: str) -> CertificateDetail:
    """One certificate with its notices and acknowledgements."""
    from retentiond.notify.ack import acknowledgements
    from retentiond.notify.outbox import list_notifications

    found = _views(ctx, select(Certificate).where(Certificate.serial == serial))
    if not found:
        raise LifecycleError(f"no certificate {serial}")
    view = found[0]
    with ctx.sessions() as session:
        cert = session.scalars(select(Certificate).where(Certificate.serial == serial)).one()
        acks = [a.as_json() for a in acknowledgements(session, cert.id)]
        document = cert.document
        cert_id = cert.id
    notes = [n.as_json() for n in list_notifications(ctx, certificate_id=cert_id)]
    return CertificateDetail(view=view, document=document, notifications=notes,
                             acknowledgements=acks)


def certificate_files(ctx: Context, serial: str) -> tuple[bytes, str]:
    """(PDF bytes, signed JSON text) of a certificate."""
    with ctx.sessions() as session:
        row = session.execute(select(Certificate.pdf, Certificate.jws)
                              .where(Certificate.serial == serial)).first()
    if row is None:
        raise LifecycleError(f"no certificate {serial}")
    return bytes(row[0]), str(row[1])
