"""SQLite is single-instance: one daemon per database file (DESIGN.md section 5).

The lock is an exclusive ``flock`` on ``<database>.lock`` beside the database, held for the
life of the process; the kernel drops it when the process ends, however it ends, so a crash
never leaves a stale lock behind. ``flock`` rather than ``lockf`` because its locks belong to
the open file, not the process, so it also refuses a second daemon inside one process (tests).
Commands such as ``retentiond evaluate`` do not take it: they may run beside the daemon.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from sqlalchemy import make_url

from retentiond.registry.db import normalise_url


class InstanceLocked(RuntimeError):
    """Another daemon already runs on this SQLite database."""


class InstanceLock:
    """The held lock; ``release`` is idempotent."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def lock_path_for(database_url: str) -> Path | None:
    """Where the lock file of a SQLite database lives; None for PostgreSQL or ``:memory:``."""
    url = make_url(normalise_url(database_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    db = Path(url.database).expanduser().resolve()
    return db.with_name(db.name + ".lock")


def acquire_instance_lock(database_url: str) -> InstanceLock | None:
    """Take the lock, or raise ``InstanceLocked`` naming the database and the other process."""
    path = lock_path_for(database_url)
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        database = path.with_name(path.name.removesuffix(".lock"))
        raise InstanceLocked(
            f"another retentiond daemon (pid {holder}) is already running on the SQLite "
            f"database {database} (it holds {path}). SQLite allows one daemon per database: "
            "stop the other one, or use PostgreSQL to run several instances"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return InstanceLock(path, fd)
