"""The whole demo in one folder (``./dev run``, ``retentiond demo run``): a registry of
synthetic records, the holding systems their data lives in with connectors for them, signing
keys, a mail sink, demo accounts, and a daemon whose jobs run every few seconds.

Approving a case in the review UI then leads, within seconds, to the data gone from the
holding system, the case executed, a signed certificate issued, the notice in the mail sink,
and the school acknowledging it from the link in that notice.

Layout of the folder (``var/`` for ``./dev run``)::

    dev.toml                  the config, written on every start (the ports may change)
    retentiond.db             the registry
    keys/                     signing keys (a self-signed demo CA)
    credentials/              the notification secret and the log pseudonym key
    demo-password             the demo accounts' password
    demo/holding/             mis.db, case-files/, returns/, return-passwords/
    demo/mail/                every message sent, as .eml files
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import select

from retentiond.clock import Clock
from retentiond.config import load_config, packaged_packs
from retentiond.demo.estate import CONTROLLERS, load_demo
from retentiond.demo.holding import Holding, build_holding, connectors_toml, holding_counts
from retentiond.demo.mailsink import DemoPages, RecordLookup
from retentiond.lifecycle.context import Context
from retentiond.registry.db import make_engine, session_factory, upgrade
from retentiond.registry.models import Disposal, Record

ISSUER = "Demo City Council"
#: The demo accounts: name -> (role, controller). Two approvers, because child protection and
#: looked-after children's records need two different people to approve.
ACCOUNTS = {
    "officer": ("ig_officer", None),
    "approver1": ("approver", None),
    "approver2": ("approver", None),
    "auditor": ("auditor", None),
    "school": ("controller", "DEMO-SCH-01"),
    "admin": ("admin", None),
}
#: How often the daemon's work jobs run in the demo (every few seconds, not every minute).
DEMO_INTERVAL_S = 5


@dataclass(frozen=True, kw_only=True)
class Ports:
    web: int = 8080
    mail_page: int = 8081
    smtp: int = 8025


@dataclass(frozen=True, kw_only=True)
class DemoSite:
    """A prepared demo: where it is and how to reach it."""

    var: Path
    config: Path
    password: str
    ports: Ports
    notes: tuple[str, ...]

    @property
    def holding(self) -> Holding:
        return Holding(root=self.var / "demo" / "holding")

    @property
    def mail_dir(self) -> Path:
        return self.var / "demo" / "mail"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.web}"

    @property
    def mail_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.mail_page}"


def _secret_file(path: Path) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")


def _config_text(var: Path, ports: Ports, holding: Holding) -> str:
    q = json.dumps  # TOML basic strings take JSON's escapes
    pack = packaged_packs() / "isa-default.toml"
    web = f"http://127.0.0.1:{ports.web}"
    jobs = "".join(f"\n[daemon.jobs.{job}]\ninterval_s = {DEMO_INTERVAL_S}\n"
                   for job in ("execute", "certify", "deliver"))
    return f"""# Written by 'retentiond demo run' (./dev run) on every start: edits here are lost.
# A real configuration is made by 'retentiond init' (docs/install.md).
[database]
url = {q(f"sqlite:///{var / 'retentiond.db'}")}

[policies]
paths = [{q(str(pack))}]

[logging]
format = "console"
pseudonym_key_file = {q(str(var / "credentials" / "pseudonym.key"))}

[daemon]
# The work jobs run every {DEMO_INTERVAL_S} seconds, so that an approval is carried out,
# certified and notified while you watch.
{jobs}
[metrics]
listen = ""

[web]
enabled = true
listen = "127.0.0.1:{ports.web}"
cookie_secure = false   # plain http on loopback, for the demo only

[certificates]
issuer = {q(ISSUER)}
issuer_contact = "ig@council.example"
key_dir = {q(str(var / "keys"))}
batch = "run"

[notify]
from = "retentiond@council.example"
ig_email = "ig@council.example"
secret_file = {q(str(var / "credentials" / "notify-secret"))}
ack_url = {q(web + "/acknowledge")}
verify_url = {q(web + "/keys/ca.pem")}   # the CA certificate checks the PDF and the JSON
backoff_s = 5
backoff_max_s = 60

[notify.smtp]
# The demo's mail sink (retentiond/demo/mailsink.py): every message lands in
# {var / "demo" / "mail"} and on {f"http://127.0.0.1:{ports.mail_page}"}.
host = "127.0.0.1"
port = {ports.smtp}
security = "none"
{connectors_toml(holding)}"""


def _set_aside_an_old_demo(var: Path, clock: Clock) -> str | None:
    """A registry made before the demo had holding systems names data nowhere: move it aside
    (never delete it) and start afresh."""
    if (var / "retentiond.db").exists() and not (var / "demo" / "holding" / ".built").exists():
        old = var.with_name(f"{var.name}.old-{clock.now().strftime('%Y%m%d%H%M%S')}")
        var.rename(old)
        return (f"the demo in {var} was made by an older version (its records' data lived "
                f"nowhere); it is now in {old}, and a new one is set up")
    return None


def prepare(var: Path, *, clock: Clock, ports: Ports = Ports(), records: int = 2000) -> DemoSite:
    """Set up (or bring up to date) the demo in ``var``; idempotent, and a second run never
    brings back data a disposal deleted."""
    from retentiond.certificates.keys import init_keys
    from retentiond.lifecycle.evaluate import evaluate
    from retentiond.policy import load_policy_in_force
    from retentiond.web.accounts import add_user, list_users

    var = var.absolute()
    notes = [n for n in [_set_aside_an_old_demo(var, clock)] if n]
    var.mkdir(parents=True, exist_ok=True)
    holding = Holding(root=var / "demo" / "holding")
    _secret_file(var / "credentials" / "notify-secret")
    _secret_file(var / "credentials" / "pseudonym.key")
    config = var / "dev.toml"
    config.write_text(_config_text(var, ports, holding), encoding="utf-8")
    cfg = load_config(str(config))

    engine = make_engine(cfg.database_url)
    upgrade(engine)
    if not (var / "keys" / "ca-cert.pem").exists():
        init_keys(var / "keys", issuer=ISSUER, now=clock.now() - dt.timedelta(days=1),
                  force=True)
    ctx = Context(sessions=session_factory(engine), policy=load_policy_in_force(cfg.policy_paths),
                  clock=clock, actor="demo.setup")
    if not (holding.root / ".built").exists():
        notes.append(load_demo(ctx, records=records))
        with ctx.sessions() as session:
            held = session.execute(select(Record.system, Record.locator)).all()
        made = build_holding(holding, [(s or "", loc or "") for s, loc in held],
                             [code for code, _, _ in CONTROLLERS])
        (holding.root / ".built").write_text("made by retentiond demo\n", encoding="utf-8")
        notes.append("holding systems: " + ", ".join(f"{n} {k}" for k, n in made.items()))
    (var / "demo" / "mail").mkdir(parents=True, exist_ok=True)

    password_file = var / "demo-password"
    if not password_file.exists():
        fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(12) + "\n")
    password = password_file.read_text(encoding="utf-8").strip()
    existing = {u.username for u in list_users(ctx)}
    for name, (role, controller) in ACCOUNTS.items():
        if name not in existing:
            add_user(ctx, username=name, roles=role, password=password, controller=controller)
    evaluate(replace(ctx, actor="demo.setup"), clock.today())
    engine.dispose()
    return DemoSite(var=var, config=config, password=password, ports=ports, notes=tuple(notes))


def record_lookup(site: DemoSite) -> Callable[[str], RecordLookup | None]:
    """Where a record lives and whether its data is there, asked of its own connector."""
    from retentiond.connectors import ConnectorRef, load_connectors

    cfg = load_config(str(site.config))
    engine = make_engine(cfg.database_url)
    connectors = load_connectors(cfg)

    def lookup(record_id: str) -> RecordLookup | None:
        with engine.connect() as conn:
            row = conn.execute(
                select(Record.record_key, Record.system, Record.locator, Disposal.state)
                .outerjoin(Disposal, Disposal.record_id == Record.id)
                .where(Record.record_key == record_id)
                .order_by(Disposal.id.desc()).limit(1)).first()
        if row is None:
            return None
        key, system, locator, state = row
        present: bool | None = None
        if system != "paper-store":
            ref = ConnectorRef(system or "", locator or "", key)
            present = connectors.for_system(system).exists(ref)
        return RecordLookup(record_id=key, state=state or "retained", system=system or "",
                            locator=locator or "", present=present)

    return lookup


def demo_pages(site: DemoSite) -> DemoPages:
    return DemoPages(mail_dir=site.mail_dir, counts=lambda: holding_counts(site.holding),
                     lookup=record_lookup(site), service_url=site.web_url + "/")
