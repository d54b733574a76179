"""Far-future dates through the whole service (issue 11, item 7), on SQLite and PostgreSQL:
an import with ``9999-12-31`` (an "open-ended" marker) succeeds and the record is never due,
needing attention with the reason; a policy change then recomputes (set-based and row by
row) and evaluates every other record; the policy preview refuses a ``9000y`` pack clearly
and previews a long one over such records."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from int_support import cp_case, load_records, pupil, records_by_key, referral, seed_controllers
from web_support import cheap_hashing, web_config

from retentiond.lifecycle.context import Context
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.recompute import recompute_stale
from retentiond.policy import PolicySet, load_policy_set
from retentiond.web.accounts import add_user
from retentiond.web.app import create_app
from retentiond.web.sessions import create_token

OPEN_ENDED = "9999-12-31"


def _import_with_open_ended_dates(ctx: Context, tmp_path: Path) -> None:
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        referral("REF-OLD", "2010-01-04"),
        cp_case("CP-OPEN", OPEN_ENDED),
        pupil("P-MARKER", OPEN_ENDED),
        cp_case("CP-CLOSED", "1980-06-30"),
        referral("REF-NEW", "2026-01-05"),
    ])


def _changed_pack(policy: PolicySet, tmp_path: Path, **periods: str) -> PolicySet:
    text = Path(policy.packs[0].path).read_text()
    for old, new in periods.items():
        text = text.replace(f'period = "{old}"', f'period = "{new}"')
    path = tmp_path / "changed.toml"
    path.write_text(text)
    return load_policy_set([path])


def test_import_with_open_ended_dates_succeeds(ctx: Context, tmp_path: Path) -> None:
    """The file is imported whole; records whose arithmetic leaves the calendar are never due,
    needing attention with the field and date named; the others are decided as usual."""
    _import_with_open_ended_dates(ctx, tmp_path)
    records = records_by_key(ctx)
    assert len(records) == 5
    for key, field in (("CP-OPEN", "closed_on"), ("P-MARKER", "date_of_birth")):
        assert records[key].due_on is None
        assert records[key].needs_attention is not None
        assert f"{field} is {OPEN_ENDED}" in records[key].needs_attention
        assert "falls after 9999-12-31" in records[key].needs_attention
    assert records["REF-OLD"].due_on == dt.date(2016, 1, 4)
    assert records["CP-CLOSED"].due_on == dt.date(2020, 6, 30)


def test_policy_change_still_evaluates_every_other_record(ctx: Context, tmp_path: Path) -> None:
    """After a policy change the set-based recompute and the evaluation run to the end: the
    open-ended records stay never due, every other record is recomputed and queued."""
    _import_with_open_ended_dates(ctx, tmp_path)
    changed = dataclasses.replace(
        ctx, policy=_changed_pack(ctx.policy, tmp_path, **{"6y": "5y", "40y": "41y",
                                                            "25y": "26y"}))
    result = evaluate(changed, changed.clock.today())
    assert result.recompute.recomputed == 5
    records = records_by_key(changed)
    assert records["REF-OLD"].due_on == dt.date(2015, 1, 4)
    assert records["CP-CLOSED"].due_on == dt.date(2021, 6, 30)
    assert records["CP-OPEN"].due_on is None and records["CP-OPEN"].needs_attention
    assert records["P-MARKER"].due_on is None and records["P-MARKER"].needs_attention
    assert {r.policy_version for r in records.values()} == {changed.policy.version}
    assert result.queued == 2  # REF-OLD and CP-CLOSED
    # and a second pass (nothing stale) is quiet
    assert recompute_stale(changed).recomputed == 0


@pytest.fixture
def api(ctx: Context, database_url: str,
        tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    cheap_hashing()
    add_user(ctx, username="officer", roles="ig_officer", password="a long enough password")
    token = create_token(dataclasses.replace(ctx, actor="officer"), "officer",
                         name="far-future tests")
    app = create_app(web_config(database_url, tmp_path), policy=ctx.policy, clock=ctx.clock,
                     sessions=ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c, {"Authorization": f"Bearer {token}"}


def test_preview_refuses_a_9000_year_pack_clearly(ctx: Context, tmp_path: Path,
                                                  api: tuple[TestClient, dict[str, str]]) -> None:
    """A ``9000y`` pack (for 90y) is a clear refusal naming the rule and field, never a 500;
    a long but allowed pack is previewed over records with open-ended dates."""
    c, headers = api
    _import_with_open_ended_dates(ctx, tmp_path)
    text = Path(ctx.policy.packs[0].path).read_text()
    bad = c.post("/api/v1/policy/preview", headers=headers,
                 json={"pack_text": text.replace('period = "25y"', 'period = "9000y"')})
    assert bad.status_code == 400, bad.text[:300]
    assert ("rule 'isa.education.pupil_record'.period: '9000y' is longer than 150 years"
            in bad.json()["detail"])
    long = c.post("/api/v1/policy/preview", headers=headers,
                  json={"pack_text": text.replace('period = "40y"', 'period = "150y"')})
    assert long.status_code == 200, long.text[:300]
    [move] = long.json()["moves"]
    assert move["category"] == "child_protection.case"
    assert (move["records"], move["later"], move["unchanged"]) == (2, 1, 1)
