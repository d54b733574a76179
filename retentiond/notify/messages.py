"""The words and bytes of each notice: what an email says and what a webhook receives.

No message holds personal data: records appear by their reference in the register, with
category, dates and action; never a name, date of birth, subject reference or locator.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from retentiond.notify.ack import ack_links, webhook_secret
from retentiond.notify.channels import Attachment, Outgoing
from retentiond.notify.settings import NotifySettings
from retentiond.registry.models import AdvanceNotice, Certificate, Controller, Notification
from retentiond.wording import long_date, wrap

LONDON = ZoneInfo("Europe/London")
#: Records listed in the text of an advance-notice email; the rest are in the attachment.
INLINE_RECORDS = 40


def _local(iso_or_dt: str | dt.datetime) -> str:
    t = (dt.datetime.fromisoformat(iso_or_dt.replace("Z", "+00:00"))
         if isinstance(iso_or_dt, str) else iso_or_dt)
    return t.astimezone(LONDON).strftime("%-d %B %Y at %H:%M") + " (UK time)"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


_ACTION_WORDS = {"manual": "destroyed by hand"}


def certificate_text(doc: dict[str, Any], *, links: tuple[str, str] | None,
                     verify_url: str | None,
                     links_until: dt.date | None = None,
                     settings: NotifySettings | None = None) -> tuple[str, str]:
    """(subject, plain text) of a certificate email. A return is said as a return (with its
    packages, where to collect them and how the password is agreed), not as a disposal."""
    from retentiond.notify.termination import return_how
    from retentiond.wording import certificates as w

    serial, n = doc["serial"], doc["totals"]["records"]
    controller = doc["controller"]["name"]
    agreements = "; ".join(f"{a['code']} ({a['title']})" for a in doc["agreements"])
    contact = doc["issuer"].get("contact") or doc["issuer"]["name"]
    kinds = w.outcomes(doc)
    done = "returned to you" if set(kinds) == {"returned"} else "dealt with"
    lines = [
        f"To the data protection officer of {controller},",
        "",
        f"{doc['issuer']['name']} has {done} {_plural(n, 'record')} that your organisation "
        "provided" + (f" under {agreements}" if agreements else "") + ", as the information "
        "sharing agreement requires. This message is the notice of that, with the "
        "certificate.",
        "",
        f"  Certificate:  {serial} (number {doc['sequence']} of the certificates for "
        f"{doc['controller']['code']})",
        f"  Issued:       {_local(doc['issued_at'])}",
        f"  Records:      {n} ({w.counts_in_words(kinds)})",
        "",
    ]
    terminated = [a for a in doc["agreements"] if a.get("terminated_on")]
    for a in terminated:
        lines += [f"Agreement {a['code']} was terminated on {long_date(a['terminated_on'])}; "
                  f"under clause {a.get('clause') or '13.1'} the information provided under it "
                  "comes back to you.", ""]
    packages = w.returned_packages(doc)
    if packages:
        lines += [f"Returned to you: {_plural(len(packages), 'package')}, one per record:"]
        lines += [f"  {r.get('package_name') or '(name not recorded)'}  (record {r['record']})\n"
                  f"      SHA-256 {r['package_sha256']}" for r in packages]
        lines += [""]
        if settings is not None:
            lines += [*return_how(settings, contact), ""]
        lines += ["Check each package you collect against its SHA-256 (for example with "
                  "'sha256sum FILE' or 'Get-FileHash FILE') before you open it.", ""]
    lines += [
        "Attached:",
        f"  {serial}.pdf   the certificate to read and keep. It is digitally signed;",
        "  " + " " * (len(serial) + 7) + "your PDF reader shows whether it is intact.",
        f"  {serial}.json  the same certificate, signed for machines (JWS).",
        "",
        "The certificate names each record by its reference in our register, with its kind, "
        "the retention rule applied, what was done and who approved it. It contains no "
        "personal data.",
        "",
    ]
    if links:
        lines += [
            "Please acknowledge receipt:",
            f"  {links[0]}",
            "If anything in the certificate is wrong, tell us here:",
            f"  {links[1]}",
        ]
        if links_until is not None:
            lines += [f"These links work until {long_date(links_until)}; after that, reply to "
                      "this message."]
        lines += [""]
    else:
        lines += ["Please acknowledge receipt by replying to this message.", ""]
    if verify_url:
        lines += [f"To check the signatures yourself, our CA certificate and public key are "
                  f"published at {verify_url}", ""]
    if doc.get("previous"):
        lines += [f"This certificate follows {doc['previous']['serial']}. If you have not received "
                  "that one, please tell us.", ""]
    issuer_contact = doc["issuer"].get("contact")
    lines += [f"{doc['issuer']['name']}" + (f" - {issuer_contact}" if issuer_contact else ""),
              "(sent automatically by retentiond)"]
    subject = f"{w.title(doc)} {serial}: {_plural(n, 'record')} of {controller} ({w.counts_in_words(kinds)})"
    return subject, wrap(lines)


def advance_text(doc: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain text) of an advance-notice email."""
    records = doc["records"]
    n = len(records)
    lines = [
        f"To the data protection officer of {doc['controller']['name']},",
        "",
        f"You asked for {doc['window_days']} days' notice of the disposal of records your "
        f"organisation provided. {_plural(n, 'record')} "
        f"{'falls' if n == 1 else 'fall'} due for disposal by {long_date(doc['until'])}:",
        "",
        f"  {'record':<24} {'category':<34} action",
    ]
    for r in records[:INLINE_RECORDS]:
        lines.append(f"  {r['record']:<24} {r['category']:<34} {r['action']}")
    if n > INLINE_RECORDS:
        lines.append(f"  ... and {n - INLINE_RECORDS} more: every record is in the attached file.")
    lines += [
        "",
        f"None of them will be disposed of until {doc['window_days']} days after this notice "
        "has been delivered to you, and each is reviewed by our information governance "
        "officers first; you will receive a signed certificate afterwards. If any of these "
        "must be kept longer (a legal hold, a subject access request, an inquiry), tell us "
        "before the due date.",
        "",
        "You are told about each record once; later notices list only records not listed before.",
        "",
        f"{doc['issuer']}",
        "(sent automatically by retentiond)",
    ]
    subject = f"Advance notice: {_plural(n, 'record')} of {doc['controller']['name']} due for disposal"
    return subject, wrap(lines)


def build_outgoing(session: Session, n: Notification, settings: NotifySettings, *,
                   now: dt.datetime) -> Outgoing:
    """The message for one outbox row."""
    stamp = int(now.timestamp())
    code = None
    if n.controller_id is not None:
        controller = session.get(Controller, n.controller_id)
        code = controller.code if controller else None
    hmac_key = webhook_secret(settings.secret, code).encode() if settings.secret and code else None
    common = {"notification_id": n.id, "channel": n.channel, "target": n.target,
              "idempotency_key": n.idempotency_key, "hmac_key": hmac_key, "timestamp": stamp}
    if n.kind == "certificate":
        cert = session.get(Certificate, n.certificate_id)
        assert cert is not None
        expires_on = now.astimezone(LONDON).date() + dt.timedelta(days=settings.ack_link_days)
        links = ack_links(settings.ack_url, settings.secret, cert.serial, expires_on=expires_on)
        subject, text = certificate_text(cert.document, links=links, verify_url=settings.verify_url,
                                         links_until=expires_on, settings=settings)
        body = {"type": "disposal_certificate", "serial": cert.serial,
                "controller": cert.document["controller"]["code"],
                "issued_at": cert.document["issued_at"], "records": cert.records,
                "sha256": cert.sha256, "certificate": json.loads(cert.jws),
                "acknowledge_url": links[0] if links else None,
                "dispute_url": links[1] if links else None}
        return Outgoing(subject=subject, text=text, body=json.dumps(body).encode(),
                        attachments=(Attachment(filename=f"{cert.serial}.pdf",
                                                mime="application/pdf", data=cert.pdf),
                                     Attachment(filename=f"{cert.serial}.json",
                                                mime="application/json",
                                                data=cert.jws.encode())),
                        **common)  # type: ignore[arg-type]
    if n.kind == "advance_notice":
        notice = session.get(AdvanceNotice, n.advance_notice_id)
        assert notice is not None
        subject, text = advance_text(notice.document)
        data = json.dumps(notice.document, indent=2).encode()
        return Outgoing(subject=subject, text=text, body=data,
                        attachments=(Attachment(filename=f"advance-notice-{notice.id}.json",
                                                mime="application/json", data=data),),
                        **common)  # type: ignore[arg-type]
    if n.kind == "termination_notice":
        from retentiond.notify.termination import termination_text

        subject, text = termination_text(n.payload or {}, settings)
        return Outgoing(subject=subject, text=text, body=json.dumps(n.payload).encode(),
                        **common)  # type: ignore[arg-type]
    if n.kind == "ig_alert":
        p = n.payload or {}
        text = (
            "A notice could not be delivered and retentiond has given up on it.\n\n"
            f"  Notice:      {p.get('notification_id')} ({p.get('kind')} via {p.get('channel')})\n"
            f"  Controller:  {p.get('controller')}\n"
            f"  About:       {p.get('about')}\n"
            f"  Tries:       {p.get('attempts')}\n"
            f"  Last error:  {p.get('error')}\n\n"
            "The controller has not been told. Put right what the error says (an address, a "
            "webhook, the mail server), then send it again with:\n\n"
            f"  retentiond notifications resend {p.get('notification_id')}\n"
        )
        return Outgoing(subject=f"retentiond: notice to {p.get('controller')} not delivered "
                        f"({p.get('about')})", text=text,
                        body=json.dumps(p).encode(), **common)  # type: ignore[arg-type]
    if n.kind == "ig_digest":
        from retentiond.notify.digest import digest_text

        subject, text = digest_text(n.payload or {})
        return Outgoing(subject=subject, text=text, body=json.dumps(n.payload).encode(),
                        **common)  # type: ignore[arg-type]
    raise ValueError(f"unknown notification kind {n.kind!r}")
