"""``kind = "inbox"``: a folder where exports land (``*.csv``, ``*.jsonl``).

A file is read only once it is whole: when a marker ``FILE.ready`` sits beside it (the
exporter writes it after the file), or when its size and modification time are the same at
two looks ``settle_s`` seconds apart. A file that is ready is claimed by moving it into
``work/`` under a name of its own (the time and a random tag before the file's name), so
that a file of the same name exported later is never confused with it. After the run's
transaction commits, each claimed file goes to ``done/`` or ``refused/`` with a receipt
beside it (``NAME.receipt.json``: counts, or the problems with their lines and fields).

A run that dies after claiming leaves files in ``work/``; the next run finishes them: a file
whose import is in the registry (its ``work/`` name is the import's file name) is moved to
``done/``; any other is read again. Nothing is applied twice, and nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = (".csv", ".jsonl")
MARKER = ".ready"
FOLDERS = ("work", "done", "refused")


@dataclass(frozen=True, kw_only=True)
class Claimed:
    """A file taken into ``work/``: its original name and where it is now."""

    original: str
    path: Path

    @property
    def fmt(self) -> str:
        return "jsonl" if self.original.lower().endswith(".jsonl") else "csv"


def prepare(folder: Path) -> None:
    """Make ``work/``, ``done/`` and ``refused/`` (the inbox itself must exist)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"the inbox {folder} is not a folder")
    for name in FOLDERS:
        (folder / name).mkdir(exist_ok=True)


def _candidates(folder: Path) -> list[Path]:
    # Regular files only: a symbolic link could make the service read (and move away)
    # whatever it points at, anywhere the service can read.
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
                  and not p.is_symlink() and p.is_file())


def _look(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def ready_files(folder: Path, settle_s: float, wait: Callable[[float], Any]) -> list[Path]:
    """The files that are whole: with a ``.ready`` marker, or unchanged across two looks
    ``settle_s`` apart (``wait`` sleeps; it may return early when the service stops). Oldest
    first, so that full extracts apply in the order they were written."""
    files = _candidates(folder)
    ready = [p for p in files if (p.parent / (p.name + MARKER)).is_file()]
    others = [p for p in files if p not in ready]
    if others:
        first = {p: _look(p) for p in others}
        wait(settle_s)
        ready += [p for p in others if first[p] is not None and _look(p) == first[p]]
    return sorted(ready, key=lambda p: ((_look(p) or (0, 0))[1], p.name))


def claim(path: Path, now: dt.datetime) -> Claimed:
    """Move a ready file (and its marker) into ``work/`` under a name no other file has."""
    tag = f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
    target = path.parent / "work" / f"{tag}-{path.name}"
    os.rename(path, target)
    marker = path.parent / (path.name + MARKER)
    if marker.exists():
        os.rename(marker, target.parent / (target.name + MARKER))
    return Claimed(original=path.name, path=target)


def left_in_work(folder: Path) -> list[Claimed]:
    """Files a run claimed and did not finish (it died), oldest claim first."""
    out = []
    for path in sorted((folder / "work").iterdir()):
        if path.suffix.lower() in SUFFIXES and path.is_file():
            parts = path.name.split("-", 2)
            out.append(Claimed(original=parts[-1], path=path))
    return out


def finish(claimed: Claimed, outcome: str, receipt: dict[str, Any]) -> Path:
    """Move a claimed file (and its marker) to ``done/`` or ``refused/`` and write its receipt
    beside it; the receipt is written first, under a temporary name, then renamed."""
    folder = claimed.path.parent.parent / outcome
    target = folder / claimed.path.name
    doc = {"file": claimed.original, "stored_as": f"{outcome}/{claimed.path.name}",
           "outcome": outcome, **receipt}
    tmp = folder / f".{claimed.path.name}.receipt.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n",
                   encoding="utf-8")
    os.replace(tmp, folder / f"{claimed.path.name}.receipt.json")
    os.rename(claimed.path, target)
    marker = claimed.path.parent / (claimed.path.name + MARKER)
    if marker.exists():
        os.rename(marker, folder / marker.name)
    return target
