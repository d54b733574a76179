"""``controllers import`` against real SQLite and PostgreSQL: create, update, refusals."""

from __future__ import annotations

import pytest
from int_support import audit_counts, snapshot, write_csv
from sqlalchemy import select

from retentiond.ingest import ImportRefused
from retentiond.ingest.controllers import import_controllers
from retentiond.registry.models import Controller

HEADER = ("code", "name", "email", "webhook_url")


def _controllers(ctx):
    with ctx.sessions() as session:
        return {c.code: (c.name, c.email, c.webhook_url)
                for c in session.scalars(select(Controller))}


def test_import_creates_controllers(ctx, tmp_path):
    """A good file creates every controller with its optional webhook URL."""
    path = write_csv(tmp_path / "c.csv", HEADER, [
        ("SCH-01", "Synthetic School One", "dpo@sch01.example", ""),
        ("LA-01", "Synthetic Council", "ig@la01.example", "https://hooks.la01.example/x"),
    ])
    result = import_controllers(ctx, path)
    assert (result.rows, result.created, result.updated) == (2, 2, 0)
    assert _controllers(ctx) == {
        "SCH-01": ("Synthetic School One", "dpo@sch01.example", None),
        "LA-01": ("Synthetic Council", "ig@la01.example", "https://hooks.la01.example/x"),
    }
    assert audit_counts(ctx)["ControllersImported"] == 1


def test_import_without_optional_column(ctx, tmp_path):
    """The webhook_url column may be left out entirely."""
    path = write_csv(tmp_path / "c.csv", ("code", "name", "email"),
                     [("SCH-01", "Synthetic School One", "dpo@sch01.example")])
    assert import_controllers(ctx, path).created == 1


def test_reimport_updates_and_never_duplicates(ctx, tmp_path):
    """Importing a changed row updates the controller; an unchanged one is left alone."""
    first = write_csv(tmp_path / "a.csv", HEADER, [
        ("SCH-01", "Synthetic School One", "dpo@sch01.example", ""),
        ("SCH-02", "Synthetic School Two", "dpo@sch02.example", ""),
    ])
    import_controllers(ctx, first)
    second = write_csv(tmp_path / "b.csv", HEADER, [
        ("SCH-01", "Synthetic School One", "dpo@sch01.example", ""),
        ("SCH-02", "Synthetic Academy Two", "ig@sch02.example", "https://h.sch02.example/"),
    ])
    result = import_controllers(ctx, second)
    assert (result.rows, result.created, result.updated) == (2, 0, 1)
    assert _controllers(ctx)["SCH-02"] == ("Synthetic Academy Two", "ig@sch02.example",
                                           "https://h.sch02.example/")
    assert len(_controllers(ctx)) == 2


def test_jsonl_controllers(ctx, tmp_path):
    """Controllers may be imported from JSON lines."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"code": "SCH-01", "name": "Synthetic School One", '
                    '"email": "dpo@sch01.example"}\n')
    assert import_controllers(ctx, path, fmt="jsonl").created == 1


GOOD = ("LA-01", "Synthetic Council", "ig@la01.example", "")

#: Each bad file starts with a good row (line 2), so that refusal must also drop it.
BAD = [
    pytest.param(HEADER, [GOOD, ("SCH-01", "One", "not-an-email", "")], ":3: email:",
                 id="bad-email"),
    pytest.param(HEADER, [GOOD, ("SCH 01", "One", "a@b.example", "")], ":3: code:", id="bad-code"),
    pytest.param(HEADER, [GOOD, ("", "One", "a@b.example", "")], ":3: code:", id="empty-code"),
    pytest.param(HEADER, [GOOD, ("SCH-01", "", "a@b.example", "")], ":3: name:", id="empty-name"),
    pytest.param(HEADER, [GOOD, ("SCH-01", "One", "a@b.example", "ftp://x.example/")],
                 ":3: webhook_url:", id="bad-webhook"),
    pytest.param(("code", "name", "webhook_url"), [(*GOOD[:2], "")], ":1: email:",
                 id="missing-column"),
    pytest.param((*HEADER, "phone"), [(*GOOD, "0")], ":1: phone:", id="unknown-column"),
    pytest.param(HEADER, [GOOD, ("LA-01", "Two", "c@d.example", "")], ":3: code:",
                 id="duplicate-code"),
]


@pytest.mark.parametrize(("header", "rows", "expected"), BAD)
def test_bad_file_refused_whole(ctx, tmp_path, header, rows, expected):
    """A file with a bad row is refused naming file:line and field; nothing is applied."""
    path = write_csv(tmp_path / "c.csv", header, rows)
    before = snapshot(ctx)
    with pytest.raises(ImportRefused) as err:
        import_controllers(ctx, path)
    assert any(p.startswith(f"{path}{expected}") for p in err.value.problems), \
        err.value.problems
    assert snapshot(ctx) == before


def test_every_problem_is_listed(ctx, tmp_path):
    """Problems beyond the first are listed too, each with its line."""
    path = write_csv(tmp_path / "c.csv", HEADER, [
        ("SCH-01", "One", "bad", ""),
        ("SCH-02", "Two", "ok@sch02.example", ""),
        ("SCH 03", "Three", "ok@sch03.example", ""),
    ])
    with pytest.raises(ImportRefused) as err:
        import_controllers(ctx, path)
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in err.value.problems] == ["2", "4"]
    assert _controllers(ctx) == {}
