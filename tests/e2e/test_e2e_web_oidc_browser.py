"""Signing in through a real OpenID Provider in headless Chromium: the review service's
"sign in with your organisation" button, the provider's own sign-in and consent pages
(panva's oidc-provider, set up as an Entra ID tenant), back to the service with the user's
role; someone the service does not know is told so; signing out ends the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faker import Faker
from oidc_support import CLIENT_ID, CLIENT_SECRET, PASSWORD, Tenant, account, client, openid_provider
from sqlalchemy import select
from web_harness import CHROMIUM, browser, chromium, free_port, page, running_app  # noqa: F401 (shared fixtures)

from retentiond.registry.models import AuditEvent
from retentiond.web.accounts import add_user

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true",
    reason=f"{CHROMIUM} is missing (./dev test installs Debian's chromium)")

fake = Faker("en_GB")
fake.seed_instance(11)
TENANT = Tenant()
APPROVER = account(fake, TENANT.tenant_id)
STRANGER = account(fake, TENANT.tenant_id)
TENANT.accounts += [APPROVER, STRANGER]


@pytest.fixture(scope="module")
def served(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    port = free_port()
    work = tmp_path_factory.mktemp("oidc-web")
    redirect = f"http://127.0.0.1:{port}/login/oidc/callback"
    with openid_provider(work / "op", tenants=[TENANT], clients=[client([redirect])]) as op:
        (work / "oidc-secret").write_text(CLIENT_SECRET)
        with running_app(work, template=sqlite_template, records=60, port=port, oidc={
                "issuer": op.issuer, "client_id": CLIENT_ID, "client_secret_file": "oidc-secret",
                "label": "Sign in with your council account"}) as (base, estate):
            add_user(estate.ctx, username=APPROVER.login, roles="approver", password=None)
            yield base, estate


def _through_the_provider(page: Any, base: str, login: str) -> None:
    page.goto(f"{base}/login?next=/queue")
    page.get_by_role("button", name="Sign in with your council account").click()
    assert page.locator("h1").inner_text() == "Sign in to the test tenant"
    page.get_by_label("Email or user name").fill(login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.locator("h1").inner_text() == "Let this application know who you are?"
    page.get_by_role("button", name="Accept").click()
    page.wait_for_load_state()


def test_approver_signs_in_through_the_provider_and_out(served: tuple[str, Any], page: Any) -> None:
    """The approver goes through the provider's pages, lands on the queue as an approver
    (the approve button is there), and signing out closes the session for good."""
    base, estate = served
    _through_the_provider(page, base, APPROVER.login)
    assert page.url == f"{base}/queue"
    assert APPROVER.login in page.locator("header").inner_text()
    assert page.get_by_role("button", name="Approve selected").count() == 1
    page.get_by_role("button", name="Sign out").click()
    assert page.url == f"{base}/login"
    assert page.goto(f"{base}/queue").url.startswith(f"{base}/login")
    with estate.ctx.sessions() as s:
        kinds = list(s.scalars(select(AuditEvent.kind).where(AuditEvent.actor == APPROVER.login)
                               .order_by(AuditEvent.id)))
    assert kinds[-2:] == ["UserSignedIn", "UserSignedOut"]


def test_stranger_is_told_they_have_no_account(served: tuple[str, Any], page: Any) -> None:
    """Someone the provider knows but the service does not is back at the sign-in page with
    a message that says what to do, and no session."""
    base, _ = served
    _through_the_provider(page, base, STRANGER.login)
    assert page.url == f"{base}/login"
    banner = page.locator(".govuk-notification-banner").inner_text()
    assert f"{STRANGER.login} has no account in this service" in banner
    assert "Ask an administrator to add you" in banner
    assert page.goto(f"{base}/queue").url.startswith(f"{base}/login")
