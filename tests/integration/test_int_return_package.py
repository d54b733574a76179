"""Returns: an encrypted package per controller, its SHA-256 recorded, then the source deleted."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json

import msoffcrypto
import openpyxl
import pytest
import pyzipper
from execution_support import (
    DUE_DOB,
    PASSWORD,
    connectors,
    events,
    holding_database,
    holding_upns,
    make_files,
    make_holding,
    make_returns,
    queue_and_approve,
    seed,
    states,
)
from msoffcrypto.exceptions import InvalidKeyError
from sqlalchemy import select

from retentiond.connectors import ConnectorRegistry, ReturnConnector
from retentiond.lifecycle.execute import execute_due, reap_leases
from retentiond.registry.models import DisposalExecution


@pytest.fixture
def holding_url(database_url, tmp_path):
    """A holding database beside the registry, on the same backend."""
    yield from holding_database(database_url, tmp_path)


def _decrypt_xlsx(data, password):
    office = msoffcrypto.OfficeFile(io.BytesIO(data))
    office.load_key(password=password)
    plain = io.BytesIO()
    office.decrypt(plain)
    plain.seek(0)
    return openpyxl.load_workbook(plain)


def _execution(ctx, disposal_id):
    with ctx.sessions() as session:
        return session.scalars(select(DisposalExecution)
                               .where(DisposalExecution.disposal_id == disposal_id)).one()


def test_return_delivers_an_xlsx_that_decrypts_with_the_controllers_password(
        ctx, tmp_path, holding_url):
    """The package opens with the controller's password only, holds the rows, and its
    SHA-256 is recorded; then the source rows are gone."""
    make_holding(holding_url, ["U1", "U2"])
    seed(ctx, tmp_path, [
        {"record_id": "R1", "system": "mis", "locator": "U1", "date_of_birth": DUE_DOB},
        {"record_id": "R2", "system": "mis", "locator": "U2", "date_of_birth": DUE_DOB,
         "controller": "SCH-02"},
    ])
    cases = queue_and_approve(ctx)
    make_returns(ctx, ["R1"])
    registry = connectors(tmp_path, holding_url)
    result = execute_due(ctx, registry, owner="w", batch_size=10, lease_s=60)
    registry.close()
    assert result.executed == 2
    package = tmp_path / "drop" / "SCH-01" / f"retentiond-disposal-{cases['R1']}.xlsx"
    data = package.read_bytes()
    assert data[:8] == bytes.fromhex("d0cf11e0a1b11ae1")  # an encrypted (CFB) container
    with pytest.raises(InvalidKeyError):
        _decrypt_xlsx(data, "not-the-password")
    wb = _decrypt_xlsx(data, PASSWORD)
    assert wb.sheetnames == ["retentiond", "pupils", "pupil_marks"]
    pupils = list(wb["pupils"].values)
    assert pupils[0] == ("upn", "given_name", "born", "note") and pupils[1][0] == "U1"
    note = wb["pupils"].cell(row=2, column=4)
    assert note.data_type == "s" and note.value.startswith("=HYPERLINK")  # data, not a formula
    assert len(list(wb["pupil_marks"].values)) == 3
    row = _execution(ctx, cases["R1"])
    digest = hashlib.sha256(data).hexdigest()
    assert row.package_sha256 == digest and row.package_name == package.name
    assert (package.parent / f"{package.name}.sha256").read_text().split()[0] == digest
    assert holding_upns(holding_url)[0] == set()
    assert not (tmp_path / "drop" / "SCH-02").exists()  # R2 was a delete, not a return
    kinds = events(ctx, cases["R1"])
    assert kinds[-2:] == ["DisposalPackageDelivered", "DisposalExecuted"]


def test_a_record_of_files_goes_back_as_an_aes_zip(ctx, tmp_path, holding_url):
    """Files are returned in an AES-256 ZIP that opens with the controller's password."""
    make_holding(holding_url, [])
    make_files(tmp_path / "files", ["case-a"])
    seed(ctx, tmp_path, [{"record_id": "F1", "system": "files", "locator": "case-a",
                          "date_of_birth": DUE_DOB}])
    cases = queue_and_approve(ctx)
    make_returns(ctx, ["F1"])
    registry = connectors(tmp_path, holding_url)
    assert execute_due(ctx, registry, owner="w", batch_size=10, lease_s=60).executed == 1
    registry.close()
    package = tmp_path / "drop" / "SCH-01" / f"retentiond-disposal-{cases['F1']}.zip"
    with pyzipper.AESZipFile(package) as zf:
        # The names anyone can list without the password reveal nothing of the originals.
        assert zf.namelist() == ["manifest.json", "files/0001.txt", "files/0002.txt"]
        with pytest.raises(RuntimeError):
            zf.read("files/0001.txt")  # no password
        zf.setpassword(PASSWORD.encode())
        manifest = json.loads(zf.read("manifest.json"))
        by_name = {f["name"]: zf.read(f["entry"]) for f in manifest["files"]}
    assert by_name == {"case-a/referral.txt": b"case case-a\n", "case-a/notes.txt": b"synthetic notes\n"}
    assert all(f["sha256"] == hashlib.sha256(by_name[f["name"]]).hexdigest()
               for f in manifest["files"])
    assert manifest["record"] == "F1"
    assert _execution(ctx, cases["F1"]).package_sha256 == hashlib.sha256(
        package.read_bytes()).hexdigest()
    assert not (tmp_path / "files" / "case-a").exists()


def test_a_controller_without_a_password_fails_and_keeps_the_source(ctx, tmp_path, holding_url):
    """No password file for the controller: a permanent failure, nothing delivered or deleted."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    queue_and_approve(ctx)
    make_returns(ctx, ["R1"])
    registry = connectors(tmp_path, holding_url, controllers=("SCH-02",))
    assert execute_due(ctx, registry, owner="w", batch_size=10, lease_s=60).failed == 1
    registry.close()
    assert states(ctx)["R1"] == "failed"
    assert holding_upns(holding_url)[0] == {"U1"}
    assert not list((tmp_path / "drop").glob("**/*.xlsx"))


class Crash(BaseException):
    """Stands for the process dying."""


class CrashOnFirstDelete:
    """The source connector; the worker 'dies' when it first tries to delete."""

    def __init__(self, inner):
        self.inner, self.name, self.kind, self.deletes = inner, inner.name, inner.kind, 0

    def delete(self, ref, key):
        self.deletes += 1
        if self.deletes == 1:
            raise Crash()
        return self.inner.delete(ref, key)

    def exists(self, ref):
        return self.inner.exists(ref)

    def export(self, ref):
        return self.inner.export(ref)

    def close(self):
        self.inner.close()


def test_a_crash_after_delivery_does_not_return_twice(ctx, clock, tmp_path, holding_url,
                                                      monkeypatch):
    """After a crash between delivery and delete, the retry uses the recorded package and
    only deletes the source."""
    make_holding(holding_url, ["U1"])
    seed(ctx, tmp_path, [{"record_id": "R1", "system": "mis", "locator": "U1",
                          "date_of_birth": DUE_DOB}])
    cases = queue_and_approve(ctx)
    make_returns(ctx, ["R1"])
    real = connectors(tmp_path, holding_url)
    source = CrashOnFirstDelete(real.get("mis"))
    registry = ConnectorRegistry({"mis": source, "returns": real.get("returns")},
                                 {"mis": "mis"})
    deliveries = []
    original = ReturnConnector.deliver
    monkeypatch.setattr(ReturnConnector, "deliver",
                        lambda self, ref, key: deliveries.append(key) or original(self, ref, key))
    with pytest.raises(Crash):
        execute_due(ctx, registry, owner="w", batch_size=10, lease_s=60)
    recorded = _execution(ctx, cases["R1"]).package_sha256
    assert recorded and holding_upns(holding_url)[0] == {"U1"}
    clock.instant += dt.timedelta(seconds=61)
    assert reap_leases(ctx) == 1
    assert execute_due(ctx, registry, owner="w2", batch_size=10, lease_s=60).executed == 1
    real.close()
    assert deliveries == [f"disposal-{cases['R1']}"]
    package = tmp_path / "drop" / "SCH-01" / f"retentiond-disposal-{cases['R1']}.xlsx"
    assert hashlib.sha256(package.read_bytes()).hexdigest() == recorded
    assert _execution(ctx, cases["R1"]).package_sha256 == recorded
    assert holding_upns(holding_url)[0] == set()
    assert events(ctx, cases["R1"]).count("DisposalPackageDelivered") == 1
