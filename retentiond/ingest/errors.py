"""The error an import raises when any row is wrong."""

from __future__ import annotations

#: At most this many problems are listed; a file with more is still refused whole.
MAX_PROBLEMS = 50


class ImportRefused(ValueError):
    """A file was refused; nothing of it was applied. ``problems`` are ``FILE:LINE: field: msg``."""

    def __init__(self, filename: str, problems: list[str], *, more: int = 0) -> None:
        self.filename = filename
        self.problems = problems
        self.more = more
        extra = f" (and {more} more)" if more else ""
        first = problems[0] if problems else "unknown problem"
        super().__init__(
            f"{filename} refused, nothing applied: {len(problems) + more} problem(s){extra}; "
            f"first: {first}"
        )
