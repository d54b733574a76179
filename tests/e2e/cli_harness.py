"""Run the ``retentiond`` command as a subprocess, as a script or an operator would.

The command runs as ``python -m retentiond.cli.main`` with this interpreter, so that it is the
code under test whatever is on PATH. The environment is cleared of every ``RETENTIOND_*``
variable the test runner may have, and ``HOME`` points at the test's directory, so that no
configuration of the machine leaks in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PACK = ROOT / "policies" / "isa-default.toml"


@dataclass(frozen=True)
class Result:
    """What one run of the command did."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON."""
        return json.loads(self.out)

    @property
    def error_lines(self) -> list[str]:
        """stderr without the JSON log lines."""
        return [line for line in self.err.splitlines() if not line.startswith("{")]

    @property
    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines on stderr."""
        return [json.loads(line) for line in self.err.splitlines() if line.startswith("{")]


class Cli:
    """``retentiond`` against one registry, as one actor unless told otherwise."""

    def __init__(self, home: Path, database_url: str, *, actor: str = "officer.one") -> None:
        self.home = home
        # The tests act as several named people from one operating-system user: that is the
        # break-glass setting of docs/cli.md ("What the command line may do"), in a config
        # file of their own. A test of the rule without it passes its own --config.
        self.break_glass = write(home / "break-glass.toml", "[cli]\nallow_actor_override = true\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTIOND_")}
        self.env.update({
            "HOME": str(home), "XDG_DATA_HOME": str(home / "data"),
            "RETENTIOND_CONFIG": str(self.break_glass),
            "RETENTIOND_DATABASE_URL": database_url,
            "RETENTIOND_POLICIES": str(DEFAULT_PACK),
            "RETENTIOND_ACTOR": actor,
            "PYTHONUNBUFFERED": "1",
        })

    def run(self, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = (),
            expect: int | None = 0, cwd: Path | None = None) -> Result:
        """Run one command; check its exit status unless ``expect`` is None."""
        full = {k: v for k, v in {**self.env, **(env or {})}.items() if k not in unset}
        proc = subprocess.run(
            [sys.executable, "-m", "retentiond.cli.main", *args], env=full, cwd=cwd or self.home,
            capture_output=True, text=True, timeout=120, check=False,
        )
        result = Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)
        if expect is not None:
            assert result.code == expect, (
                f"retentiond {' '.join(args)}: exit {result.code}, expected {expect}\n"
                f"stdout:\n{result.out}\nstderr:\n{result.err}")
        return result

    def as_actor(self, actor: str) -> dict[str, str]:
        """The environment override that acts as someone else."""
        return {"RETENTIOND_ACTOR": actor}


def assert_refused(result: Result, *fragments: str) -> None:
    """A refusal: exit 1, the first line on stderr is ``retentiond: error: ...`` and says each
    fragment somewhere in the error lines, and nothing went to stdout."""
    assert result.code == 1, (result.code, result.out, result.err)
    first = result.err.splitlines()[0] if result.err else ""
    assert first.startswith("retentiond: error: "), result.err
    text = "\n".join(result.error_lines)
    for fragment in fragments:
        assert fragment in text, (fragment, result.err)


def write(path: Path, text: str) -> Path:
    """Write a text file and return its path."""
    path.write_text(text, encoding="utf-8")
    return path
