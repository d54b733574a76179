"""Peak resident memory: for the whole run (``ru_maxrss``) and for each phase (sampled)."""

from __future__ import annotations

import os
import resource
import threading
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux ``/proc``)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except OSError:
        return 0.0


def peak_rss_mb() -> float:
    """The largest resident set this process has had, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PhasePeak:
    """Samples RSS every ``interval_s`` while the ``with`` block runs; ``peak_mb`` after."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __enter__(self) -> PhasePeak:
        self.peak_mb = rss_mb()
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
