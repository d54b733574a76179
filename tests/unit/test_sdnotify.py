"""sd_notify messages, read from a datagram socket the test binds as systemd would."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from retentiond.daemon.sdnotify import notify, watchdog_interval_s


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound socket with a filesystem path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    address = str(tmp_path / "notify")
    sock.bind(address)
    sock.settimeout(2)
    yield sock, address
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound socket in the abstract namespace, named as systemd names it ('@...')."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"retentiond-test-{uuid.uuid4().hex}"
    sock.bind("\0" + name)
    sock.settimeout(2)
    yield sock, "@" + name
    sock.close()


def test_ready_and_status_arrive_as_one_datagram(path_socket):
    """Several fields are sent as one message, one KEY=value per line."""
    sock, address = path_socket
    assert notify("READY=1", "STATUS=idle; 3 pending review", environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096) == b"READY=1\nSTATUS=idle; 3 pending review"


@pytest.mark.parametrize("message", ["WATCHDOG=1", "STOPPING=1", "STATUS=stopping: finishing execute"])
def test_each_message_reaches_an_abstract_socket(abstract_socket, message):
    """A NOTIFY_SOCKET starting with '@' is an abstract socket, not a path."""
    sock, address = abstract_socket
    assert notify(message, environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096) == message.encode()


def test_utf8_status_is_sent_as_utf8(path_socket):
    """STATUS text is UTF-8 on the wire."""
    sock, address = path_socket
    notify("STATUS=policy “isa-default” loaded", environ={"NOTIFY_SOCKET": address})
    assert sock.recv(4096).decode() == "STATUS=policy “isa-default” loaded"


@pytest.mark.parametrize("env", [{}, {"NOTIFY_SOCKET": ""}, {"NOTIFY_SOCKET": "vsock:2:1234"}])
def test_without_a_usable_socket_notify_is_a_quiet_no(env):
    """Not run by systemd (or a socket kind we do not speak): False, no error."""
    assert notify("READY=1", environ=env) is False


def test_a_vanished_socket_does_not_raise(tmp_path):
    """A status update must never stop the work: an unreachable socket gives False."""
    assert notify("WATCHDOG=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "junk"}, None),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 2.0),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
])
def test_watchdog_interval_is_for_this_process_only(env, expected):
    """WATCHDOG_USEC applies only when WATCHDOG_PID is unset or names this process."""
    assert watchdog_interval_s(env) == expected
