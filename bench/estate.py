"""A synthetic estate shaped like a large English council's (see bench/README.md for the numbers
and where they come from).

Everything is generated from one seeded random stream, subject by subject, and written straight
to CSV files, so memory stays flat however many records are asked for. Nothing is personal data:
subject and record references are opaque, dates are drawn at random, and only the names of the
controllers (schools and trusts) come from Faker's ``en_GB`` provider, because an IG officer
reading a benchmark report should see something that looks like a council's list of schools.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

RECORD_FIELDS = ["record_id", "category", "controller", "system", "locator", "subject_ref",
                 "date_of_birth", "date_of_death", "opened_on", "closed_on", "flags", "agreement"]
HOLD_FIELDS = ["scope", "type", "reason", "until"]

PUPIL = "education.pupil_record"
REFERRAL = "safeguarding.referral"
CP = "child_protection.case"
LAC = "looked_after.case_record"

COUNCIL = "LA-900"
AGREEMENT = "ISA-EDU-2024"
PRIMARY_SCHOOLS = 380
SECONDARY_SCHOOLS = 70
TRUSTS = 12

#: Days of due records the registry holds on the benchmark's as-of date: what fell due since
#: the previous evaluation, six weeks (a half term) earlier; everything due before that was
#: disposed of then. Gives about 1% of the estate due.
BACKLOG_DAYS = 42
YEAR = 365.2425

#: Share of subjects who are adults with only historic social-care files (children in care or
#: on a child protection plan decades ago); the rest are children and young people up to 25.
HISTORIC_SHARE = 0.12
#: Hold rates: a subject-level hold (subject access request, litigation, police, inquiry) is far
#: likelier for care leavers and historic case files than for a pupil.
SUBJECT_HOLD_CHILD = 0.004
SUBJECT_HOLD_HISTORIC = 0.03
RECORD_HOLD = 0.0005
HOLD_TYPES = (("subject_access", 45), ("legal", 25), ("complaint", 15), ("police", 10),
              ("inquiry", 5))


@dataclass
class EstateStats:
    """What was generated: for the report, and to check the mix against bench/README.md."""

    records: int = 0
    subjects: int = 0
    controllers: int = 0
    holds: int = 0
    categories: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, object]:
        return {
            "subjects": self.subjects, "controllers": self.controllers, "holds": self.holds,
            "category_mix": {k: round(v / max(1, self.records), 4)
                             for k, v in sorted(self.categories.items())},
        }


def _school_name(fake: object, n: int, kind: str) -> str:
    place = fake.city() if n % 3 else fake.last_name()  # type: ignore[attr-defined]
    if kind == "primary":
        suffix = random.Random(n).choice(
            ["Primary School", "Church of England Primary School", "Infant School",
             "Junior School", "Catholic Primary School", "Primary Academy"])
    else:
        suffix = random.Random(n).choice(["High School", "Academy", "Grammar School",
                                          "School", "Community College"])
    return f"{place} {suffix}"


def write_controllers(path: Path, seed: int) -> list[tuple[str, str]]:
    """The council, its maintained and academy schools and its academy trusts, by Faker en_GB.
    Returns ``(code, kind)`` pairs."""
    from faker import Faker

    fake = Faker("en_GB")
    fake.seed_instance(seed)
    rows: list[tuple[str, str, str]] = [
        (COUNCIL, "Shirebury County Council (Children's Services)", "ig@council.example")]
    kinds: list[tuple[str, str]] = [(COUNCIL, "council")]
    for n in range(PRIMARY_SCHOOLS + SECONDARY_SCHOOLS):
        kind = "primary" if n < PRIMARY_SCHOOLS else "secondary"
        code = f"SCH-900{2000 + n if kind == 'primary' else 4000 + n}"
        rows.append((code, _school_name(fake, n, kind), f"dpo{n}@schools.example"))
        kinds.append((code, kind))
    for n in range(TRUSTS):
        code = f"MAT-{n + 1:03d}"
        rows.append((code, f"{fake.last_name()} Academies Trust", f"dpo@trust{n + 1}.example"))
        kinds.append((code, "trust"))
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "name", "email"])
        w.writerows(rows)
    return kinds


def _ref(prefix: str, n: int) -> str:
    # Opaque and stable: a keyed hash of a sequence number, as a council's pseudonymised export
    # would give.
    return prefix + hashlib.blake2b(n.to_bytes(8, "big"), digest_size=8, key=b"bench").hexdigest()


class _Generator:
    def __init__(self, as_of: dt.date, seed: int, controllers: list[tuple[str, str]],
                 backlog_days: int = BACKLOG_DAYS) -> None:
        self.rng = random.Random(seed)
        self.backlog = backlog_days
        self.as_of = as_of.toordinal()
        self.primary = [c for c, k in controllers if k == "primary"]
        self.secondary = [c for c, k in controllers if k == "secondary"]
        self.trusts = [c for c, k in controllers if k == "trust"]
        self.record_no = 0

    def days(self, years: float) -> int:
        return round(years * YEAR)

    def day(self, lo: int, hi: int) -> int | None:
        return self.rng.randint(lo, hi) if lo <= hi else None

    def record(self, category: str, controller: str, system: str, subject: str,
               **dates: int | None) -> dict[str, str]:
        self.record_no += 1
        row = {"record_id": f"R{self.record_no:010d}", "category": category,
               "controller": controller, "system": system,
               "locator": f"{system}:{_ref('', self.record_no + 1_000_000_000)}",
               "subject_ref": subject, "date_of_birth": "", "date_of_death": "", "opened_on": "",
               "closed_on": "", "flags": "",
               "agreement": AGREEMENT if controller != COUNCIL else ""}
        for key, value in dates.items():
            if value is not None:
                row[key] = dt.date.fromordinal(value).isoformat()
        return row

    def subject(self, n: int) -> tuple[list[dict[str, str]], bool]:
        """The records of one subject, and whether the subject is held."""
        rng, today = self.rng, self.as_of
        ref = _ref("S-", n)
        rows: list[dict[str, str]] = []
        historic = rng.random() < HISTORIC_SHARE
        if not historic:
            dob = today - rng.randint(0, self.days(25) + self.backlog)
            age = today - dob
            adult = dob + self.days(18)
            sen = "sen" if rng.random() < 0.17 else ""
            if age >= self.days(4):
                rows.append(self.record(PUPIL, rng.choice(self.primary), "mis", ref,
                                        date_of_birth=dob, opened_on=dob + self.days(4)))
                if age >= self.days(11) and rng.random() < 0.85:
                    school = rng.choice(self.secondary if rng.random() < 0.7 else self.trusts)
                    rows.append(self.record(PUPIL, school, "mis", ref, date_of_birth=dob,
                                            opened_on=dob + self.days(11)))
                if rng.random() < 0.15:
                    rows.append(self.record(PUPIL, rng.choice(self.primary), "mis", ref,
                                            date_of_birth=dob, opened_on=dob + self.days(6)))
                for row in rows:
                    row["flags"] = sen
            if rng.random() < 0.2:
                lo = max(dob, today - self.days(6) - self.backlog)
                hi = min(today, adult)
                count = 1
                while rng.random() < 0.35:
                    count += 1
                for _ in range(count):
                    opened = self.day(lo, hi)
                    if opened is not None:
                        by_school = rng.random() < 0.3 and bool(rows)
                        rows.append(self.record(
                            REFERRAL, rows[0]["controller"] if by_school else COUNCIL,
                            "dsl" if by_school else "cssr", ref, opened_on=opened))
            if rng.random() < 0.05:
                opened = self.day(dob, min(today, adult))
                if opened is not None:
                    closed = opened + rng.randint(90, 1100)
                    rows.append(self.record(CP, COUNCIL, "cssr", ref, opened_on=opened,
                                            closed_on=closed if closed <= today else None))
            if rng.random() < 0.03:
                died = None
                if rng.random() < 0.01 and age > 30:
                    died = dob + rng.randint(30, min(age, self.days(18)))
                rows.append(self.record(LAC, COUNCIL, "cssr", ref, date_of_birth=dob,
                                        date_of_death=died, opened_on=dob + rng.randint(0, age)))
            held = rng.random() < SUBJECT_HOLD_CHILD
        else:
            dob = today - rng.randint(self.days(25), self.days(75) + self.backlog)
            system = "edms" if rng.random() < 0.6 else "paper"
            if rng.random() < 0.5:
                shut = self.day(max(dob + 60, today - self.days(40) - self.backlog),
                                dob + self.days(18))
                if shut is not None:
                    rows.append(self.record(CP, COUNCIL, system, ref,
                                            opened_on=shut - rng.randint(90, 1100),
                                            closed_on=shut))
            if not rows or rng.random() < 0.6:
                rows.append(self.record(LAC, COUNCIL, system, ref, date_of_birth=dob,
                                        opened_on=dob + rng.randint(0, self.days(17))))
            held = rng.random() < SUBJECT_HOLD_HISTORIC
        return rows, held and bool(rows)


def _hold_type(rng: random.Random) -> str:
    return rng.choices([t for t, _ in HOLD_TYPES], weights=[w for _, w in HOLD_TYPES])[0]


def write_estate(directory: Path, *, records: int, as_of: dt.date, seed: int = 2026,
                 backlog_days: int = BACKLOG_DAYS) -> tuple[Path, Path, Path, EstateStats]:
    """Write ``controllers.csv``, ``records.csv`` (exactly ``records`` rows) and ``holds.csv``
    (scopes to hold, for ``place_hold``) into ``directory``. ``backlog_days``: how far back
    the registry's due dates reach on ``as_of`` (the default gives about 1% due; a first day
    with years of backlog gives more: see ``bench/backlog.py``)."""
    stats = EstateStats()
    controllers_csv = directory / "controllers.csv"
    records_csv = directory / "records.csv"
    holds_csv = directory / "holds.csv"
    kinds = write_controllers(controllers_csv, seed)
    stats.controllers = len(kinds)
    gen = _Generator(as_of, seed, kinds, backlog_days)
    hold_rng = random.Random(seed + 1)
    month_on = (as_of + dt.timedelta(days=31)).isoformat()
    with records_csv.open("w", newline="") as rf, holds_csv.open("w", newline="") as hf:
        rw = csv.DictWriter(rf, fieldnames=RECORD_FIELDS)
        rw.writeheader()
        hw = csv.writer(hf)
        hw.writerow(HOLD_FIELDS)
        # One school's data is under a complaint to the ICO: a controller-wide hold.
        hw.writerow([f"controller:{kinds[1][0]}", "complaint",
                     "synthetic: ICO complaint about this school's records", ""])
        stats.holds += 1
        n = 0
        while stats.records < records:
            n += 1
            rows, held = gen.subject(n)
            rows = rows[:records - stats.records]
            if not rows:
                continue
            stats.subjects += 1
            for row in rows:
                rw.writerow(row)
                stats.categories[row["category"]] += 1
                if hold_rng.random() < RECORD_HOLD:
                    hw.writerow([f"record:{row['record_id']}", _hold_type(hold_rng),
                                 "synthetic: a complaint or police request about this record", ""])
                    stats.holds += 1
            stats.records += len(rows)
            if held:
                kind = _hold_type(hold_rng)
                # A subject access request has a statutory month; the others are open-ended.
                until = month_on if kind == "subject_access" else ""
                hw.writerow([f"subject:{rows[0]['subject_ref']}", kind,
                             f"synthetic: {kind.replace('_', ' ')} about this subject", until])
                stats.holds += 1
    return controllers_csv, records_csv, holds_csv, stats
