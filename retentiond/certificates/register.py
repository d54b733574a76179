"""The register of disposals: the record of destruction records-management practice asks for
(what was disposed of, when, why, how, on whose authority, and the certificate that says so).

Exported as CSV, or as an XLSX workbook encrypted with a password (ECMA-376 agile
encryption, as Excel does it, by msoffcrypto-tool): Excel and LibreOffice ask for the password
to open it. It holds no personal data: records are named by their register reference.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterator
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.lifecycle.sql import DONE_STATES
from retentiond.policy.engine import citations as rule_citations
from retentiond.registry.models import (
    Agreement,
    Approval,
    Certificate,
    CertificateItem,
    Controller,
    Disposal,
    DisposalExecution,
    Record,
)

LONDON = ZoneInfo("Europe/London")

COLUMNS = (
    "disposed_at", "record", "controller", "agreement", "category", "rule", "citation",
    "policy_version", "due_on", "action", "method", "system", "verification",
    "package_sha256", "destroyed_by", "destroyed_on", "destruction_method",
    "destruction_certificate_no", "approved_by", "state", "certificate", "certificate_issued_at",
    "disposal_id",
)


def _bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start 00:00, end+1 00:00) in London, as UTC instants."""
    lo = dt.datetime.combine(start, dt.time(), LONDON).astimezone(dt.UTC)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), LONDON).astimezone(dt.UTC)
    return lo, hi


def _iso(t: dt.datetime | None) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="seconds") if t else ""


def rows(ctx: Context, *, start: dt.date, end: dt.date) -> Iterator[dict[str, Any]]:
    """Every disposal carried out from ``start`` to ``end`` (London dates, inclusive), in the
    order they were carried out."""
    if end < start:
        raise LifecycleError(f"--to {end} is before --from {start}")
    lo, hi = _bounds(start, end)
    citations = rule_citations(ctx.policy)
    with ctx.sessions() as session:
        found = session.execute(
            select(Disposal, Record.record_key, Record.category, Controller.code, Agreement.code,
                   DisposalExecution, Certificate.serial, Certificate.issued_at)
            .join(Record, Record.id == Disposal.record_id)
            .join(Controller, Controller.id == Record.controller_id)
            .join(DisposalExecution, DisposalExecution.disposal_id == Disposal.id)
            .outerjoin(Agreement, Agreement.id == Record.agreement_id)
            .outerjoin(CertificateItem, CertificateItem.disposal_id == Disposal.id)
            .outerjoin(Certificate, Certificate.id == CertificateItem.certificate_id)
            .where(Disposal.state.in_(DONE_STATES), DisposalExecution.executed_at >= lo,
                   DisposalExecution.executed_at < hi)
            .order_by(DisposalExecution.executed_at, Disposal.id)
        ).all()
        ids = [r[0].id for r in found]
        approvers: dict[int, list[str]] = defaultdict(list)
        for i in range(0, len(ids), 5000):
            for did, who in session.execute(
                select(Approval.disposal_id, Approval.approver)
                .where(Approval.disposal_id.in_(ids[i:i + 5000]), Approval.voided_at.is_(None))
                .order_by(Approval.id)):
                approvers[did].append(who)
    for case, key, category, controller, agreement, ex, serial, issued_at in found:
        yield {
            "disposed_at": _iso(ex.executed_at), "record": key, "controller": controller,
            "agreement": agreement or "", "category": category, "rule": case.rule_id,
            "citation": citations.get(case.rule_id, ""), "policy_version": case.policy_version,
            "due_on": case.due_on.isoformat(), "action": case.action, "method": ex.method or "",
            "system": ex.system or "", "verification": ex.verification or "",
            "package_sha256": ex.package_sha256 or "", "destroyed_by": ex.destroyed_by or "",
            "destroyed_on": ex.destroyed_on.isoformat() if ex.destroyed_on else "",
            "destruction_method": ex.destruction_method or "",
            "destruction_certificate_no": ex.certificate_no or "",
            "approved_by": "; ".join(approvers.get(case.id, [])), "state": case.state,
            "certificate": serial or "", "certificate_issued_at": _iso(issued_at),
            "disposal_id": case.id,
        }


def write_csv(items: Iterator[dict[str, Any]], out: IO[str]) -> int:
    """Write the register as CSV; return the number of rows."""
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    n = 0
    for item in items:
        writer.writerow({k: _safe_cell(v) for k, v in item.items()})
        n += 1
    return n


def _safe_cell(value: Any) -> Any:
    """Keep spreadsheet programs from running a cell as a formula (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def xlsx_bytes(items: Iterator[dict[str, Any]], *, password: str, title: str) -> tuple[bytes, int]:
    """The register as an XLSX workbook encrypted with ``password``; and the number of rows."""
    import msoffcrypto
    from openpyxl import Workbook
    from openpyxl.styles import Font

    if not password:
        raise LifecycleError("an XLSX register needs a password (--password-file)")
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Register of disposals"
    ws.append(list(COLUMNS))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    n = 0
    for item in items:
        ws.append([_safe_cell(item[c]) for c in COLUMNS])
        n += 1
    ws.freeze_panes = "A2"
    widths = {"disposed_at": 22, "record": 18, "category": 28, "rule": 30, "citation": 40,
              "method": 36, "verification": 30, "package_sha256": 66, "approved_by": 26}
    for i, col in enumerate(COLUMNS, start=1):
        ws.column_dimensions[ws.cell(row=1, column=i).column_letter].width = widths.get(col, 16)
    wb.properties.title = title
    plain = io.BytesIO()
    wb.save(plain)
    plain.seek(0)
    encrypted = io.BytesIO()
    msoffcrypto.OfficeFile(plain).encrypt(password, encrypted)
    return encrypted.getvalue(), n


def decrypt_xlsx(data: bytes, password: str) -> list[tuple[Any, ...]]:
    """The rows of an encrypted register (to check an export, and for tests)."""
    import msoffcrypto
    from openpyxl import load_workbook

    office = msoffcrypto.OfficeFile(io.BytesIO(data))
    office.load_key(password=password)
    plain = io.BytesIO()
    office.decrypt(plain)
    plain.seek(0)
    ws = load_workbook(plain, read_only=True).active
    assert ws is not None
    return [tuple(r) for r in ws.iter_rows(values_only=True)]
