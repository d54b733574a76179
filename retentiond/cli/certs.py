"""Commands for keys, certificates, notifications, advance notice and the register of
disposals. ``add_commands`` hangs them on the main parser; handlers import their services
lazily so that ``retentiond --help`` stays fast."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from retentiond.config import Config, ConfigError
from retentiond.lifecycle.context import LifecycleError


def _ctx(cfg: Config) -> Any:
    from retentiond.cli.context import make_context

    return make_context(cfg)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date in the form YYYY-MM-DD") from None


def _read_password(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LifecycleError(f"{path}: cannot read the password file: {exc.strerror}") from exc
    if not text:
        raise LifecycleError(f"{path}: the password file is empty")
    return text


# --- keys -------------------------------------------------------------------------------------

def cmd_keys_init(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates.keys import init_keys
    from retentiond.certificates.settings import certificate_settings

    settings = certificate_settings(cfg)
    directory = Path(args.dir) if args.dir else settings.key_dir
    issuer = args.issuer or settings.issuer
    if not issuer:
        raise ConfigError("name the issuer: --issuer NAME, or [certificates].issuer in the config")
    password = _read_password(args.ca_key_password_file).encode() \
        if args.ca_key_password_file else None
    result = init_keys(directory, issuer=issuer, now=dt.datetime.now(dt.UTC), force=args.force,
                       ca_cert=Path(args.ca_cert) if args.ca_cert else None,
                       ca_key=Path(args.ca_key) if args.ca_key else None,
                       ca_key_password=password, days=args.days)
    print(f"keys written to {result.directory} (key id {result.kid}):")
    for path in result.files:
        print(f"  {path.name}{'  (private, mode 0600)' if 'key' in path.name else ''}")
    if not result.own_ca:
        print("a self-signed CA was made (ca-key.pem): keep it offline once you no longer need "
              "to issue signing certificates with it")
    print("next: 'retentiond keys publish --out DIR' and publish jwks.json and ca.pem")
    return 0


def cmd_keys_publish(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates.keys import publish
    from retentiond.certificates.settings import certificate_settings

    settings = certificate_settings(cfg)
    if args.dir:
        settings = type(settings)(**{**settings.__dict__, "key_dir": Path(args.dir)})
    paths = publish(settings, Path(args.out), also=[Path(p) for p in args.also])
    for path in paths:
        print(path)
    return 0


# --- certificates ---------------------------------------------------------------------------

def cmd_certificates_issue(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates import issue_certificates, signer_from_config
    from retentiond.certificates.settings import certificate_settings
    from retentiond.cli.output import print_json

    batch = args.batch or certificate_settings(cfg).batch
    issued = issue_certificates(_ctx(cfg), signer_from_config(cfg), batch=batch)
    if args.format == "json":
        print_json([c.as_json() for c in issued])
    elif not issued:
        print("nothing to certify")
    else:
        for c in issued:
            print(f"{c.serial}: {c.records} records of {c.controller}; "
                  f"{c.notifications} notices queued")
    return 0


def cmd_certificates_list(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates.views import list_certificates
    from retentiond.cli.output import print_json, print_table

    rows = list_certificates(_ctx(cfg), controller=args.controller, limit=args.limit)
    if args.format == "json":
        print_json([r.as_json() for r in rows])
    else:
        print_table(("serial", "controller", "issued_at", "records", "delivery", "acknowledgement"),
                    [(r.serial, r.controller, r.issued_at.isoformat(timespec="seconds"), r.records,
                      r.delivery, r.acknowledgement or "-") for r in rows])
    return 0


def cmd_certificates_show(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates.views import show_certificate
    from retentiond.cli.output import print_json, print_table

    detail = show_certificate(_ctx(cfg), args.serial)
    if args.format == "json":
        print_json(detail.as_json())
        return 0
    v, doc = detail.view, detail.document
    print(f"Certificate {v.serial} (number {v.sequence} for {v.controller})")
    print(f"  issued      {v.issued_at.isoformat(timespec='seconds')} by {v.issued_by}; batch {v.batch}")
    print(f"  records     {v.records}: " + ", ".join(
        f"{n} {a}" for a, n in doc["totals"]["by_action"].items()))
    span = doc.get("carried_out")
    if span:
        print(f"  carried out {span['from']} to {span['to']}")
    print(f"  sha256      {v.sha256}")
    print(f"  previous    {v.previous_sha256 or 'none (first of the chain)'}")
    print(f"  audit head  {v.audit_head or 'not recorded'}")
    print(f"  key id      {v.key_id}")
    print(f"  delivery    {v.delivery}")
    print("\nRecords:")
    # Version 1 certificates name each record's time; later ones only the period (no date
    # that follows from a child's facts).
    print_table(("record", "category", "action", "rule", "approved_by"),
                [(r["record"], r["category"], r.get("outcome") or r["action"], r["rule"]["id"],
                  ", ".join(r["approved_by"])) for r in doc["records"]])
    print("\nNotices:")
    print_table(("id", "channel", "target", "state", "attempts", "last_error"),
                [(n["id"], n["channel"], n["target"], n["state"], n["attempts"],
                  n["last_error"] or "") for n in detail.notifications])
    print("\nAcknowledgements:")
    if detail.acknowledgements:
        print_table(("at", "kind", "by", "via", "comment"),
                    [(a["at"], a["kind"], a["by"], a["via"], a["comment"] or "")
                     for a in detail.acknowledgements])
    else:
        print("none yet")
    return 0


def cmd_certificates_export(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates.views import certificate_files

    pdf, signed = certificate_files(_ctx(cfg), args.serial)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.serial}.pdf").write_bytes(pdf)
    (out / f"{args.serial}.json").write_text(signed, encoding="utf-8")
    print(out / f"{args.serial}.pdf")
    print(out / f"{args.serial}.json")
    return 0


def cmd_certificates_verify(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates.jws import VerificationFailure
    from retentiond.certificates.verify import load_jwks, verify_bytes
    from retentiond.cli.output import print_json

    def read(path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise LifecycleError(f"{path}: {exc.strerror}") from exc

    if not args.jwks and not args.ca:
        raise LifecycleError("give the issuer's public key set (--jwks jwks.json) or CA "
                             "certificate (--ca ca.pem) to check the signature with")
    try:
        jwks = load_jwks(read(args.jwks), args.jwks) if args.jwks else None
    except VerificationFailure as exc:
        raise LifecycleError(exc.message) from exc
    report = verify_bytes(read(args.file), jwks=jwks,
                          ca_pem=read(args.ca) if args.ca else None,
                          previous=read(args.previous) if args.previous else None)
    if args.format == "json":
        print_json({"file": args.file, **report.as_json()})
    else:
        for check in report.checks:
            print(f"ok: {check}")
        if report.ok:
            print(f"{args.file}: VALID: certificate {report.serial} for {report.controller}, "
                  f"{report.records} records; SHA-256 {report.sha256}")
    if not report.ok:
        label = {"altered": "ALTERED", "wrong_key": "WRONG KEY", "broken_chain": "BROKEN CHAIN",
                 "inconsistent": "INCONSISTENT", "malformed": "NOT A CERTIFICATE"}
        print(f"{args.file}: {label.get(report.kind or '', 'INVALID')}: {report.message}",
              file=sys.stderr)
        return 1
    return 0


def cmd_certificates_ack(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.notify.ack import acknowledge, read_token
    from retentiond.notify.settings import notify_settings

    serial = args.serial
    if args.token:
        secret = notify_settings(cfg).secret
        if secret is None:
            raise ConfigError("[notify].secret_file is needed to read acknowledgement tokens")
        serial = read_token(secret, args.token)
    if not serial:
        raise LifecycleError("name the certificate (SERIAL) or give --token")
    dispute = args.verb == "dispute"
    view = acknowledge(_ctx(cfg), serial, by=args.by, kind="disputed" if dispute else "acknowledged",
                       comment=args.reason if dispute else args.comment, via="cli")
    if args.format == "json":
        print_json(view.as_json())
    else:
        print(f"{view.serial}: {view.kind} by {view.by} at {view.at.isoformat(timespec='seconds')}")
    return 0


# --- notifications ----------------------------------------------------------------------------

def cmd_notifications_list(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json, print_table
    from retentiond.notify.outbox import list_notifications

    rows = list_notifications(_ctx(cfg), state=args.state, limit=args.limit)
    if args.format == "json":
        print_json([r.as_json() for r in rows])
    else:
        print_table(("id", "kind", "about", "controller", "channel", "state", "attempts",
                     "next_attempt_at", "last_error"),
                    [(r.id, r.kind, r.about, r.controller or "-", r.channel, r.state, r.attempts,
                      r.next_attempt_at.isoformat(timespec="seconds") if r.next_attempt_at else "",
                      (r.last_error or "")[:60]) for r in rows])
    return 0


def cmd_notifications_resend(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.notify.outbox import resend

    view = resend(_ctx(cfg), args.id)
    print(f"notification {view.id} ({view.about}, {view.channel} to {view.target}) queued to send "
          "on the next delivery pass")
    return 0


def cmd_notifications_deliver(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.cli.output import print_json
    from retentiond.notify import channels_from_config, deliver_notifications

    result = deliver_notifications(_ctx(cfg), channels_from_config(cfg), limit=args.limit)
    if args.format == "json":
        print_json(result.as_json())
    else:
        print(f"{result.delivered} delivered, {result.retried} to retry, {result.dead} given up, "
              f"{result.skipped} waiting for a channel to be configured")
    return 1 if result.dead else 0


def cmd_notifications_advance(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates.settings import certificate_settings
    from retentiond.cli.output import print_json
    from retentiond.notify.advance import send_advance_notices

    issuer = certificate_settings(cfg).require_issuer()
    notices = send_advance_notices(_ctx(cfg), issuer=issuer, as_of=args.as_of)
    if args.format == "json":
        print_json([n.as_json() for n in notices])
    elif not notices:
        print("no new records to announce")
    else:
        for n in notices:
            print(f"advance notice {n.id} to {n.controller}: {n.records} records due within "
                  f"{n.window_days} days; {n.notifications} notices queued")
    return 0


def cmd_notifications_webhook_secret(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.notify.ack import webhook_secret
    from retentiond.notify.settings import notify_settings

    secret = notify_settings(cfg).secret
    if secret is None:
        raise ConfigError(f"{cfg.source or 'config'}: [notify].secret_file is not set")
    print(webhook_secret(secret, args.code))
    return 0


# --- controllers ------------------------------------------------------------------------------

def cmd_controllers_notice(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.notify.advance import set_notice

    if (args.days is None) == (not args.off):
        raise LifecycleError("give --days N or --off")
    result = set_notice(_ctx(cfg), args.code, days=None if args.off else args.days)
    days = result["advance_notice_days"]
    print(f"{args.code}: " + (f"{days} days' advance notice of disposals" if days
                              else "no advance notice"))
    return 0


def cmd_controllers_channels(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.lifecycle.context import Context
    from retentiond.notify.advance import set_notice
    from retentiond.registry.models import Controller, ControllerSettings

    ctx: Context = _ctx(cfg)
    with ctx.sessions() as session:
        from sqlalchemy import select

        cid = session.scalar(select(Controller.id).where(Controller.code == args.code))
        current = session.get(ControllerSettings, cid) if cid is not None else None
        days = current.advance_notice_days if current else None
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    result = set_notice(ctx, args.code, days=days, channels=channels)
    print(f"{args.code}: notified by {result['channels']}")
    return 0


# --- register ---------------------------------------------------------------------------------

def cmd_register_export(args: argparse.Namespace, cfg: Config) -> int:
    from retentiond.certificates import register

    ctx = _ctx(cfg)
    items = register.rows(ctx, start=args.start, end=args.end)
    if args.format == "csv":
        if args.out:
            with open(args.out, "w", newline="", encoding="utf-8") as fh:
                n = register.write_csv(items, fh)
            print(f"{args.out}: {n} disposals", file=sys.stderr)
        else:
            register.write_csv(items, sys.stdout)
        return 0
    if not args.out:
        raise LifecycleError("an XLSX register is written to a file: give --out FILE")
    if not args.password_file:
        raise LifecycleError("an XLSX register is encrypted: give --password-file FILE")
    data, n = register.xlsx_bytes(items, password=_read_password(args.password_file),
                                  title=f"Register of disposals {args.start} to {args.end}")
    Path(args.out).write_bytes(data)
    print(f"{args.out}: {n} disposals (encrypted)", file=sys.stderr)
    return 0


# --- parser -----------------------------------------------------------------------------------

def add_commands(*, top: Any, group: Callable[[str, str], Any], leaf: Callable[..., Any],
                 controllers: Any) -> None:
    """Add keys, certificates, notifications, register and ``controllers notice|channels``."""
    keys = group("keys", "the keys that sign disposal certificates")
    p = leaf(keys, "init", "create the signing keys and their certificates", cmd_keys_init)
    p.add_argument("--dir", default=None, help="default: [certificates].key_dir")
    p.add_argument("--issuer", default=None, help="default: [certificates].issuer")
    p.add_argument("--ca-cert", default=None, metavar="FILE", help="your own CA certificate (PEM)")
    p.add_argument("--ca-key", default=None, metavar="FILE", help="your own CA's private key (PEM)")
    p.add_argument("--ca-key-password-file", default=None, metavar="FILE")
    p.add_argument("--days", type=int, default=5 * 366, help="validity of the signing "
                   "certificates (default: 5 years)")
    p.add_argument("--force", action="store_true", help="replace existing keys")
    p = leaf(keys, "publish", "write the public key set and CA certificate for controllers",
             cmd_keys_publish)
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--dir", default=None, help="key directory (default: [certificates].key_dir)")
    p.add_argument("--also", action="append", default=[], metavar="JWKS",
                   help="an earlier jwks.json whose keys stay published (after a key change)")

    cer = group("certificates", "disposal certificates")
    p = leaf(cer, "issue", "certify executed disposals: one certificate per controller",
             cmd_certificates_issue, ("text", "json"))
    p.add_argument("--batch", choices=("run", "daily"), default=None,
                   help="default: [certificates].batch")
    p = leaf(cer, "list", "list certificates", cmd_certificates_list, ("table", "json"))
    p.add_argument("--controller", default=None, metavar="CODE")
    p.add_argument("--limit", type=int, default=None)
    p = leaf(cer, "show", "show a certificate, its notices and acknowledgements",
             cmd_certificates_show, ("text", "json"))
    p.add_argument("serial", metavar="SERIAL")
    p = leaf(cer, "export", "write a certificate's PDF and signed JSON", cmd_certificates_export)
    p.add_argument("serial", metavar="SERIAL")
    p.add_argument("--out", default=".", metavar="DIR")
    p = leaf(cer, "verify", "check a certificate (JSON or PDF) with the public key set or CA",
             cmd_certificates_verify, ("text", "json"))
    p.add_argument("file", metavar="FILE")
    who = p.add_mutually_exclusive_group()
    who.add_argument("--jwks", default=None, metavar="FILE", help="the issuer's jwks.json")
    who.add_argument("--ca", default=None, metavar="FILE", help="the issuer's ca.pem")
    p.add_argument("--previous", default=None, metavar="FILE",
                   help="the certificate before this one: check the chain link")
    for verb, help in (("acknowledge", "record a controller's acknowledgement"),
                       ("dispute", "record a controller's dispute")):
        p = leaf(cer, verb, help, cmd_certificates_ack, ("text", "json"))
        p.set_defaults(verb=verb)
        p.add_argument("serial", nargs="?", default=None, metavar="SERIAL")
        p.add_argument("--token", default=None, help="the token from the acknowledgement link")
        p.add_argument("--by", required=True, metavar="NAME", help="who, at the controller")
        if verb == "dispute":
            p.add_argument("--reason", required=True)
        else:
            p.add_argument("--comment", default=None)

    notes = group("notifications", "the notification outbox")
    p = leaf(notes, "list", "list notices", cmd_notifications_list, ("table", "json"))
    p.add_argument("--state", choices=("pending", "delivered", "dead"), default=None)
    p.add_argument("--limit", type=int, default=50)
    p = leaf(notes, "resend", "send a notice again", cmd_notifications_resend)
    p.add_argument("id", type=int, metavar="ID")
    p = leaf(notes, "deliver", "deliver what is due now (one pass)", cmd_notifications_deliver,
             ("text", "json"))
    p.add_argument("--limit", type=int, default=None)
    p = leaf(notes, "advance", "queue advance notices of disposals to controllers that asked",
             cmd_notifications_advance, ("text", "json"))
    p.add_argument("--as-of", type=_date, default=None, metavar="DATE")
    p = leaf(notes, "webhook-secret", "print a controller's webhook signing secret",
             cmd_notifications_webhook_secret)
    p.add_argument("code", metavar="CODE")

    p = leaf(controllers, "notice", "set a controller's advance notice of disposals",
             cmd_controllers_notice)
    p.add_argument("code", metavar="CODE")
    p.add_argument("--days", type=int, default=None)
    p.add_argument("--off", action="store_true", help="no advance notice")
    p = leaf(controllers, "channels", "how a controller is notified", cmd_controllers_channels)
    p.add_argument("code", metavar="CODE")
    p.add_argument("channels", metavar="LIST", help="email, webhook or email,webhook")

    reg = group("register", "the register of disposals")
    p = leaf(reg, "export", "export the register of disposals", cmd_register_export)
    p.add_argument("--from", dest="start", type=_date, required=True, metavar="DATE")
    p.add_argument("--to", dest="end", type=_date, required=True, metavar="DATE")
    p.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    p.add_argument("--out", default=None, metavar="FILE")
    p.add_argument("--password-file", default=None, metavar="FILE",
                   help="the XLSX password, in a file (not on the command line)")
