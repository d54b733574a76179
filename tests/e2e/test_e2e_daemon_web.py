"""retentiond run serves the review UI and API when [web] enabled = true."""

from __future__ import annotations

import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from daemon_harness import DaemonProcess, free_port, write_config


def _get(url: str, wait_s: float = 15.0) -> int:
    """The status of a GET, retried while the server is still binding its port."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_run_serves_the_web_app_and_stops_it_on_sigterm(database_url: str, tmp_path: Path):
    """With [web] enabled the daemon answers the sign-in page, and SIGTERM stops both."""
    port = free_port()
    config = write_config(tmp_path / "retentiond.toml", database_url,
                          extra=f'[web]\nenabled = true\nlisten = "127.0.0.1:{port}"\n')
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        daemon.wait_log("web_listening", timeout=30)
        daemon.wait_log("daemon_started", timeout=30)
        assert _get(f"http://127.0.0.1:{port}/login") == 200
        # The review pages need a signed-in user: no page leaks to an anonymous caller.
        assert _get(f"http://127.0.0.1:{port}/api/v1/disposals") in (401, 403)
        daemon.send(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0
    finally:
        daemon.stop()
    with socket.socket() as s:
        # Connections in TIME_WAIT do not count; a socket still listening would.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()


def test_bad_web_section_refuses_to_start(database_url: str, tmp_path: Path):
    """A wrong [web] section stops the start with exit 78 and names the key."""
    config = write_config(tmp_path / "retentiond.toml", database_url,
                          extra='[web]\nenabled = true\nlisten = "nowhere"\n')
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        assert daemon.wait(timeout=30) == 78
        assert "[web].listen" in daemon.stderr_text()
    finally:
        daemon.stop()
