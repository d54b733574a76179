"""Structured JSON logs, with personal data replaced by keyed pseudonyms before output."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: Keys whose values are personal data: never written out in clear.
PERSONAL_KEYS = frozenset({
    "subject_ref", "subject", "date_of_birth", "date_of_death", "name", "email", "dob",
})


class Pseudonymiser:
    """A structlog processor that replaces personal values by HMAC-SHA256 pseudonyms.

    The key comes from configuration so that pseudonyms are stable across runs (an operator
    with the key can match a log line to a subject; a reader of the logs alone cannot).
    """

    def __init__(self, key: bytes) -> None:
        self.key = key or os.urandom(32)

    def pseudonym(self, value: object) -> str:
        digest = hmac.new(self.key, str(value).encode(), hashlib.sha256).hexdigest()
        return "p:" + digest[:16]

    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
        for key in PERSONAL_KEYS & event.keys():
            if event[key] is not None:
                event[key] = self.pseudonym(event[key])
        return event


class _StderrLoggerFactory:
    """Print loggers on whatever ``sys.stderr`` is when a line is written, not the stream it
    was at configuration: a process whose stderr is replaced later (a daemon's redirect, a
    test's capture) must not keep writing to a closed stream and fail the operation it logs."""

    def __call__(self, *_args: Any) -> structlog.PrintLogger:
        return structlog.PrintLogger(sys.stderr)


def colour_wanted(stream: Any = None) -> bool:
    """Colour codes only on a terminal, and never when ``NO_COLOR`` is set (no-color.org): a
    log written to a file or a pipe must be plain text."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(level: str = "info", fmt: str = "json", key: bytes = b"") -> None:
    """Send JSON lines to stderr (journald reads them); stdout stays for command output.
    ``console`` is for people: coloured on a terminal, plain in a file."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=colour_wanted())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            Pseudonymiser(key),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_StderrLoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)


def describe_error(exc: BaseException) -> str:
    """A one-line description for logs and /healthz. For database errors only the driver's
    first line: the rest (the statement's parameters, DETAIL) may name a record."""
    from sqlalchemy.exc import StatementError

    if isinstance(exc, StatementError) and exc.orig is not None:
        exc = exc.orig
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
