"""The command and the service tell an operator where they looked and what they need: which
config file and database, the address a port clash is about; a read never creates a
registry; logs are plain text unless they go to a terminal."""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
from pathlib import Path

from cli_harness import Cli, assert_refused, write
from daemon_harness import DaemonProcess, free_port, write_config

READS = (("disposals", "list"), ("records", "explain", "R-1"), ("db", "status"),
         ("holds", "list"), ("evaluate",), ("audit", "verify"))


def test_a_read_without_a_config_creates_nothing_and_says_where_it_looked(tmp_path: Path) -> None:
    """No config file, no database: each command refuses, naming the default database path
    and where a config file was looked for; no file or folder is created for the registry."""
    cli = Cli(tmp_path, "unused")
    default = tmp_path / "data" / "retentiond" / "retentiond.db"
    for args in READS:
        result = cli.run(*args, expect=None, unset=("RETENTIOND_DATABASE_URL", "RETENTIOND_CONFIG"))
        assert_refused(result, f"there is no registry database at {default}",
                       "no config file: none was given by --config or $RETENTIOND_CONFIG",
                       "/etc/retentiond/retentiond.toml", "retentiond db upgrade")
    assert not (tmp_path / "data").exists()


def test_a_config_without_a_database_url_is_named(tmp_path: Path) -> None:
    """A config file that sets no [database] url: the refusal names the file and says the
    database is the default."""
    config = write(tmp_path / "site.toml", '[logging]\nlevel = "info"\n')
    cli = Cli(tmp_path, "unused")
    result = cli.run("--config", str(config), "disposals", "list", expect=None,
                     unset=("RETENTIOND_DATABASE_URL",))
    assert_refused(result, f"the default: config file {config} (from --config) sets no "
                           "[database] url")
    assert not (tmp_path / "data").exists()


def test_an_empty_database_is_described_in_words(tmp_path: Path) -> None:
    """An existing but empty registry is 'empty (it has no schema yet)', with the revision
    this version needs and what chose the database; db upgrade then says where it is."""
    db = tmp_path / "empty.db"
    db.touch()
    cli = Cli(tmp_path, f"sqlite:///{db}")
    result = cli.run("disposals", "list", expect=None)
    assert_refused(result, f"the registry database sqlite:///{db} (from "
                           "$RETENTIOND_DATABASE_URL", "is empty (it has no schema yet)",
                   "needs revision", "run 'retentiond db upgrade'")
    assert "an empty database" not in result.err
    out = cli.run("db", "upgrade").out
    assert f"database sqlite:///{db} is at revision" in out and "$RETENTIOND_DATABASE_URL" in out


def test_a_metrics_port_in_use_names_the_address_and_the_setting(tmp_path: Path) -> None:
    """A second service whose metrics port is taken stops at once with exit 1, naming the
    address and the setting to change, and never says it started."""
    db = tmp_path / "r.db"
    Cli(tmp_path, f"sqlite:///{db}").run("db", "upgrade")
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        config = write_config(tmp_path / "retentiond.toml", f"sqlite:///{db}", metrics_port=port)
        daemon = DaemonProcess(config, tmp_path / "d.log")
        try:
            assert daemon.wait(timeout=60) == 1
            err = daemon.stderr_text()
            assert f"cannot serve metrics on 127.0.0.1:{port}" in err
            assert f"[metrics] listen in {config} chose it" in err
            assert "RETENTIOND_METRICS_LISTEN" in err
            assert "Traceback" not in err and "Errno" not in err
            assert not [e for e in daemon.logs() if e.get("event") == "daemon_started"]
        finally:
            daemon.stop()
        env_daemon = DaemonProcess(config, tmp_path / "e.log",
                                   env={"RETENTIOND_METRICS_LISTEN": f"127.0.0.1:{port}"})
        try:
            assert env_daemon.wait(timeout=60) == 1
            assert "$RETENTIOND_METRICS_LISTEN chose it" in env_daemon.stderr_text()
        finally:
            env_daemon.stop()


_LOG_ONE_LINE = ("from retentiond.logs import configure_logging, get_logger\n"
                 "configure_logging('info', 'console')\n"
                 "get_logger('t').info('hello', n=1)\n")


def test_console_logs_are_plain_in_a_file_and_coloured_on_a_terminal(tmp_path: Path) -> None:
    """format = "console" writes no ANSI codes to a file or pipe; on a terminal it colours,
    unless NO_COLOR is set."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    piped = subprocess.run([sys.executable, "-c", _LOG_ONE_LINE], capture_output=True,
                           text=True, env=env, timeout=60, check=True)
    assert "hello" in piped.stderr and "\x1b[" not in piped.stderr

    def on_a_terminal(extra: dict[str, str]) -> str:
        controller, terminal = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-c", _LOG_ONE_LINE], stderr=terminal,
                                stdout=subprocess.DEVNULL, env={**env, **extra})
        os.close(terminal)
        out = b""
        while True:
            ready, _, _ = select.select([controller], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            out += chunk
        proc.wait(timeout=30)
        os.close(controller)
        return out.decode(errors="replace")

    coloured = on_a_terminal({})
    assert "hello" in coloured and "\x1b[" in coloured
    plain = on_a_terminal({"NO_COLOR": "1"})
    assert "hello" in plain and "\x1b[" not in plain
