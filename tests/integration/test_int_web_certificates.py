"""Certificates through the web: list, detail, signed downloads, resend, and a controller
acknowledging its own certificate but never seeing another's."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cert_support import make_keys, signer_for, standard_set
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import PASSWORD, cheap_hashing, web_config

from retentiond.certificates.issue import issue_certificates
from retentiond.lifecycle.context import Context
from retentiond.registry.models import Acknowledgement, Notification
from retentiond.web.accounts import add_user
from retentiond.web.app import create_app
from retentiond.web.sessions import create_token


@pytest.fixture
def issued(ctx: Context, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    standard_set(ctx, tmp_path)
    certs = issue_certificates(ctx, signer_for(make_keys(tmp_path_factory.getbasetemp())), batch="run")
    serials = {c.controller: c.serial for c in certs}
    cheap_hashing()
    tokens = {}
    for name, roles, controller in (("officer", "ig_officer", None), ("auditor", "auditor", None),
                                    ("school1", "controller", "SCH-01"),
                                    ("school2", "controller", "SCH-02")):
        add_user(ctx, username=name, roles=roles, password=PASSWORD, controller=controller)
        tokens[name] = create_token(dataclasses.replace(ctx, actor=name), name, name="tests")
    app = create_app(web_config(str(ctx.sessions.kw["bind"].url.render_as_string(hide_password=False)),
                                tmp_path), policy=ctx.policy, clock=ctx.clock, sessions=ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c, serials, tokens


def _as(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"}


def test_list_detail_and_downloads(issued: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    """An officer sees every certificate and downloads the signed PDF and JSON."""
    c, serials, tokens = issued
    page = c.get("/certificates", headers=_as(tokens, "officer")).text
    assert serials["SCH-01"] in page and serials["LA-01"] in page
    pdf = c.get(f"/certificates/{serials['SCH-01']}/download/pdf", headers=_as(tokens, "officer"))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    signed = c.get(f"/certificates/{serials['SCH-01']}/download/json", headers=_as(tokens, "officer"))
    assert signed.status_code == 200 and "signature" in signed.text
    api = c.get("/api/v1/certificates", headers=_as(tokens, "auditor")).json()
    assert {i["serial"] for i in api["items"]} == set(serials.values())


def test_controller_sees_only_its_own_certificates(
        issued: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    """A school lists and downloads its own certificate; another's is 'not found' everywhere."""
    c, serials, tokens = issued
    mine, theirs = serials["SCH-01"], serials["LA-01"]
    listed = c.get("/api/v1/certificates", headers=_as(tokens, "school1")).json()
    assert [i["serial"] for i in listed["items"]] == [mine]
    for path in (f"/certificates/{theirs}", f"/certificates/{theirs}/download/pdf",
                 f"/api/v1/certificates/{theirs}"):
        assert c.get(path, headers=_as(tokens, "school1")).status_code == 404, path
    assert c.get(f"/certificates/{mine}/download/pdf", headers=_as(tokens, "school1")).status_code == 200
    assert c.get("/api/v1/certificates", headers=_as(tokens, "school2")).json()["items"] == []


def test_controller_acknowledges_and_officer_resends(
        issued: tuple[TestClient, dict[str, str], dict[str, str]], ctx: Context) -> None:
    """A school acknowledges its certificate through the page; an officer resends a notice."""
    c, serials, tokens = issued
    mine = serials["SCH-01"]
    r = c.post(f"/certificates/{mine}/acknowledge", data={"comment": ""},
               headers=_as(tokens, "school1"), follow_redirects=False)
    assert r.status_code == 303
    r = c.post(f"/certificates/{serials['LA-01']}/acknowledge", data={},
               headers=_as(tokens, "school1"), follow_redirects=False)
    assert r.status_code == 404
    with ctx.sessions() as s:
        acks = list(s.scalars(select(Acknowledgement.by)))
        notice = s.scalar(select(Notification.id).limit(1))
    assert acks == ["school1"]
    detail = c.get(f"/certificates/{mine}", headers=_as(tokens, "officer")).text
    assert re.search(r"Acknowledged by school1", detail)
    r = c.post(f"/notifications/{notice}/resend", data={"back": f"/certificates/{mine}"},
               headers=_as(tokens, "officer"), follow_redirects=False)
    assert r.status_code == 303
    assert c.post(f"/notifications/{notice}/resend", headers=_as(tokens, "auditor")).status_code == 403


@pytest.mark.parametrize("bad", [2**63, 2**62 + 1, 0, -1])
def test_resend_refuses_an_id_no_backend_can_hold(
        issued: tuple[TestClient, dict[str, str], dict[str, str]], bad: int) -> None:
    """An id past the bigint range (or below 1) is refused before the database sees it: a
    careless or hostile address gives the page's 400 ("could not be understood") or 404, never
    a 500 from an integer overflow, and nothing is queued."""
    c, _, tokens = issued
    r = c.post(f"/notifications/{bad}/resend", headers=_as(tokens, "officer"), follow_redirects=False)
    assert r.status_code in (400, 404), (bad, r.status_code, r.text[:200])
    assert "could not be understood" in r.text or r.status_code == 404
