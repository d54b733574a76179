"""sd_notify(3), written out (DESIGN.md section 7): one datagram to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


def notify(*fields: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``READY=1``, ``STATUS=...`` and the like as one message. False when not run by a
    service manager, or when it cannot be reached (a status update must never stop the work)."""
    address = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if address.startswith("@"):  # an abstract socket: a leading NUL byte, not a path
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a kind we do not speak (vsock)
    payload = "\n".join(fields).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError:
        return False
    return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd set for this process (``WatchdogSec=``), or None."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000
