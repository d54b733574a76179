"""Hostile or careless import files (issue 11, item 9), on SQLite and PostgreSQL: a NUL byte or
another control or invisible character in any text field, and a controller webhook that
points where this service must never POST, are refused at import with the file, the line and
the field; nothing of the file is applied."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from int_support import (
    cp_case,
    load_records,
    pupil,
    records_by_key,
    referral,
    seed_controllers,
    snapshot,
    write_csv,
    write_records,
)

from retentiond.ingest import ImportRefused
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.agreements import add_agreement
from retentiond.lifecycle.context import Context

GOOD = [referral("R-G1", "2019-01-01"), pupil("R-G2", "2004-02-29")]

#: (field, hostile value, the character the error must name)
HOSTILE_TEXT = [
    ("locator", "/srv/cases/4471\x00/../../etc", "U+0000"),
    ("locator", "cases/\u202eexe.pdf", "U+202E"),
    ("record_id", "R-\x00B", "U+0000"),
    ("subject_ref", "S-0042\u200b", "U+200B"),
    ("system", "case-db\x07", "U+0007"),
    ("controller", "SCH-01\x00", "U+0000"),
    ("agreement", "ISA\u2028-01", "U+2028"),
    ("category", "safeguarding.referral\x00", "U+0000"),
    ("locator", "box 12\u00a0shelf 3", "U+00A0"),
    ("locator", "row\t42", "U+0009"),
]


@pytest.fixture
def base(ctx: Context, tmp_path: Path) -> Context:
    seed_controllers(ctx, tmp_path)
    add_agreement(ctx, code="ISA-01", title="Synthetic ISA", notice="1m", action="return")
    return ctx


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize(("field", "value", "char"), HOSTILE_TEXT,
                         ids=[f"{f}-{c}" for f, _, c in HOSTILE_TEXT])
def test_control_or_invisible_character_is_refused(base: Context, tmp_path: Path, suffix: str,
                                                   field: str, value: str, char: str) -> None:
    """A NUL byte, a bidi override, a zero-width space, a line separator, a tab or a
    non-breaking space inside a text field refuses the file, naming file, line, field and
    character; the good rows before it are not applied."""
    load_records(base, tmp_path, [referral("R-OLD", "2010-01-01")])
    before = snapshot(base)
    bad = {**referral("R-B", "2019-01-01", system="case-db", locator="cases/1",
                      subject_ref="S-1", agreement="ISA-01"), field: value}
    path = write_records(tmp_path / f"bad{suffix}", [*GOOD, bad])
    line = 4 if suffix == ".csv" else 3
    with pytest.raises(ImportRefused) as err:
        import_records(base, path, fmt=suffix.lstrip("."))
    [problem] = err.value.problems
    assert problem.startswith(f"{path}:{line}: {field}: holds {char} "), problem
    assert "control and invisible characters are not allowed" in problem
    assert snapshot(base) == before


def test_ordinary_text_is_still_accepted(base: Context, tmp_path: Path) -> None:
    """Spaces, accents, Welsh and slashes in locators and names are not refused."""
    load_records(base, tmp_path, [
        referral("R-1", "2019-01-01", locator="Ysgol Gynradd/ffeiliau achos 12", system="mis"),
        cp_case("R-2", "2001-01-01", locator="archive box 7 – shelf 3 (café)"),
    ])
    records = records_by_key(base)
    assert records["R-1"].locator == "Ysgol Gynradd/ffeiliau achos 12"
    assert records["R-2"].locator == "archive box 7 – shelf 3 (café)"


HEADER = ("code", "name", "email", "webhook_url")
OK_ROW = ("LA-01", "Synthetic Council", "ig@la01.example", "https://hooks.la01.example/x")


def fake_dns(answers: dict[str, str]) -> Any:
    """A resolver answering like ``socket.getaddrinfo`` for the names given (the name system is
    outside this service; the checks on its answers are what is tested), and really resolving
    everything else (numeric forms such as ``2852039166``)."""
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return socket.getaddrinfo(host, port, *args, **kwargs)
    return resolve


DNS = fake_dns({"hooks.sch01.example": "169.254.169.254", "intranet.sch01.example": "10.20.0.7"})

REFUSED_HOOKS = [
    ("http://hooks.sch01.example.org/retention", "must be https://"),
    ("https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata service"),
    ("https://[fd00:ec2::254]/", "fd00:ec2::254 is a cloud metadata service"),
    ("https://[::ffff:169.254.169.254]/", "is a cloud metadata service"),
    ("https://2852039166/", "resolves to 169.254.169.254, a cloud metadata service"),
    ("https://169.254.10.1/hook", "is a link-local address"),
    ("https://[fe80::1]/hook", "is a link-local address"),
    ("https://0.0.0.0/hook", "is the unspecified address"),
    ("https://[::]/hook", "is the unspecified address"),
    ("https://10.1.2.3/hook", "is a private network address"),
    ("https://192.168.0.10/hook", "is a private network address"),
    ("https://hooks.sch01.example/x", "resolves to 169.254.169.254, a cloud metadata service"),
    ("https://intranet.sch01.example/x", "resolves to 10.20.0.7, a private network address"),
    ("https://user:pw@hooks.la02.example/x", "must not carry a user name or password"),
    ("ftp://hooks.la02.example/x", "is not an https:// URL"),
]


@pytest.mark.parametrize(("url", "why"), REFUSED_HOOKS, ids=[u for u, _ in REFUSED_HOOKS])
def test_webhook_that_must_not_be_called_is_refused(ctx: Context, tmp_path: Path, url: str,
                                                    why: str) -> None:
    """http:// to another host, metadata, link-local, unspecified and private addresses
    (named or resolved) are refused naming file, line and field; nothing is applied."""
    path = write_csv(tmp_path / "c.csv", HEADER, [OK_ROW, ("SCH-01", "One", "a@b.example", url)])
    before = snapshot(ctx)
    with pytest.raises(ImportRefused) as err:
        import_controllers(ctx, path, resolver=DNS)
    [problem] = err.value.problems
    assert problem.startswith(f"{path}:3: webhook_url: webhook address refused: "), problem
    assert why in problem, problem
    assert snapshot(ctx) == before


def test_private_networks_only_with_the_setting(ctx: Context, tmp_path: Path) -> None:
    """``allow_private_webhooks`` lets a receiver inside the council's network in, never a
    metadata or link-local one; loopback over http is always allowed."""
    rows = [("SCH-01", "One", "a@b.example", "https://intranet.sch01.example/x"),
            ("SCH-02", "Two", "c@d.example", "https://10.1.2.3:8443/hook"),
            ("SCH-03", "Three", "e@f.example", "http://127.0.0.1:8080/hook"),
            ("SCH-04", "Four", "g@h.example", "http://localhost:8080/hook")]
    path = write_csv(tmp_path / "c.csv", HEADER, rows)
    assert import_controllers(ctx, path, allow_private_webhooks=True, resolver=DNS).created == 4
    metadata = write_csv(tmp_path / "m.csv", HEADER, [
        ("SCH-05", "Five", "i@j.example", "https://hooks.sch01.example/x")])
    with pytest.raises(ImportRefused, match="cloud metadata service"):
        import_controllers(ctx, metadata, allow_private_webhooks=True, resolver=DNS)


@pytest.mark.parametrize(("field", "value"), [("name", "Synthetic School\x00One"),
                                              ("email", "dpo\x00@sch01.example"),
                                              ("code", "SCH-01\u200b"),
                                              ("webhook_url", "https://hooks.la01.example/\x00")])
def test_controller_text_with_control_characters_is_refused(ctx: Context, tmp_path: Path,
                                                            field: str, value: str) -> None:
    """The controllers file gets the same refusal of control and invisible characters."""
    row = dict(zip(HEADER, ("SCH-01", "Synthetic School One", "dpo@sch01.example", ""),
                   strict=True))
    row[field] = value
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ImportRefused) as err:
        import_controllers(ctx, path, fmt="jsonl")
    [problem] = err.value.problems
    assert problem.startswith(f"{path}:1: {field}: holds U+"), problem
