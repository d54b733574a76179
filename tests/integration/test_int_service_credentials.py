"""What ``retentiond init`` writes works for the service as systemd runs it: a user who cannot
look into ``/etc/retentiond/credentials`` (0700 root), given the secrets the unit's
``LoadCredential=`` lines name in ``$CREDENTIALS_DIRECTORY``."""

from __future__ import annotations

import datetime as dt
import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from retentiond.certificates.keys import load_signer
from retentiond.certificates.settings import certificate_settings
from retentiond.config import load_config
from retentiond.firstrun import init
from retentiond.notify.settings import notify_settings

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "retentiond.service"
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


def credentials_of_the_unit() -> dict[str, Path]:
    """``LoadCredential=NAME:PATH`` lines of the unit: name -> path under /etc/retentiond."""
    out = {}
    for line in UNIT.read_text().splitlines():
        if line.startswith("LoadCredential="):
            name, _, path = line.removeprefix("LoadCredential=").partition(":")
            out[name] = Path(path)
    return out


@pytest.fixture
def world() -> Iterator[Path]:
    """A folder others may traverse (pytest's own are 0700), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="retentiond-creds-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_service_user(check: Callable[[], None]) -> None:
    """Run ``check`` as a user who is not the owner of the credentials: as root, in a child
    process that becomes ``nobody``; otherwise the caller has made the folder unreadable."""
    if os.geteuid() != 0:
        check()
        return
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the outcome through the pipe, never return
        os.close(read)
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            check()
            message = b"ok"
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}".encode()
        os.write(write, message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        outcome = fh.read().decode()
    os.waitpid(pid, 0)
    assert outcome == "ok", outcome


def test_the_service_reads_its_secrets_from_credentials(world, monkeypatch):
    """With the folder init wrote closed to it, the service user gets the pseudonym key, the
    notification secret and the signing keys from $CREDENTIALS_DIRECTORY, named as the unit
    loads them; each is the one init made."""
    etc = world / "etc"
    user = "nobody" if os.geteuid() == 0 else None
    init(etc, issuer="Synthetic Borough Council", now=NOW, user=user,
         database_url=f"sqlite:///{world / 'state' / 'retentiond.db'}")
    creds = world / "run-credentials"
    creds.mkdir()
    for name, path in credentials_of_the_unit().items():
        source = etc / path.relative_to("/etc/retentiond")
        assert source.is_file(), f"the unit loads {path}, which init does not write"
        shutil.copy(source, creds / name)
    if user:
        nobody = pwd.getpwnam(user)
        os.chown(creds, nobody.pw_uid, nobody.pw_gid)
        for f in creds.iterdir():
            os.chown(f, nobody.pw_uid, nobody.pw_gid)
    else:
        os.chmod(etc / "credentials", 0o000)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("RETENTIOND_PSEUDONYM_KEY_FILE", str(creds / "pseudonym-key"))
    expected_secret = (etc / "credentials" / "notify-secret").read_bytes().strip() if user \
        else (creds / "notify-secret").read_bytes().strip()
    expected_key = (creds / "pseudonym-key").read_bytes().strip()

    def check() -> None:
        with pytest.raises(PermissionError):
            (etc / "credentials" / "notify-secret").read_bytes()
        cfg = load_config(str(etc / "retentiond.toml"))
        assert cfg.pseudonym_key == expected_key
        assert notify_settings(cfg).secret == expected_secret
        signer = load_signer(certificate_settings(cfg))
        assert signer.kid

    try:
        as_service_user(check)
    finally:
        os.chmod(etc / "credentials", 0o700)
