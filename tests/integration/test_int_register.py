"""The register of disposals: CSV, and an XLSX that opens only with its password."""

from __future__ import annotations

import csv
import datetime as dt
import io

import msoffcrypto
import pytest
from cert_support import make_keys, signer_for, standard_set
from conftest import TODAY

from retentiond.certificates import issue_certificates
from retentiond.certificates.register import COLUMNS, decrypt_xlsx, rows, write_csv, xlsx_bytes


@pytest.fixture
def disposed(ctx, tmp_path, tmp_path_factory):
    """Five disposals carried out TODAY, certified."""
    standard_set(ctx, tmp_path)
    issue_certificates(ctx, signer_for(make_keys(tmp_path_factory.mktemp("k"))), batch="run")
    return ctx


def test_csv_has_every_disposal_in_the_period(disposed):
    """One row per disposal carried out in the period, with its authority and certificate."""
    out = io.StringIO()
    assert write_csv(rows(disposed, start=TODAY, end=TODAY), out) == 5
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(table[0]) == COLUMNS
    by_ref = {r["record"]: r for r in table}
    assert by_ref["PUP-001"]["certificate"] == "SCH-01-000001"
    assert by_ref["PUP-001"]["approved_by"] == "officer.one"
    assert by_ref["PUP-002"]["package_sha256"] == "ab" * 32
    assert by_ref["PUP-003"]["destroyed_by"] == "Shred-It Synthetic Ltd"
    assert by_ref["REF-001"]["citation"]
    assert "S-PUP-001" not in out.getvalue()
    day_after = TODAY + dt.timedelta(days=1)
    assert list(rows(disposed, start=day_after, end=day_after)) == []


def test_xlsx_is_encrypted_and_opens_with_its_password(disposed):
    """The workbook is an encrypted OLE file; the password opens it, another does not."""
    data, n = xlsx_bytes(rows(disposed, start=TODAY, end=TODAY), password="correct horse",
                         title="register")
    assert n == 5
    assert data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # not a readable zip
    assert msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
    table = decrypt_xlsx(data, "correct horse")
    assert table[0] == COLUMNS and len(table) == 6
    with pytest.raises(msoffcrypto.exceptions.InvalidKeyError):
        decrypt_xlsx(data, "wrong")
