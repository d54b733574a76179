"""Caching (issue 11, item 12): every API response and every page carries
``Cache-Control: no-store`` (they may hold personal data; a shared machine's browser cache
or a proxy must not keep them), whoever asks and whatever the answer; static assets may be
cached, and the published keys say how long."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from web_support import Estate, seed, web_config

from retentiond.clock import FixedClock
from retentiond.policy import load_policy_set
from retentiond.registry.models import Record
from retentiond.web.app import create_app, iter_routes
from retentiond.web.roles import ROUTE_RULES

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy_set([ROOT / "policies" / "isa-default.toml"])
CLOCK = FixedClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC))
#: Routes that publish what anyone may keep: the key set and CA that check a certificate.
PUBLISHED = {"public_jwks", "public_ca"}


def _get_routes() -> list[tuple[str, str]]:
    app = create_app(web_config("sqlite://", ROOT), policy=POLICY, clock=CLOCK,
                     sessions=sessionmaker())
    return sorted({(r.name, r.path) for r in iter_routes(app) if "GET" in r.methods})


GET_ROUTES = _get_routes()


@pytest.fixture(scope="module")
def estate(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Estate:
    path = tmp_path_factory.mktemp("cache") / "registry.db"
    shutil.copy(sqlite_template, path)
    return seed(f"sqlite:///{path}", POLICY, CLOCK, records=60)


@pytest.fixture(scope="module")
def client(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(web_config(estate.url, tmp_path_factory.mktemp("cfg")), policy=POLICY,
                     clock=CLOCK, sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _url(path: str, record_key: str) -> str:
    values = {"record_key": record_key, "record_id": record_key, "hold_id": "1",
              "serial": "NO-SUCH-CERT", "kind": "pdf", "filter_id": "1", "username": "admin",
              "notification_id": "1"}
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values[m.group(1)], path)


@pytest.mark.parametrize("user", ["admin", "officer", "school1", None])
def test_every_page_and_api_answer_is_not_stored(client: TestClient, estate: Estate,
                                                user: str | None) -> None:
    """Every GET route, as an officer, an admin, a controller and nobody, whether it answers
    200, 303, 401, 403 or 404: ``Cache-Control: no-store`` (the published keys excepted)."""
    with estate.ctx.sessions() as s:
        key = s.scalar(select(Record.record_key).order_by(Record.id).limit(1))
    assert key is not None
    headers = {"Authorization": f"Bearer {estate.tokens[user]}"} if user else {}
    seen = set()
    for name, path in GET_ROUTES:
        assert name in ROUTE_RULES
        r = client.get(_url(path, key), headers=headers, follow_redirects=False)
        seen.add(r.status_code)
        if name in PUBLISHED:
            assert r.headers.get("cache-control") in (None, "no-store",
                                                      "public, max-age=3600"), name
            continue
        assert r.headers.get("cache-control") == "no-store", (name, r.status_code)
    assert 200 in seen


def test_api_errors_and_posts_are_not_stored(client: TestClient, estate: Estate) -> None:
    """A validation error, an unknown route and a refused POST are not stored either."""
    headers = {"Authorization": f"Bearer {estate.tokens['approver1']}"}
    for r in (client.get("/api/v1/disposals?limit=0", headers=headers),
              client.get("/api/v1/no-such-thing", headers=headers),
              client.post("/api/v1/holds", headers=headers, json={}),
              client.post("/login", data={})):
        assert r.status_code >= 400
        assert r.headers.get("cache-control") == "no-store", r.url


def test_static_assets_may_be_cached(client: TestClient) -> None:
    """The stylesheet and scripts carry no personal data: no ``no-store`` on them."""
    r = client.get("/static/retentiond.css")
    assert r.status_code == 200
    assert "no-store" not in r.headers.get("cache-control", "")
