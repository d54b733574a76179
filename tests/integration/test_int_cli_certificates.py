"""The certificate commands end to end on SQLite: keys init and publish, issue, export,
verify (also as a controller would: a separate process with no config and no database),
deliver through a real SMTP server, show, acknowledge, register export. Real clock."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from cert_support import executed
from int_support import pupil, referral, seed_controllers
from notify_support import SmtpReceiver

from retentiond.certificates.register import decrypt_xlsx
from retentiond.cli.main import main
from retentiond.clock import SystemClock
from retentiond.lifecycle.context import Context
from retentiond.policy import load_policy_set
from retentiond.registry.db import make_engine, session_factory

ROOT_PACK = __import__("conftest").DEFAULT_PACK


@pytest.fixture
def cli(sqlite_template, tmp_path, monkeypatch, capsys):
    """Run ``retentiond --config FILE ...`` in process; return (exit status, stdout, stderr)."""
    import shutil

    shutil.copy(sqlite_template, tmp_path / "registry.db")
    smtp = SmtpReceiver().start()
    (tmp_path / "notify-secret").write_text("synthetic-secret\n")
    config = tmp_path / "retentiond.toml"
    config.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'registry.db'}"
[policies]
paths = ["{ROOT_PACK}"]
[certificates]
issuer = "Synthetic Borough Council"
issuer_contact = "ig@la01.example"
key_dir = "keys"
batch = "run"
[notify]
from = "retentiond@la01.example"
ig_email = "ig-team@la01.example"
secret_file = "notify-secret"
ack_url = "https://retentiond.la01.example/acknowledge"
[notify.smtp]
host = "127.0.0.1"
port = {smtp.port}
security = "none"
""")
    monkeypatch.setenv("RETENTIOND_ACTOR", "ig.officer")
    monkeypatch.delenv("RETENTIOND_CONFIG", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--config", str(config), *args])
        out, err = capsys.readouterr()
        return code, out, err

    run.smtp = smtp  # type: ignore[attr-defined]
    run.ctx = Context(sessions=session_factory(make_engine(f"sqlite:///{tmp_path / 'registry.db'}")),
                      policy=load_policy_set([ROOT_PACK]), clock=SystemClock(),
                      actor="ig.officer")  # type: ignore[attr-defined]
    yield run
    smtp.stop()


def test_keys_certificates_notices_register(cli, tmp_path):
    """From keys to a verified, delivered, acknowledged certificate and the register."""
    code, out, _ = cli("keys", "init")
    assert code == 0 and "key id" in out
    keys = tmp_path / "keys"
    for name in ("jws-key.jwk", "signing-key.pem", "ca-key.pem"):
        assert stat.S_IMODE(os.stat(keys / name).st_mode) == 0o600
    code, _, err = cli("keys", "init")
    assert code == 1 and "refusing to overwrite" in err
    assert cli("keys", "publish", "--out", str(tmp_path / "pub"))[0] == 0

    seed_controllers(cli.ctx, tmp_path)
    executed(cli.ctx, tmp_path, [pupil("PUP-001", "1990-01-01"), referral("REF-001", "2001-01-01")])
    code, out, _ = cli("certificates", "issue", "--format", "json")
    assert code == 0
    assert sorted(c["serial"] for c in json.loads(out)) == ["LA-01-000001", "SCH-01-000001"]
    assert cli("certificates", "export", "SCH-01-000001", "--out", str(tmp_path / "out"))[0] == 0

    # A controller checks it: another process, no config, no database.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTIOND_")}
    pdf, signed = tmp_path / "out" / "SCH-01-000001.pdf", tmp_path / "out" / "SCH-01-000001.json"
    for path, flag, key in ((pdf, "--ca", "ca.pem"), (signed, "--jwks", "jwks.json")):
        done = subprocess.run([sys.executable, "-m", "retentiond.cli.main", "certificates", "verify",
                               str(path), flag, str(tmp_path / "pub" / key)],
                              capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
        assert done.returncode == 0 and "VALID" in done.stdout, done.stdout + done.stderr
    doc = json.loads(signed.read_text())
    part = doc["parts"][0]
    p = part["payload"]
    part["payload"] = p[:40] + ("A" if p[40] != "A" else "B") + p[41:]
    signed.write_text(json.dumps(doc))
    code, _, err = cli("certificates", "verify", str(signed), "--jwks", str(tmp_path / "pub" / "jwks.json"))
    assert code == 1 and "ALTERED" in err

    code, out, _ = cli("notifications", "deliver")
    assert code == 0 and out.startswith("2 delivered")
    assert sorted(m["To"] for m in cli.smtp.received.all) == ["dpo@sch01.example", "ig@la01.example"]
    assert cli("certificates", "acknowledge", "SCH-01-000001", "--by", "J. Synthetic")[0] == 0
    code, out, _ = cli("certificates", "show", "SCH-01-000001")
    assert code == 0 and "delivery    notified" in out and "acknowledged" in out

    (tmp_path / "pw").write_text("register-pass\n")
    today = SystemClock().today().isoformat()
    code, _, _ = cli("register", "export", "--from", today, "--to", today, "--format", "xlsx",
                     "--out", str(tmp_path / "reg.xlsx"), "--password-file", str(tmp_path / "pw"))
    assert code == 0
    rows = decrypt_xlsx((tmp_path / "reg.xlsx").read_bytes(), "register-pass")
    assert len(rows) == 3 and {r[1] for r in rows[1:]} == {"PUP-001", "REF-001"}
    code, out, _ = cli("register", "export", "--from", today, "--to", today)
    assert code == 0 and out.count("\n") == 3

    assert cli("controllers", "notice", "SCH-01", "--days", "30")[0] == 0
    code, out, _ = cli("notifications", "advance")
    assert code == 0
    code, out, _ = cli("notifications", "list", "--format", "json")
    assert {n["state"] for n in json.loads(out) if n["kind"] == "certificate"} == {"delivered"}
