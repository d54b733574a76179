"""Check that recompute stores the same values as another version of the code.

``python -m bench.recompute_check --url URL --change NAME --out FILE`` runs ``recompute_stale``
on a registry (a copy of one kept by ``python -m bench --keep``) under the default pack with a
named change, then writes every record's stored decision, every case's state and every audit
event's content (not its chain columns), in id order, to FILE and prints its SHA-256. Run it
with the old code and the new on two copies of the same registry and compare the files byte
for byte (``cmp``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select

from retentiond.clock import FixedClock
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.recompute import recompute_stale
from retentiond.policy import load_policy_set
from retentiond.registry.db import make_engine, session_factory, upgrade
from retentiond.registry.models import Approval, AuditEvent, Disposal, Record

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PACK = ROOT / "policies" / "isa-default.toml"

#: Edits of the default pack: (old text, new text), each of which must occur exactly once.
CHANGES: dict[str, tuple[tuple[str, str], ...]] = {
    # The pack as shipped (after a bench run, whose registry is under the 26y change).
    "default": (),
    # What the benchmark changes: education records kept a year longer.
    "bench": (('period = "25y"', 'period = "26y"'),),
    # One category changes, three do not (the bench change is kept: on the registry a bench
    # run leaves, only referrals move).
    "some": (('period = "25y"', 'period = "26y"'), ('period = "6y"', 'period = "7y"')),
    # Every category: an approval count, a trigger, an action, an auto-approval.
    "all": (('approvals_required = 2\nauto_approve = false\ncitation = "ISA \'Effective Sharing'
             ' of Educational Indicators\', retention: Child Protection',
             'approvals_required = 1\nauto_approve = true\ncitation = "ISA \'Effective Sharing'
             ' of Educational Indicators\', retention: Child Protection'),
            ('trigger = "opened_on"\nperiod = "6y"', 'trigger = "opened_on"\nperiod = "5y"'),
            ('period = "25y"\naction = "delete"', 'period = "24y"\naction = "anonymise"'),
            ('period = "15y"', 'period = "16y"')),
}


def _policy(change: str, directory: Path) -> Path:
    source = DEFAULT_PACK.read_text()
    for old, new in CHANGES[change]:
        if source.count(old) != 1:
            raise SystemExit(f"change {change!r}: {old!r} does not occur once in {DEFAULT_PACK}")
        source = source.replace(old, new)
    path = directory / DEFAULT_PACK.name
    path.write_text(source)
    return path


def dump(ctx: Context, out: Path) -> str:
    """Write what recompute may touch, in id order; return the file's SHA-256."""
    h = hashlib.sha256()
    with out.open("w") as fh, ctx.sessions() as session:
        def write(kind: str, row: Sequence[Any]) -> None:
            line = json.dumps([kind, *row], default=str) + "\n"
            fh.write(line)
            h.update(line.encode())

        queries: list[tuple[str, Any]] = [
            ("record", select(
                Record.id, Record.category, Record.due_on, Record.due_action, Record.due_rule,
                Record.approvals_required, Record.auto_approve, Record.needs_attention,
                Record.policy_version, Record.rules_digest, Record.updated_at)
             .order_by(Record.id)),
            ("disposal", select(
                Disposal.id, Disposal.record_id, Disposal.state, Disposal.reason,
                Disposal.updated_at).order_by(Disposal.id)),
            ("approval", select(Approval.id, Approval.voided_at).order_by(Approval.id)),
            ("event", select(
                AuditEvent.id, AuditEvent.kind, AuditEvent.entity_id, AuditEvent.reason,
                AuditEvent.policy_version, AuditEvent.data).order_by(AuditEvent.id)),
        ]
        for kind, query in queries:
            for row in session.execute(query).yield_per(20000):
                write(kind, row)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recompute_check", description=__doc__)
    parser.add_argument("--url", required=True, help="the registry (a copy: it is changed)")
    parser.add_argument("--change", choices=sorted(CHANGES), required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 4, 1))
    args = parser.parse_args(argv)
    engine = make_engine(args.url)
    upgrade(engine)
    clock = FixedClock(dt.datetime(args.as_of.year, args.as_of.month, args.as_of.day, 13,
                                   tzinfo=dt.UTC))
    with tempfile.TemporaryDirectory() as tmp:
        policy = load_policy_set([_policy(args.change, Path(tmp))])
    ctx = Context(sessions=session_factory(engine), policy=policy, clock=clock, actor="check")
    cpu, start = time.process_time(), time.perf_counter()
    result = recompute_stale(ctx)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    digest = dump(ctx, args.out)
    print(json.dumps({"change": args.change, "result": dataclasses.asdict(result),
                      "seconds": round(wall, 2), "cpu_s": round(cpu, 2), "sha256": digest}))
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
