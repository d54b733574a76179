"""The review queue at scale: first and deep pages through the real app.

    .venv/bin/python -m bench.web_queue --records 1000000 --pending 100000 --backend sqlite
    .venv/bin/python -m bench.web_queue --records 1000000 --pending 100000 --backend postgresql

Builds a registry with ``--records`` records spread over 400 controllers and four categories,
``--pending`` disposal cases pending review (plus a fifth as many in other states), straight
into the tables with bulk inserts (the import pipeline has its own benchmark in ``bench``).
Then times, through the app in-process (ASGI, no network), the API and the HTML queue: the
first page, a page 90% of the way through the pending cases (keyset cursor), and the first
page filtered to one controller. Each figure is the median and the 95th percentile of
``--repeat`` requests, in milliseconds. The target (issue 5) is under 200 ms.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text

from bench.backends import database, server_version
from retentiond.clock import FixedClock
from retentiond.config import Config
from retentiond.lifecycle.context import Context
from retentiond.logs import configure_logging
from retentiond.policy import load_policy_set
from retentiond.registry.db import make_engine, session_factory, upgrade
from retentiond.registry.models import Controller, Disposal, Record

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = [("education.pupil_record", "isa.education.pupil_record", 1, 60),
              ("safeguarding.referral", "isa.safeguarding.referral", 1, 20),
              ("child_protection.case", "isa.child_protection.case", 2, 12),
              ("looked_after.case_record", "isa.looked_after.case_record", 2, 8)]
CONTROLLERS = 400
CHUNK = 20_000
AS_OF = dt.date(2026, 11, 22)


def _log(message: str) -> None:
    print(f"[web_queue] {message}", file=sys.stderr, flush=True)


def build(url: str, *, records: int, pending: int, seed: int) -> dict[str, Any]:
    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(seed)
    now = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(insert(Controller), [
            {"code": f"SCH-{n:03d}", "name": f"School {n}", "email": f"dpo{n}@school.example",
             "created_at": now, "updated_at": now} for n in range(1, CONTROLLERS + 1)])
        ids = list(conn.execute(select(Controller.id).order_by(Controller.id)).scalars())
    weights = [c[3] for c in CATEGORIES]
    due_records = pending + pending // 5
    # Due records are spread through the registry as in a real one (ids are import order,
    # unrelated to due dates), so that no plan can lean on an accidental correlation.
    due = set(rng.sample(range(records), due_records))
    for start in range(0, records, CHUNK):
        rows = []
        for n in range(start, min(records, start + CHUNK)):
            category = rng.choices(CATEGORIES, weights)[0]
            due_on = (AS_OF - dt.timedelta(days=rng.randint(1, 1500)) if n in due
                      else AS_OF + dt.timedelta(days=rng.randint(1, 40 * 365)))
            rows.append({"record_key": f"R-{n:08d}", "category": category[0],
                         "controller_id": rng.choice(ids), "due_on": due_on, "due_action": "delete",
                         "due_rule": category[1], "approvals_required": category[2],
                         "policy_version": "bench", "created_at": now, "updated_at": now})
        with engine.begin() as conn:
            conn.execute(insert(Record), rows)
        _log(f"records {min(records, start + CHUNK):,}")
    others = ["deferred", "rejected", "executed", "certified", "withdrawn"]
    with engine.begin() as conn:
        recs = list(conn.execute(select(Record.id, Record.due_on, Record.due_rule,
                                        Record.approvals_required)
                                 .where(Record.due_on <= AS_OF).order_by(Record.id)).all())
    rng.shuffle(recs)
    for start in range(0, len(recs), CHUNK):
        rows = [{"record_id": rid, "state": "pending_review" if i < pending else others[i % len(others)],
                 "due_on": due, "action": "delete", "rule_id": rule, "policy_version": "bench",
                 "approvals_required": need, "created_at": now, "updated_at": now}
                for i, (rid, due, rule, need) in enumerate(recs[start:start + CHUNK], start)]
        with engine.begin() as conn:
            conn.execute(insert(Disposal), rows)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    return {"build_s": round(time.perf_counter() - started, 1)}


def _cursor(url: str, position: int) -> str:
    engine = make_engine(url)
    with engine.connect() as conn:
        day, ident = conn.execute(
            select(Disposal.due_on, Disposal.id).where(Disposal.state == "pending_review")
            .order_by(Disposal.due_on, Disposal.id).offset(position).limit(1)).one()
    engine.dispose()
    return base64.urlsafe_b64encode(f"{day.isoformat()}|{ident}".encode()).decode().rstrip("=")


def measure(url: str, workdir: Path, *, pending: int, repeat: int) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from retentiond.web.accounts import add_user
    from retentiond.web.app import create_app
    from retentiond.web.sessions import create_token

    policy = load_policy_set([ROOT / "policies" / "isa-default.toml"])
    clock = FixedClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC))
    sessions = session_factory(make_engine(url))
    ctx = Context(sessions=sessions, policy=policy, clock=clock, actor="bench")
    from contextlib import suppress

    from retentiond.lifecycle.context import LifecycleError

    with suppress(LifecycleError):  # --reuse of a registry measured before
        add_user(ctx, username="bench.officer", roles="ig_officer", password="bench password 123")
    token = create_token(ctx, "bench.officer", name="bench")
    cfg = Config(source=str(workdir / "x.toml"), database_url=url, raw={"web": {}})
    app = create_app(cfg, policy=policy, clock=clock, sessions=sessions)
    deep = _cursor(url, int(pending * 0.9))
    paths = {
        "api_first_page": "/api/v1/disposals?limit=50",
        "api_deep_page": f"/api/v1/disposals?limit=50&after={deep}",
        "api_controller_first_page": "/api/v1/disposals?limit=50&controller=SCH-017",
        "html_first_page": "/queue?limit=50",
        "html_deep_page": f"/queue?limit=50&after={deep}",
    }
    out: dict[str, Any] = {}
    with TestClient(app, base_url="https://testserver") as client:
        headers = {"Authorization": f"Bearer {token}"}
        for name, path in paths.items():
            times = []
            for i in range(repeat + 2):
                t = time.perf_counter()
                r = client.get(path, headers=headers)
                elapsed = (time.perf_counter() - t) * 1000
                assert r.status_code == 200, (path, r.status_code, r.text[:300])
                if i >= 2:  # the first two warm the caches
                    times.append(elapsed)
            times.sort()
            out[name] = {"median_ms": round(statistics.median(times), 1),
                         "p95_ms": round(times[int(len(times) * 0.95) - 1], 1)}
            _log(f"{name}: {out[name]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.web_queue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", metavar="URL", default=None,
                        help="measure a registry kept by an earlier --keep run; build nothing")
    args = parser.parse_args(argv)
    if args.pending * 1.2 > args.records:
        parser.error("--records must be at least 1.2 x --pending")
    configure_logging(level="warning")
    figures: dict[str, Any]
    if args.reuse:
        with tempfile.TemporaryDirectory(prefix="retentiond-webq-") as tmp:
            figures = {"backend": args.backend, "server": server_version(args.backend, args.reuse),
                       "records": args.records, "pending": args.pending, "reused": True}
            figures.update(measure(args.reuse, Path(tmp), pending=args.pending, repeat=args.repeat))
        print(json.dumps(figures, indent=2))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        return 0
    with tempfile.TemporaryDirectory(prefix="retentiond-webq-") as tmp, \
            database(args.backend, Path(tmp), keep=args.keep, log=_log) as url:
        figures = {"backend": args.backend, "server": server_version(args.backend, url),
                                   "records": args.records, "pending": args.pending}
        figures.update(build(url, records=args.records, pending=args.pending, seed=args.seed))
        figures.update(measure(url, Path(tmp), pending=args.pending, repeat=args.repeat))
    text_out = json.dumps(figures, indent=2)
    print(text_out)
    if args.json:
        args.json.write_text(text_out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
