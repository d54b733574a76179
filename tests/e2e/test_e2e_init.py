"""``retentiond init``: a first run for a platform team, as the command (a subprocess) does it;
and ``db upgrade`` on PostgreSQL waiting for the migration advisory lock."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "Synthetic Borough Council"
KEYS = ("jws-key.jwk", "jws-cert.pem", "signing-key.pem", "signing-cert.pem", "ca-cert.pem",
        "ca-key.pem")
#: The key registry/db.py's upgrade() locks on PostgreSQL.
MIGRATION_LOCK = 74210001


def retentiond(*args: str, cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The command as an operator runs it: no RETENTIOND_* variables from the test runner."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RETENTIOND_")}
    clean.update({"HOME": str(cwd), "XDG_DATA_HOME": str(cwd / "data")}, **(env or {}))
    return subprocess.run([sys.executable, "-m", "retentiond.cli.main", *args], cwd=cwd,
                          env=clean, capture_output=True, text=True, timeout=timeout)


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root``: mode and SHA-256 (the database left out: it is not ours)."""
    return {str(p.relative_to(root)): (stat.S_IMODE(p.stat().st_mode),
                                       hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() and "retentiond.db" not in p.name}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def empty_pg(pg_admin: object) -> Iterator[str]:
    """An empty PostgreSQL database (no schema); its URL."""
    name = f"retentiond_init_{uuid.uuid4().hex[:10]}"
    with pg_admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = str(pg_admin.url.set(database=name).render_as_string(hide_password=False))  # type: ignore[attr-defined]
    yield url.replace("postgresql+psycopg://", "postgresql://")
    with pg_admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_init_writes_a_working_setup_with_safe_permissions(tmp_path):
    """init writes the config, packs, secrets and keys with the documented modes, migrates a
    new SQLite registry (0600), and the service and commands accept the result."""
    etc = tmp_path / "etc"
    done = retentiond("init", "--dir", str(etc), "--issuer", ISSUER, "--contact",
                      "ig@council.example", "--url", "https://retention.council.example/",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Next" in done.stdout and f"--config {etc / 'retentiond.toml'}" in done.stdout
    expected = {
        "retentiond.toml": 0o640, "policies/isa-default.toml": 0o644,
        "policies-available/england-wider.toml": 0o644, "credentials/pseudonym.key": 0o600,
        "credentials/notify-secret": 0o600, "credentials/keys/jws-key.jwk": 0o600,
        "credentials/keys/signing-key.pem": 0o600, "credentials/keys/ca-key.pem": 0o600,
        "credentials/keys/jws-cert.pem": 0o644, "credentials/keys/signing-cert.pem": 0o644,
        "credentials/keys/ca-cert.pem": 0o644,
    }
    assert {k: m for k, (m, _) in snapshot(etc).items()} == expected
    assert mode(etc / "credentials") == 0o700 and mode(etc / "credentials" / "keys") == 0o700
    assert mode(etc / "retentiond.db") == 0o600
    assert not list(etc.rglob("*.tmp"))
    config = tomllib.loads((etc / "retentiond.toml").read_text())
    assert config["certificates"]["issuer"] == ISSUER
    assert config["notify"]["ack_url"] == "https://retention.council.example/acknowledge"
    assert config["web"]["public_url"] == "https://retention.council.example"
    assert config["notify"]["verify_url"] == "https://retention.council.example/keys/ca.pem"
    assert config["database"]["url"] == f"sqlite:///{etc / 'retentiond.db'}"
    secrets = [(etc / "credentials" / n).read_bytes() for n in ("pseudonym.key", "notify-secret")]
    assert secrets[0] != secrets[1] and all(len(s.strip()) == 44 for s in secrets)

    cfg = ("--config", str(etc / "retentiond.toml"))
    status = retentiond(*cfg, "db", "status", cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    shown = retentiond(*cfg, "policies", "show", "--format", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    packs = json.loads(shown.stdout)["packs"]
    assert [p["path"] for p in packs] == [str(etc / "policies" / "isa-default.toml")]
    once = retentiond(*cfg, "run", "--once", cwd=tmp_path)
    assert once.returncode == 0, once.stdout + once.stderr
    assert "certify: ok" in once.stdout and "deliver: ok" in once.stdout


def test_init_refuses_to_overwrite_and_changes_nothing(tmp_path):
    """A second init, or one finding a single secret in the way, is refused naming the files,
    and leaves every file as it was; --force replaces the keys and secrets."""
    etc = tmp_path / "etc"
    assert retentiond("init", "--dir", str(etc), "--issuer", ISSUER, cwd=tmp_path).returncode == 0
    before = snapshot(etc)
    again = retentiond("init", "--dir", str(etc), "--issuer", "Another Council", cwd=tmp_path)
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr and "ca-key.pem" in again.stderr
    assert snapshot(etc) == before

    # Only the pseudonym key in the way (say, restored from a backup): still refused, nothing
    # written beside it.
    other = tmp_path / "other"
    (other / "credentials").mkdir(parents=True)
    (other / "credentials" / "pseudonym.key").write_text("kept\n")
    refused = retentiond("init", "--dir", str(other), "--issuer", ISSUER, cwd=tmp_path)
    assert refused.returncode == 1 and "pseudonym.key" in refused.stderr
    assert sorted(p.name for p in other.rglob("*")) == ["credentials", "pseudonym.key"]

    forced = retentiond("init", "--dir", str(etc), "--issuer", "Another Council", "--force",
                        cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    after = snapshot(etc)
    for name in ("credentials/keys/jws-key.jwk", "credentials/pseudonym.key",
                 "credentials/notify-secret", "retentiond.toml"):
        assert after[name][1] != before[name][1], name
    assert tomllib.loads((etc / "retentiond.toml").read_text())["certificates"]["issuer"] \
        == "Another Council"


def test_init_does_not_follow_a_planted_link(tmp_path):
    """A symbolic link planted where init writes a secret's temporary file does not receive the
    secret: the link is replaced and its target left alone."""
    etc = tmp_path / "etc"
    (etc / "credentials").mkdir(parents=True)
    target = tmp_path / "elsewhere"
    target.write_text("untouched\n")
    (etc / "credentials" / "pseudonym.key.tmp").symlink_to(target)
    done = retentiond("init", "--dir", str(etc), "--issuer", ISSUER, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert target.read_text() == "untouched\n"
    assert mode(etc / "credentials" / "pseudonym.key") == 0o600
    assert not (etc / "credentials" / "pseudonym.key.tmp").exists()


@pytest.mark.parametrize("url, message", [
    ("postgresql://retentiond:hunter2@127.0.0.1/retentiond", "put no password in the config"),
    ("mysql://127.0.0.1/retentiond", "use sqlite:/// or postgresql://"),
    ("postgresql://retentiond@127.0.0.1:1/retentiond", "cannot reach the database"),
])
def test_init_refuses_a_bad_database_and_writes_nothing(tmp_path, url, message):
    """A database URL with a password, of another kind, or that does not answer is refused
    before anything is written (and the password is not echoed)."""
    etc = tmp_path / "etc"
    done = retentiond("init", "--dir", str(etc), "--issuer", ISSUER, "--database-url", url,
                      cwd=tmp_path)
    assert done.returncode == 1
    assert message in done.stderr and "hunter2" not in done.stderr + done.stdout
    assert not etc.exists() or not any(etc.iterdir())


def test_init_needs_an_issuer(tmp_path):
    """The issuer cannot be left out or blank: it is what every certificate states."""
    assert retentiond("init", "--dir", str(tmp_path / "a"), cwd=tmp_path).returncode == 2
    blank = retentiond("init", "--dir", str(tmp_path / "b"), "--issuer", "  ", cwd=tmp_path)
    assert blank.returncode == 1 and "--issuer" in blank.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_init_as_root_gives_the_service_user_its_files(tmp_path):
    """Run as root with --user, the SQLite registry belongs to the service user and the config
    to root with the service user's group (0640); secrets stay root's."""
    import grp
    import pwd

    user = pwd.getpwnam("nobody")
    etc = tmp_path / "etc"
    done = retentiond("init", "--dir", str(etc), "--issuer", ISSUER, "--user", "nobody",
                      "--database-url", f"sqlite:///{tmp_path / 'state' / 'retentiond.db'}",
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    db = (tmp_path / "state" / "retentiond.db").stat()
    assert (db.st_uid, db.st_gid) == (user.pw_uid, user.pw_gid)
    assert (tmp_path / "state").stat().st_uid == user.pw_uid
    conf = (etc / "retentiond.toml").stat()
    assert (conf.st_uid, grp.getgrgid(conf.st_gid).gr_gid) == (0, user.pw_gid)
    assert (etc / "credentials" / "keys" / "jws-key.jwk").stat().st_uid == 0
    nobody = retentiond("init", "--dir", str(tmp_path / "x"), "--issuer", ISSUER,
                        "--user", "no-such-user-here", cwd=tmp_path)
    assert nobody.returncode == 1 and "no such user" in nobody.stderr


@pytest.mark.postgres
def test_init_migrates_postgresql(tmp_path, empty_pg):
    """With a PostgreSQL URL, init creates the schema and the service runs every job on it."""
    etc = tmp_path / "etc"
    done = retentiond("init", "--dir", str(etc), "--issuer", ISSUER, "--database-url", empty_pg,
                      cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "at revision" in done.stdout
    cfg = ("--config", str(etc / "retentiond.toml"))
    assert retentiond(*cfg, "db", "status", cwd=tmp_path).returncode == 0
    once = retentiond(*cfg, "run", "--once", cwd=tmp_path)
    assert once.returncode == 0, once.stdout + once.stderr


@pytest.mark.postgres
def test_db_upgrade_waits_for_the_migration_lock(tmp_path, empty_pg):
    """On PostgreSQL, 'db upgrade' takes the migration advisory lock: while another session
    holds it the upgrade waits (seen in pg_locks) and migrates nothing; once it is released the
    upgrade finishes."""
    engine = create_engine(empty_pg.replace("postgresql://", "postgresql+psycopg://"),
                           isolation_level="AUTOCOMMIT")
    env = {"RETENTIOND_DATABASE_URL": empty_pg}
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RETENTIOND_")}
        proc = subprocess.Popen([sys.executable, "-m", "retentiond.cli.main", "db", "upgrade"],
                                cwd=tmp_path, env={**clean, **env, "HOME": str(tmp_path)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            waiting = 0
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not waiting:
                waiting = holder.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = :k AND NOT granted"), {"k": MIGRATION_LOCK}).scalar_one()
                time.sleep(0.2)
            assert waiting == 1, "db upgrade did not wait for the advisory lock"
            assert proc.poll() is None
            tables = holder.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            )).scalar_one()
            assert tables == 0
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        out, err = proc.communicate(timeout=120)
    engine.dispose()
    assert proc.returncode == 0, err
    assert " is at revision " in out
