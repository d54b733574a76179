"""A seeded registry served by the real app under uvicorn on loopback, and Debian's Chromium
driven by Playwright (never a downloaded browser). Shared by the browser tests, schemathesis
and the screenshot script."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from web_support import PASSWORD, Estate, seed, web_config  # noqa: E402

from retentiond.clock import FixedClock  # noqa: E402
from retentiond.policy import load_policy_set  # noqa: E402
from retentiond.registry.db import make_engine, upgrade  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
CLOCK_AT = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def issue_demo_certificates(estate: Estate, workdir: Path) -> dict[str, str]:
    """Approve and mark executed (as the execution pipeline would) a few education cases of
    two schools, then issue their signed certificates; return serial by controller."""
    from dataclasses import replace

    from sqlalchemy import select, update

    from retentiond.certificates.issue import issue_certificates
    from retentiond.certificates.keys import init_keys, load_signer
    from retentiond.certificates.settings import CertificateSettings
    from retentiond.lifecycle.review import approve
    from retentiond.registry import models as m

    ctx = estate.ctx
    cases: list[int] = []
    with ctx.sessions() as s:
        for code in ("DEMO-SCH-01", "DEMO-SCH-02"):
            cases += list(s.scalars(
                select(m.Disposal.id).join(m.Record, m.Record.id == m.Disposal.record_id)
                .join(m.Controller, m.Controller.id == m.Record.controller_id)
                .where(m.Controller.code == code, m.Disposal.state == "pending_review",
                       m.Disposal.approvals_required == 1, m.Disposal.stage.is_(None))
                .order_by(m.Disposal.id).limit(2)))
    approve(replace(ctx, actor="approver1"), cases, reason="due; checked")
    now = ctx.clock.now()
    with ctx.sessions.begin() as s:
        for case in cases:
            s.add(m.DisposalExecution(
                disposal_id=case, action="delete", system="mis", connector="mis",
                connector_kind="sql", method="rows deleted from the MIS",
                verification="exists() is false after delete", executed_at=now, updated_at=now))
            s.execute(update(m.Disposal).where(m.Disposal.id == case)
                      .values(state="executed", updated_at=now))
    keys = workdir / "keys"
    init_keys(keys, issuer="Demo City Council", now=now - dt.timedelta(days=30))
    signer = load_signer(CertificateSettings(where="test", issuer="Demo City Council",
                                             issuer_contact="ig@council.example", key_dir=keys,
                                             batch="run", files={}))
    return {c.controller: c.serial for c in issue_certificates(ctx, signer, batch="run")}


@contextmanager
def running_app(workdir: Path, *, records: int = 400, template: Path | None = None,
                port: int | None = None, oidc: dict[str, str] | None = None,
                policies: list[Path] | None = None) -> Iterator[tuple[str, Estate]]:
    """Seed a SQLite registry in ``workdir`` and serve it; yield its base URL and the estate.
    With ``oidc``, a ``[web.oidc]`` section (paths relative to ``workdir``) and the public URL
    it needs; ``port`` fixes the port (the redirect URI registered with a provider);
    ``policies``: other packs than the default one."""
    from retentiond.web.app import create_app, serve

    db = workdir / "registry.db"
    if template is not None:
        shutil.copy(template, db)
    url = f"sqlite:///{db}"
    if template is None:
        upgrade(make_engine(url))
    policy = load_policy_set(policies or [ROOT / "policies" / "isa-default.toml"])
    clock = FixedClock(CLOCK_AT)
    estate = seed(url, policy, clock, records=records)
    port = port or free_port()
    extra: dict[str, object] = {}
    if oidc is not None:
        extra = {"public_url": f"http://127.0.0.1:{port}", "oidc": oidc}
    # Plain http on loopback: the Secure flag is tested separately (test_int_web_journeys).
    cfg = web_config(url, workdir, secure=False, listen=f"127.0.0.1:{port}", **extra)
    app = create_app(cfg, policy=policy, clock=clock, sessions=estate.ctx.sessions)
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(cfg, stop), kwargs={"app": app}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    try:
        yield base, estate
    finally:
        stop.set()
        thread.join(timeout=10)


@contextmanager
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    """Sign in through the form, by keyboard, as a person would."""
    page.goto(f"{base}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_label("Password").press("Enter")
    page.wait_for_load_state()


def fail_cases(estate: Estate, count: int, *, skip: int = 0) -> list[tuple[int, str]]:
    """Approve ``count`` pending one-approver cases and run the executor with no connector
    configured, as on a new install: they fail ('no connector is configured for system ...').
    Returns (case id, record key) of each."""
    from dataclasses import replace

    from sqlalchemy import select

    from retentiond.connectors import ConnectorRegistry
    from retentiond.lifecycle.execute import execute_due
    from retentiond.lifecycle.review import approve
    from retentiond.registry import models as m

    with estate.ctx.sessions() as s:
        rows = [(i, k) for i, k in s.execute(
            select(m.Disposal.id, m.Record.record_key)
            .join(m.Record, m.Record.id == m.Disposal.record_id)
            .where(m.Disposal.state == "pending_review", m.Disposal.approvals_required == 1,
                   m.Disposal.stage.is_(None))
            .order_by(m.Disposal.id).offset(skip).limit(count))]
    approve(replace(estate.ctx, actor="approver1"), [i for i, _ in rows], reason="checked")
    execute_due(estate.ctx, ConnectorRegistry({}, {}), owner="tests", batch_size=100, lease_s=60)
    return rows


def open_tasks(estate: Estate, workdir: Path, *, manual: int = 2,
               not_found: int = 1) -> dict[str, list[tuple[int, str]]]:
    """Tasks for a person: approve ``manual`` pending cases of the referrals system and
    ``not_found`` of the MIS, and run the executor with a manual connector for the referrals
    and a filesystem connector whose folder is empty for the MIS (its data is not found).
    Returns kind -> (case id, record key) of each."""
    from dataclasses import replace

    from sqlalchemy import select

    from retentiond.connectors import ConnectorRegistry
    from retentiond.connectors.filesystem import FilesystemConnector
    from retentiond.connectors.manual import ManualConnector
    from retentiond.lifecycle.execute import execute_due
    from retentiond.lifecycle.review import approve
    from retentiond.registry import models as m

    def pending(system: str, count: int) -> list[tuple[int, str]]:
        with estate.ctx.sessions() as s:
            return [(i, k) for i, k in s.execute(
                select(m.Disposal.id, m.Record.record_key)
                .join(m.Record, m.Record.id == m.Disposal.record_id)
                .where(m.Disposal.state == "pending_review", m.Disposal.approvals_required == 1,
                       m.Record.system == system)
                .order_by(m.Disposal.id.desc()).limit(count))]

    # the newest cases: tests and fixtures that pick a pending case take the oldest
    chosen = {"manual": pending("referrals", manual), "not_found": pending("mis", not_found)}
    assert [len(v) for v in chosen.values()] == [manual, not_found], "too few demo cases"
    approve(replace(estate.ctx, actor="approver1"),
            [i for rows in chosen.values() for i, _ in rows], reason="checked")
    (workdir / "empty-files").mkdir(exist_ok=True)
    registry = ConnectorRegistry(
        {"paper": ManualConnector("paper"),
         "files": FilesystemConnector("files", workdir / "empty-files")},
        {"referrals": "paper", "mis": "files"})
    try:
        execute_due(estate.ctx, registry, owner="tests", batch_size=100, lease_s=60)
    finally:
        registry.close()
    return chosen


#: The stages the pupil-record rule of ``staged_pack`` has instead of one approver.
STAGES = ('stages = [{ name = "service", group = "service-managers" }, '
          '{ name = "ig", group = "ig" }]\ncooling_off_days = 7\n')


def staged_pack(folder: Path) -> Path:
    """The default pack with its pupil-record rule in two stages (service managers, then IG)
    and a seven-day cooling-off, written to ``folder``."""
    text = (ROOT / "policies" / "isa-default.toml").read_text(encoding="utf-8")
    head, marker, tail = text.partition('id = "isa.education.pupil_record"')
    path = folder / "staged.toml"
    path.write_text(head + marker + tail.replace("approvals_required = 1\n", STAGES, 1),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for a test module (import this fixture into the module to use it)."""
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies from another test); actions wait at most
    the module's ``PAGE_TIMEOUT_MS`` (15 s unless it says otherwise)."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(getattr(request.module, "PAGE_TIMEOUT_MS", 15_000))
    yield page
    context.close()
