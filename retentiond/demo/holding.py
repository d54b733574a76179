"""The demo's holding systems: where its records' data lives, so that a disposal deletes
something real and the service can see it gone.

- ``mis.db``, a SQLite database standing for a school MIS and the council's referrals system:
  ``pupils`` with ``pupil_marks`` and ``pupil_attendance`` (keyed by the pupil's demo UPN) and
  ``referrals`` (keyed by the referral's reference);
- ``case-files/``, a folder per child protection or looked-after child case record;
- ``returns/``, the drop folder of the return connector, and ``return-passwords/``, one
  package password per controller.

The content is synthetic and describes nobody: year groups, marks, attendance counts and
outcomes drawn at random, and case files that say they are made up.
"""

from __future__ import annotations

import os
import random
import secrets
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS pupils (
    upn TEXT PRIMARY KEY, year_group TEXT NOT NULL, sen_support INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pupil_marks (
    id INTEGER PRIMARY KEY, upn TEXT NOT NULL REFERENCES pupils (upn), subject TEXT NOT NULL,
    mark INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pupil_attendance (
    id INTEGER PRIMARY KEY, upn TEXT NOT NULL REFERENCES pupils (upn), term TEXT NOT NULL,
    sessions_possible INTEGER NOT NULL, sessions_attended INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS referrals (
    ref TEXT PRIMARY KEY, source TEXT NOT NULL, outcome TEXT NOT NULL);
"""
YEAR_GROUPS = ["R", *(str(y) for y in range(1, 14))]
SUBJECTS = ("English", "Mathematics", "Science", "Computing")
TERMS = ("autumn", "spring", "summer")
SOURCES = ("school", "health visitor", "police", "GP", "anonymous")
OUTCOMES = ("no further action", "early help", "section 17 assessment", "section 47 enquiry")


@dataclass(frozen=True, kw_only=True)
class Holding:
    """Where the demo's holding systems are."""

    root: Path

    @property
    def mis_db(self) -> Path:
        return self.root / "mis.db"

    @property
    def case_files(self) -> Path:
        return self.root / "case-files"

    @property
    def returns(self) -> Path:
        return self.root / "returns"

    @property
    def return_passwords(self) -> Path:
        return self.root / "return-passwords"


def build_holding(holding: Holding, records: Iterable[tuple[str, str]],
                  controllers: Iterable[str], *, seed: int = 2026) -> Counter[str]:
    """Put each record's data (``(system, locator)`` pairs) where its connector looks for it,
    and a return password for each controller; what is there already is left alone. Run once,
    when the records are loaded (demo/site.py): a later run would bring back data a disposal
    deleted. Returns how many of each it made."""
    made: Counter[str] = Counter()
    holding.case_files.mkdir(parents=True, exist_ok=True)
    holding.returns.mkdir(parents=True, exist_ok=True)
    holding.return_passwords.mkdir(parents=True, exist_ok=True)
    os.chmod(holding.return_passwords, 0o700)
    for code in controllers:
        path = holding.return_passwords / code
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(18) + "\n")
            made["return passwords"] += 1
    with sqlite3.connect(holding.mis_db) as db:
        db.executescript(SCHEMA)
        for system, locator in records:
            rng = random.Random(f"{seed}:{locator}")
            if system == "mis":
                if db.execute("INSERT OR IGNORE INTO pupils VALUES (?, ?, ?)",
                              (locator, rng.choice(YEAR_GROUPS), int(rng.random() < 0.15))
                              ).rowcount:
                    db.executemany("INSERT INTO pupil_marks (upn, subject, mark) VALUES (?, ?, ?)",
                                   [(locator, s, rng.randint(20, 100)) for s in SUBJECTS])
                    db.executemany(
                        "INSERT INTO pupil_attendance (upn, term, sessions_possible, "
                        "sessions_attended) VALUES (?, ?, ?, ?)",
                        [(locator, t, 130, rng.randint(95, 130)) for t in TERMS])
                    made["pupils"] += 1
            elif system == "referrals":
                made["referrals"] += db.execute(
                    "INSERT OR IGNORE INTO referrals VALUES (?, ?, ?)",
                    (locator, rng.choice(SOURCES), rng.choice(OUTCOMES))).rowcount
            elif system == "case-files":
                folder = holding.case_files / locator
                if not folder.exists():
                    folder.mkdir(parents=True)
                    (folder / "summary.txt").write_text(
                        f"Case record {locator}: a synthetic demonstration case file.\n"
                        "It is made up and describes no real person.\n", encoding="utf-8")
                    (folder / "chronology.txt").write_text("".join(
                        f"Entry {i}: {rng.choice(OUTCOMES)} (synthetic)\n"
                        for i in range(1, rng.randint(3, 8))), encoding="utf-8")
                    made["case files"] += 1
    return made


_COUNTS = {table: f"SELECT count(*) FROM {table}"  # noqa: S608 (fixed table names)
           for table in ("pupils", "pupil_marks", "pupil_attendance", "referrals")}


def holding_counts(holding: Holding) -> dict[str, int]:
    """What the holding systems hold now, for the demo page."""
    with sqlite3.connect(f"file:{holding.mis_db}?mode=ro", uri=True) as db:
        counts = {f"mis.db {table}": int(db.execute(query).fetchone()[0])
                  for table, query in _COUNTS.items()}
    counts["case-files folders"] = sum(1 for _ in holding.case_files.glob("*/*"))
    counts["returns packages"] = sum(1 for _ in holding.returns.rglob("*.zip")) + sum(
        1 for _ in holding.returns.rglob("*.xlsx"))
    return counts


def connectors_toml(holding: Holding) -> str:
    """The ``[connectors.*]`` tables that serve the demo's records."""
    url = f"sqlite:///{holding.mis_db}"
    return f'''
[connectors.mis]
kind = "sql"
url = "{url}"
table = "pupils"
key_column = "upn"
children = [{{ table = "pupil_marks", key_column = "upn" }},
            {{ table = "pupil_attendance", key_column = "upn" }}]

[connectors.referrals]
kind = "sql"
url = "{url}"
table = "referrals"
key_column = "ref"

[connectors.casefiles]
kind = "filesystem"
systems = ["case-files"]
root = "{holding.case_files}"

[connectors.paper]
kind = "manual"
systems = ["paper-store"]
instructions = "Demo: these paper files are imaginary. Confirm with any evidence."

[connectors.returns]
kind = "return"
drop_dir = "{holding.returns}"
password_dir = "{holding.return_passwords}"
'''
