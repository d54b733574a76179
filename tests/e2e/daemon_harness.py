"""Run ``retentiond run`` as a subprocess and listen to it as systemd would.

``NotifyListener`` binds the datagram socket ``$NOTIFY_SOCKET`` names and collects what the
daemon sends; ``DaemonProcess`` starts the daemon with its stderr (JSON logs) in a file and
waits for messages and log events. Reusable by any e2e test that starts, signals, kills and
restarts the daemon.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACK = ROOT / "policies" / "isa-default.toml"


class NotifyListener:
    """A bound ``AF_UNIX`` datagram socket; every message is kept, in order."""

    def __init__(self, directory: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if directory is None:  # abstract: no path-length limit, nothing to clean up
            self.address = f"@retentiond-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + self.address[1:])
        else:
            self.address = str(directory / "notify.sock")
            self.sock.bind(self.address)
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append((time.monotonic(), data.decode()))
                self._cond.notify_all()

    def fields(self) -> list[str]:
        """Every ``KEY=value`` line received, in order."""
        with self._cond:
            return [line for _, m in self.messages for line in m.split("\n")]

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20.0,
                 after: int = 0) -> int:
        """Wait for a line matching ``predicate`` at or after index ``after``; return its index."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                lines = [line for _, m in self.messages for line in m.split("\n")]
                for i in range(after, len(lines)):
                    if predicate(lines[i]):
                        return i
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching notify message in {timeout}s; got {lines}")
                self._cond.wait(left)

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        self._thread.join(timeout=1)
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)


def write_config(path: Path, database_url: str, *, policies: list[Path] | None = None,
                 metrics_port: int | None = None, daemon: str = "", extra: str = "") -> Path:
    """A config file for a test daemon: fast heartbeat, no scheduled work to speak of."""
    pols = ", ".join(json.dumps(str(p)) for p in (policies or [DEFAULT_PACK]))
    listen = f"127.0.0.1:{metrics_port}" if metrics_port else ""
    path.write_text(f"""
[database]
url = {json.dumps(database_url)}

[policies]
paths = [{pols}]

[daemon]
heartbeat_s = 0.2
stop_timeout_s = 10
{daemon}

[metrics]
listen = "{listen}"
cache_s = 0

{extra}
""", encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DaemonProcess:
    """``retentiond --config FILE run [args]`` with stderr to ``log_path``."""

    def __init__(self, config: Path, log_path: Path, *, notify: NotifyListener | None = None,
                 args: tuple[str, ...] = (), watchdog_usec: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        environ = {k: v for k, v in os.environ.items()
                   if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        environ.pop("RETENTIOND_DATABASE_URL", None)
        if notify is not None:
            environ["NOTIFY_SOCKET"] = notify.address
        if watchdog_usec is not None:
            environ["WATCHDOG_USEC"] = str(watchdog_usec)
        environ.update(env or {})
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "retentiond.cli.main", "--config", str(config), "run", *args],
            stdout=subprocess.PIPE, stderr=self._log, env=environ, cwd=config.parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (anything else on stderr is skipped)."""
        out = []
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def stderr_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, event: str, timeout: float = 20.0, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.logs()[after:] if e.get("event") == event]
            if found:
                return found[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before logging "
                                     f"{event}:\n{self.stderr_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {event} log line in {timeout}s:\n{self.stderr_text()}")
            time.sleep(0.05)

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Make sure the process is gone (test clean-up)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
