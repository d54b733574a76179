"""What people see of sources, on real SQLite and PostgreSQL: the Sources page, the queue
filter and the record page for records gone at source, the metrics and the digest's counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_support import Estate, seed, web_config

from retentiond.clock import FixedClock
from retentiond.daemon.health import Health
from retentiond.daemon.metrics import Metrics
from retentiond.daemon.queries import CountsCache
from retentiond.policy import PolicySet
from retentiond.sources import run_source
from retentiond.sources.settings import source_spec
from retentiond.web.app import create_app


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=20)


def _write(folder: Path, name: str, keys: list[str]) -> None:
    rows = "".join(f"{k},safeguarding.referral,DEMO-LA,2019-01-01\n" for k in keys)
    (folder / name).write_text("record_id,category,controller,opened_on\n" + rows)
    (folder / f"{name}.ready").write_text("")


@pytest.fixture
def gone(estate: Estate, tmp_path: Path) -> dict:
    """An inbox source in full mode whose second extract no longer lists G-2."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    table = {"kind": "inbox", "path": str(folder), "mode": "full", "interval_s": 600}
    spec = source_spec("mis", table, "test: [sources.mis]", base=tmp_path)
    _write(folder, "1.csv", ["G-1", "G-2"])
    run_source(estate.ctx, spec, force=True)
    _write(folder, "2.csv", ["G-1"])
    assert run_source(estate.ctx, spec, force=True).counts["gone"] == 1
    return {"sources": {"mis": table}}


@pytest.fixture
def client(estate: Estate, gone: dict, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    cfg = web_config(estate.url, tmp_path)
    cfg.raw.update(gone)
    app = create_app(cfg, policy=policy, clock=clock, sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _get(client: TestClient, estate: Estate, path: str, user: str = "officer"):
    return client.get(path, headers={"Authorization": f"Bearer {estate.tokens[user]}"})


def test_sources_page_shows_runs_and_gone_records(client, estate):
    """The Sources page shows the source, its last run and counts, its next run, and the
    record gone at source with a link to it; a controller may not see it."""
    page = _get(client, estate, "/sources")
    assert page.status_code == 200
    text = page.text
    assert "mis" in text and "inbox, full; every 600s" in text and "OK" in text
    assert 'href="/records/G-2"' in text and 'href="/records/G-1"' not in text
    assert _get(client, estate, "/sources", "school1").status_code == 403


def test_record_page_and_queue_filter_show_gone_at_source(client, estate):
    """The record page warns that the record is gone at source; the queue filter works."""
    assert "Gone at source: mis stopped listing" in _get(client, estate, "/records/G-2").text
    assert "Gone at source" not in _get(client, estate, "/records/G-1").text
    r = _get(client, estate, "/api/v1/records/G-2")
    assert r.json()["gone_at_source_at"] is not None and r.json()["source"] == "mis"
    assert _get(client, estate, "/queue?state=any&gone_at_source=1").status_code == 200
    assert 'id="gone_at_source" name="gone_at_source" type="checkbox" value="1" checked' in \
        _get(client, estate, "/queue?gone_at_source=1").text


def test_metrics_and_digest_count_sources(estate, gone, clock):
    """/metrics has each source's last run and the records gone at source; the digest's
    counts include them."""
    from prometheus_client import generate_latest

    counts = CountsCache(estate.ctx.sessions, clock, grace_days=30, max_age_s=0)
    c = counts.get()
    assert (c.gone_at_source, c.sources_not_ok, c.sources["mis"]["outcome"]) == (1, 0, "ok")
    metrics = Metrics(counts, Health(heartbeat_max_age_s=10, stall_s={}), lambda: {})
    text = generate_latest(metrics.registry).decode()
    assert 'retentiond_records_gone_at_source{source="mis"} 1.0' in text
    assert 'retentiond_source_last_run_ok{source="mis"} 1.0' in text
    assert 'retentiond_source_last_run_count{count="gone",source="mis"} 1.0' in text
