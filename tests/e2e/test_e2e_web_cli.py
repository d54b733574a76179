"""The command line around the web app, as subprocesses: ``users add|list|token|disable``
and ``retentiond web`` serving until SIGTERM."""

from __future__ import annotations

import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
RETENTIOND = [sys.executable, "-m", "retentiond.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RETENTIOND_CONFIG": str(config), "RETENTIOND_LOG_LEVEL": "warning"}
    return subprocess.run([*RETENTIOND, *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def test_users_and_web_serve_until_sigterm(tmp_path: Path) -> None:
    """Add a user (password on stdin), make a token, serve, call the API with it, stop cleanly."""
    port = _free_port()
    config = tmp_path / "retentiond.toml"
    config.write_text(f"""
[database]
url = "sqlite:///{tmp_path / 'r.db'}"
[policies]
paths = ["{ROOT / 'policies' / 'isa-default.toml'}"]
[web]
listen = "127.0.0.1:{port}"
cookie_secure = false
""")
    assert _run(config, "db", "upgrade").returncode == 0
    # The operating-system user running the commands is the officer: a token is made by its
    # own user only.
    officer = getpass.getuser()
    added = _run(config, "users", "add", officer, "--role", "ig_officer,approver",
                 stdin="a long enough password\n")
    assert added.returncode == 0, added.stderr
    weak = _run(config, "users", "add", "weak", "--role", "auditor", stdin="short\n")
    assert weak.returncode == 1 and "at least 12 characters" in weak.stderr
    assert _run(config, "users", "add", "approver.two", "--role", "approver",
                "--oidc-only").returncode == 0
    listed = json.loads(_run(config, "users", "list", "--format", "json").stdout)
    assert sorted((u["username"], u["roles"]) for u in listed) == sorted(
        [(officer, ["approver", "ig_officer"]), ("approver.two", ["approver"])])
    for_another = _run(config, "users", "token", "approver.two", "--name", "tests")
    assert for_another.returncode == 1 and for_another.stdout == ""
    assert "a token is made by its own user only" in for_another.stderr
    token = _run(config, "users", "token", officer, "--name", "tests").stdout.strip()
    assert token.startswith("rtd_")
    tokens = json.loads(_run(config, "users", "tokens", "--format", "json").stdout)
    assert [(t["username"], t["issued_by"], t["revoked_at"]) for t in tokens] == [
        (officer, officer, None)]

    env = {**os.environ, "RETENTIOND_CONFIG": str(config), "RETENTIOND_LOG_LEVEL": "warning"}
    server = subprocess.Popen([*RETENTIOND, "web"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        me = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["username"] == officer
        second = _run(config, "web")
        assert second.returncode == 1 and "could not start" in second.stderr
        assert f"[web] listen in {config} chose it" in second.stderr  # the setting, named
        assert _run(config, "users", "disable", officer).returncode == 0
        assert httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
