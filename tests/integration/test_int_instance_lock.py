"""One daemon per SQLite file: the lock beside the database."""

from __future__ import annotations

import os

import pytest

from retentiond.daemon.instance_lock import InstanceLocked, acquire_instance_lock, lock_path_for


def test_second_lock_on_one_file_is_refused_with_the_holder(tmp_path):
    """The second daemon is told which database, which lock file and which pid holds it."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    first = acquire_instance_lock(url)
    assert first is not None
    with pytest.raises(InstanceLocked) as exc:
        acquire_instance_lock(url)
    message = str(exc.value)
    assert f"pid {os.getpid()}" in message and "registry.db" in message
    assert "registry.db.lock" in message and "PostgreSQL" in message
    first.release()
    again = acquire_instance_lock(url)
    assert again is not None
    again.release()


def test_two_databases_lock_independently(tmp_path):
    """Locks are per database file."""
    a = acquire_instance_lock(f"sqlite:///{tmp_path / 'a.db'}")
    b = acquire_instance_lock(f"sqlite:///{tmp_path / 'b.db'}")
    assert a is not None and b is not None
    a.release()
    b.release()


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1/x", "sqlite:///:memory:",
                                 "sqlite://"])
def test_no_lock_where_the_file_is_not_ours(url):
    """PostgreSQL allows several instances; an in-memory SQLite has no file to lock."""
    assert lock_path_for(url) is None
    assert acquire_instance_lock(url) is None
