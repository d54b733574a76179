"""``python -m bench.sources --records N``: re-syncing a full SQL source on PostgreSQL.

The harness's estate (``bench/estate.py``) is loaded into a table ``extract`` of a second
PostgreSQL database, standing for a warehouse view (text columns, dates as ``DATE``). A
``[sources.warehouse]`` source (``kind = "sql"``, ``mode = "full"``) reads it with the product's
own code (``run_source``: the streamed query, validation, the facts digest, reconciliation,
the run's row and audit event, one transaction):

1. the first sync, into an empty registry (every record created): ``first_sync_s``;
2. a re-sync of the unchanged extract: ``resync_unchanged_s`` (target < 20 s at 1M);
3. a re-sync after 1% of the rows changed (a locator moved on every hundredth row):
   ``resync_1pct_s`` (target < 30 s at 1M), checked to update exactly those rows;
4. a re-sync after 0.1% of the rows disappeared from the extract: ``resync_gone_s``, checked to
   flag exactly those records gone at source.

Each phase reports its wall time, CPU seconds of this process, CPU seconds of the PostgreSQL
backends serving the two databases (``*_server_cpu_s``: sampled every 0.1 s from ``/proc`` by
the database names in their process titles, so a machine shared with other sessions does not
blur it) and peak RSS (sampled), so "memory flat" can be read across sizes, and what a quiet
2-core machine would take can be bounded: at least the larger of the two CPU figures, at most
their sum. ``VACUUM ANALYZE`` runs between phases, outside the
timings, as autovacuum would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, func, make_url, select, text

from bench.backends import database, server_version
from bench.estate import write_estate
from bench.memory import peak_rss_mb
from bench.run import CPU_S, DEFAULT_PACK, _analyze, _log, _timed
from retentiond.clock import FixedClock
from retentiond.ingest.controllers import import_controllers
from retentiond.lifecycle.agreements import add_agreement
from retentiond.lifecycle.context import Context
from retentiond.logs import configure_logging
from retentiond.policy import load_policy_set
from retentiond.registry.db import make_engine, session_factory, upgrade
from retentiond.registry.models import Record
from retentiond.sources import run_source
from retentiond.sources.settings import source_spec

_EXTRACT = """CREATE TABLE extract (n BIGSERIAL PRIMARY KEY, record_id TEXT NOT NULL,
    category TEXT, controller TEXT, system TEXT, locator TEXT, subject_ref TEXT,
    date_of_birth DATE, date_of_death DATE, opened_on DATE, closed_on DATE, flags TEXT,
    agreement TEXT)"""
_COLUMNS = ("record_id", "category", "controller", "system", "locator", "subject_ref",
            "date_of_birth", "date_of_death", "opened_on", "closed_on", "flags", "agreement")
QUERY = "SELECT " + ", ".join(_COLUMNS) + " FROM extract"


def _load_extract(holding_url: str, records_csv: Path) -> None:
    """The estate's CSV into the warehouse table, by COPY (empty fields as NULL)."""
    import psycopg

    engine = create_engine(holding_url)
    with engine.begin() as conn:
        conn.execute(text(_EXTRACT))
    engine.dispose()
    dsn = holding_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as pg, pg.cursor() as cur, records_csv.open("rb") as fh, \
            cur.copy(f"COPY extract ({', '.join(_COLUMNS)}) FROM STDIN "
                     "WITH (FORMAT csv, HEADER true)") as copy:
        while chunk := fh.read(1 << 20):
            copy.write(chunk)
    _vacuum(holding_url)


def _vacuum(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
        conn.execute(text("CHECKPOINT"))
    engine.dispose()


def _change(holding_url: str, sql: str) -> int:
    engine = create_engine(holding_url)
    with engine.begin() as conn:
        n = conn.execute(text(sql)).rowcount
    engine.dispose()
    _vacuum(holding_url)
    return int(n)


_TICK = os.sysconf("SC_CLK_TCK")


class ServerCpu:
    """CPU seconds of the PostgreSQL backends whose process title names one of ``databases``
    while the ``with`` block runs (Linux ``/proc``; a backend that ends between two samples
    loses at most ``interval_s`` of its time)."""

    def __init__(self, databases: list[str], interval_s: float = 0.1) -> None:
        self.databases = [d.encode() for d in databases]
        self.interval_s = interval_s
        self.start: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[int, int]:
        ticks: dict[int, int] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    title = fh.read()
                if not any(d in title for d in self.databases):
                    continue
                with open(f"/proc/{entry.name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                ticks[int(entry.name)] = int(fields[11]) + int(fields[12])  # utime + stime
            except (OSError, IndexError, ValueError):
                continue
        return ticks

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.last.update(self._sample())

    @property
    def seconds(self) -> float:
        return sum(t - self.start.get(pid, 0) for pid, t in self.last.items()) / _TICK

    def __enter__(self) -> ServerCpu:
        self.start = self._sample()
        self.last = dict(self.start)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.last.update(self._sample())


def _phase(out: dict[str, Any], key: str, ctx: Context, spec: Any, records: int,
           databases: list[str]) -> Any:
    with ServerCpu(databases) as server:
        outcome, seconds, peak = _timed(key, key, lambda: run_source(ctx, spec, force=True))
    out[f"{key}_server_cpu_s"] = round(server.seconds, 2)
    assert outcome.outcome == "ok", outcome
    out[f"{key}_s"] = round(seconds, 2)
    out[f"{key}_rows_per_s"] = round(records / seconds)
    out[f"{key}_peak_rss_mb"] = round(peak, 1)
    out[f"{key}_counts"] = outcome.counts
    return outcome


def run(*, records: int, as_of: dt.date, seed: int, keep: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"records": records, "backend": "postgresql"}
    workdir = Path(tempfile.mkdtemp(prefix="retentiond-bench-sources-"))
    try:
        with database("postgresql", workdir, keep=keep, log=_log) as url, \
                database("postgresql", workdir, keep=keep, role="warehouse",
                         log=_log) as holding_url:
            out["server"] = server_version("postgresql", url)
            (controllers_csv, records_csv, _, _), gen_s, _ = _timed(
                "generate", f"generate {records:,} records",
                lambda: write_estate(workdir, records=records, as_of=as_of, seed=seed))
            _, load_s, _ = _timed("load_extract", "load the warehouse table",
                                  lambda: _load_extract(holding_url, records_csv))
            engine = make_engine(url)
            upgrade(engine)
            clock = FixedClock(dt.datetime(as_of.year, as_of.month, as_of.day, 12,
                                           tzinfo=dt.UTC))
            ctx = Context(sessions=session_factory(engine),
                          policy=load_policy_set([DEFAULT_PACK]), clock=clock, actor="bench")
            import_controllers(ctx, controllers_csv)
            add_agreement(ctx, code="ISA-EDU-2024", title="Educational indicators",
                          notice="3m", action="return")
            spec = source_spec("warehouse", {"kind": "sql", "url": holding_url, "query": QUERY,
                                             "mode": "full", "interval_s": 86400},
                               "bench: [sources.warehouse]", base=workdir)
            names = [make_url(u).database or "" for u in (url, holding_url)]
            first = _phase(out, "first_sync", ctx, spec, records, names)
            assert first.counts["created"] == records
            _analyze(engine)
            unchanged = _phase(out, "resync_unchanged", ctx, spec, records, names)
            assert unchanged.counts["unchanged"] == records, unchanged.counts
            changed = _change(holding_url, "UPDATE extract SET locator = "
                              "coalesce(locator, '') || '/moved' WHERE n % 100 = 0")
            out["changed_rows"] = changed
            pct = _phase(out, "resync_1pct", ctx, spec, records, names)
            assert pct.counts["updated"] == changed, (pct.counts, changed)
            _analyze(engine)
            removed = _change(holding_url, "DELETE FROM extract WHERE n % 1000 = 7")
            out["removed_rows"] = removed
            gone = _phase(out, "resync_gone", ctx, spec, records - removed, names)
            assert gone.counts["gone"] == removed, (gone.counts, removed)
            with ctx.sessions() as session:
                flagged = session.scalar(select(func.count()).select_from(Record).where(
                    Record.gone_at_source_at.is_not(None)))
            assert flagged == removed
            engine.dispose()
            out["generate_s"] = round(gen_s, 2)
            out["load_extract_s"] = round(load_s, 2)
    finally:
        if keep:
            _log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    out["cpu_s"] = dict(CPU_S)
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sources", description=__doc__)
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 4, 1))
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    configure_logging("warning", "json", b"bench")
    figures = run(records=args.records, as_of=args.as_of, seed=args.seed, keep=args.keep)
    text_out = json.dumps(figures, indent=2, sort_keys=True)
    print(text_out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text_out + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
