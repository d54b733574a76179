"""``python -m bench --records N --backend sqlite|postgresql [--json FILE] [--keep]``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from bench import run as bench_run
from bench.execute import EXECUTE_MAX
from bench.run import run
from retentiond.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--records", type=int, required=True, help="records in the estate")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], required=True)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory and the database")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 4, 1),
                        help="the evaluation date the estate is built around (default 2026-04-01)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--execute", type=int, default=EXECUTE_MAX, metavar="N",
                        help="cases to approve, execute and certify (at most those due; "
                        f"default {EXECUTE_MAX:,})")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="write a pyinstrument profile of each phase to DIR (needs "
                        "pyinstrument; profiled timings are slower: do not report them)")
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    if args.execute < 1:
        parser.error("--execute must be at least 1")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        bench_run.PROFILE_DIR = args.profile
    # The product's own log lines go to stderr; per-hold info lines would drown the phases.
    configure_logging(level="warning")
    figures = run(records=args.records, backend=args.backend, as_of=args.as_of, seed=args.seed,
                  keep=args.keep, execute_max=args.execute)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
