"""``holds import``: many holds from one file, all or none.

A council switching retentiond on has its list of holds already (litigation, subject access
requests, inquiries, police requests): one row a hold, the columns of ``holds place``
(``scope``, ``type``, ``reason``, ``until`` optional). Every row is checked as ``holds place``
checks one, its scope against the registry too; one wrong row refuses the file with every
problem named by line and field, and nothing is placed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from retentiond.ingest.errors import MAX_PROBLEMS, ImportRefused
from retentiond.ingest.reader import RowError, parse_date, read_rows, refuse_invisible
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.holds import HoldRequest, HoldsRefused, check_holds, place_holds

COLUMNS = ("scope", "type", "reason")
OPTIONAL = ("until",)


@dataclass(frozen=True, kw_only=True)
class HoldsImport:
    rows: int
    #: The new holds' ids, in the file's order.
    hold_ids: list[int]

    def as_json(self) -> dict[str, object]:
        return {"rows": self.rows, "placed": len(self.hold_ids),
                "first_id": self.hold_ids[0] if self.hold_ids else None,
                "last_id": self.hold_ids[-1] if self.hold_ids else None}


def _text(row: dict[str, object], field: str) -> str:
    value = row.get(field) or ""
    if not isinstance(value, str):
        raise RowError(field, f"must be text, not {value!r}")
    return refuse_invisible(field, value.strip())


def import_holds(ctx: Context, path: Path, *, fmt: str = "csv") -> HoldsImport:
    """Place every hold of ``path`` (CSV or JSON lines) in one transaction, or none."""
    def refuse(found: list[tuple[int, str, str]]) -> NoReturn:
        found.sort(key=lambda problem: problem[0])
        raise ImportRefused(str(path), [f"{path}:{line}: {field}: {message}"
                                        for line, field, message in found[:MAX_PROBLEMS]],
                            more=max(0, len(found) - MAX_PROBLEMS))

    requests: list[HoldRequest] = []
    lines: list[int] = []
    #: (line, field, message) of every problem found, row checks and registry checks alike.
    found: list[tuple[int, str, str]] = []
    try:
        for line, raw in read_rows(path, fmt, required=COLUMNS, optional=OPTIONAL):
            try:
                if "__error__" in raw:
                    raise RowError(raw.get("__field__", "(row)"), raw["__error__"])
                # The reason is checked by the lifecycle (visible text); scope and type here,
                # so that an invisible character is named as the importer names one.
                requests.append(HoldRequest(
                    scope=_text(raw, "scope"), hold_type=_text(raw, "type"),
                    reason=raw.get("reason") or "", until=parse_date("until", raw.get("until"))))
                lines.append(line)
            except RowError as exc:
                found.append((line, exc.field, str(exc)))
    except RowError as exc:
        raise ImportRefused(str(path), [f"{path}:1: {exc.field}: {exc}"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportRefused(str(path), [f"{path}: cannot be read: {exc}"]) from exc
    if found:
        # The other rows are checked against the registry too (writing nothing), so that one
        # refusal names every problem of the file.
        found.extend((lines[i], field, message) for i, field, message in check_holds(ctx, requests))
        refuse(found)
    try:
        ids = place_holds(ctx, requests, source=path.name)
    except HoldsRefused as exc:
        refuse([(lines[i], field, message) for i, field, message in exc.problems])
    return HoldsImport(rows=len(requests), hold_ids=ids)
