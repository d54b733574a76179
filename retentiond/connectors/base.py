"""The connector seam (DESIGN.md section 5): what every kind of holding system offers.

A connector carries out an action on one record in the system that holds its data. The
executor (``retentiond.lifecycle.execute``) calls it outside any registry transaction, so a
connector call may be slow, and may be repeated: after a crash, a reaped lease or a transient
error the same call comes again with the same idempotency key.

The contract every implementation keeps (``tests/integration/test_int_connector_contract.py``
checks the built-in ones):

- ``delete(ref, key)`` removes everything the record is in that system. Deleting something
  already gone is success ("already absent"), so a retry is safe. It returns a short
  description of what was done, fit for a certificate.
- ``exists(ref)`` is true while any of the record's data is still there. The executor calls it
  after ``delete`` and counts the disposal executed only when it is false.
- ``export(ref)`` returns the record's data, for a return to its controller.
- Optionally, ``delete_many(items)`` and ``exists_many(refs)`` (:class:`BatchConnector`) do
  the same for a batch of records at once: the executor sends a claimed batch's deletes
  through them. A connector without them keeps working: :func:`delete_each` and
  :func:`exists_each` loop over ``delete`` and ``exists`` for it, one record at a time.
- ``delete`` may be called on a first attempt only for data the executor has just seen
  present (``exists``): "already absent" is success only on a retry of this service's own
  delete; data not there on a first attempt is a finding for a person (DESIGN.md section 4).
- Optionally, ``validate_locator(locator)`` (:class:`LocatorValidator`) says why the connector
  cannot name a locator exactly (``None`` when it can): ``records import`` refuses such a row,
  with file, line and field. A connector without it accepts every locator at import and
  refuses at execution what it cannot act on.
- Optionally, ``remaining_copies(executed_on)`` (:class:`CopyKeeper`) states what of a record
  outlives the delete in that system (backups, journals, dead row versions, recycle bins) and
  until when, from the connector's configuration. A connector without it is taken to keep
  copies it does not declare, with no date: a certificate never says nothing remains.
- Errors are a :class:`TransientConnectorError` (try again later: the system is down, locked,
  unreachable) or a :class:`PermanentConnectorError` (trying again cannot help: the locator is
  refused, the table does not exist, permission is denied). Anything else is taken as transient.
- Error messages and descriptions never carry personal data, and never the locator (a path or
  key may name a child): they go to logs, to ``last_error`` and to certificates.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class ConnectorError(Exception):
    """A connector could not carry out an action. The message holds no personal data."""


class TransientConnectorError(ConnectorError):
    """Worth trying again later: the executor retries with exponential backoff."""


class PermanentConnectorError(ConnectorError):
    """Trying again cannot help: the disposal ends ``failed`` for a person to look at."""


class LocatorRefused(PermanentConnectorError):
    """The record's locator is not acceptable to the connector (e.g. it escapes its root)."""


class ConnectorConfigError(ValueError):
    """A ``[connectors.NAME]`` table is wrong; the message names the table and the key."""


@dataclass(frozen=True)
class ConnectorRef:
    """Which record to act on, and where it lives.

    ``system`` and ``locator`` are the record's (``records.system``, ``records.locator``);
    ``record_id`` is its registry key (``records.record_key``), used to name packages.
    ``controller`` is the code of the originating controller, for returns.
    """

    system: str
    locator: str
    record_id: str
    controller: str | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class ExportedTable:
    """Rows of one table: a sheet of a returned workbook."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class ExportedFile:
    """One file, by its path relative to the record's own locator."""

    path: str
    content: bytes


@dataclass(frozen=True)
class Export:
    """A record's data as one system holds it: tables, files, or both."""

    tables: tuple[ExportedTable, ...] = ()
    files: tuple[ExportedFile, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not any(t.rows for t in self.tables) and not self.files


@runtime_checkable
class Connector(Protocol):
    """One configured holding system (``[connectors.NAME]`` in the config file)."""

    #: The ``[connectors.NAME]`` name.
    name: str
    #: The kind (``sql``, ``filesystem``, ``manual``, ``return``, or a plug-in's).
    kind: str

    def delete(self, ref: ConnectorRef, idempotency_key: str) -> str:
        """Remove the record's data; already absent is success. Return what was done, in
        words for a certificate (no personal data). Safe to repeat with the same key."""
        ...

    def exists(self, ref: ConnectorRef) -> bool:
        """True while any of the record's data is still held."""
        ...

    def export(self, ref: ConnectorRef) -> Export:
        """The record's data, for a return to its controller."""
        ...

    def close(self) -> None:
        """Release connections (engines, sessions); the connector may be used again after."""
        ...


@runtime_checkable
class Anonymiser(Protocol):
    """A connector that can anonymise a record in place (action ``anonymise``)."""

    def anonymise(self, ref: ConnectorRef, idempotency_key: str) -> str:
        """Anonymise the record; doing it twice is doing it once. Return what was done."""
        ...


@runtime_checkable
class Transferrer(Protocol):
    """A connector that can transfer a record to an archive (action ``transfer``)."""

    def transfer(self, ref: ConnectorRef, idempotency_key: str) -> str:
        """Transfer the record to the archive and remove it here; idempotent. Return what
        was done."""
        ...


@runtime_checkable
class LocatorValidator(Protocol):
    """A connector that can say, before anything is done, whether a locator names exactly one
    thing it can act on (optional; used by ``records import``)."""

    def validate_locator(self, locator: str) -> str | None:
        """Why ``locator`` cannot be represented exactly (no personal data, never the locator
        itself), or None when it can. May raise a :class:`ConnectorError` when the holding
        system must be asked and cannot be."""
        ...


@dataclass(frozen=True, kw_only=True)
class RemainingCopy:
    """Something of a deleted record that outlives the delete in its system.

    ``what`` is in words for a certificate; ``expire_by`` the date by which it is gone (None:
    no date can be stated); ``basis`` the configuration or fact the statement rests on."""

    what: str
    expire_by: dt.date | None
    basis: str

    @classmethod
    def backups(cls, kept_days: int | None, executed_on: dt.date,
                key: str) -> tuple[RemainingCopy, ...]:
        """Backup copies: gone ``kept_days`` after the delete, when the operator stated it
        (0: the system keeps none; not stated: they are said to exist, with no date)."""
        if kept_days is None:
            return (cls(what="backup copies (how long backups are kept is not configured)",
                        expire_by=None, basis=f"{key} is not set"),)
        if kept_days == 0:
            return ()
        return (cls(what="backup copies", expire_by=executed_on + dt.timedelta(days=kept_days),
                    basis=f"{key} = {kept_days}"),)

    def as_json(self) -> dict[str, Any]:
        return {"what": self.what,
                "expire_by": self.expire_by.isoformat() if self.expire_by else None,
                "basis": self.basis}


@runtime_checkable
class CopyKeeper(Protocol):
    """A connector that states what outlives its deletes (optional)."""

    def remaining_copies(self, executed_on: dt.date) -> tuple[RemainingCopy, ...]:
        """What remains of a record deleted on ``executed_on``, and until when."""
        ...


#: Said of a connector that declares nothing: it is not taken to keep nothing.
UNDECLARED = RemainingCopy(
    what="copies the connector does not declare (backups, versions, recycle bins)",
    expire_by=None, basis="the connector states no remaining copies")


def remaining_copies(connector: Connector, executed_on: dt.date) -> tuple[RemainingCopy, ...]:
    """What outlives a delete through ``connector`` (:data:`UNDECLARED` if it does not say)."""
    if isinstance(connector, CopyKeeper):
        return tuple(connector.remaining_copies(executed_on))
    return (UNDECLARED,)


def locator_problem(connector: Connector, locator: str) -> str | None:
    """Why ``connector`` cannot name ``locator`` exactly, or None (also for a connector that
    does not validate locators)."""
    if isinstance(connector, LocatorValidator):
        return connector.validate_locator(locator)
    return None


@runtime_checkable
class BatchConnector(Protocol):
    """A connector that can delete, and check, a batch of records at once (optional).

    Not part of :class:`Connector`: third-party connectors (entry point group
    ``retentiond.connectors``) that lack these methods keep working, one record at a time.
    """

    def delete_many(self, items: Sequence[tuple[ConnectorRef, str]]) -> dict[
            str, str | ConnectorError]:
        """Delete each ``(ref, idempotency_key)``'s data, keeping ``delete``'s contract for
        each (already absent is success; safe to repeat). Return, by idempotency key, what
        was done (words for a certificate) or the error that stopped that record alone. An
        error that stops the whole batch (the system is unreachable) is raised instead."""
        ...

    def exists_many(self, refs: Sequence[ConnectorRef]) -> set[ConnectorRef]:
        """The refs of which some data is still held (``exists`` for each, at once)."""
        ...


def delete_each(connector: Connector, items: Sequence[tuple[ConnectorRef, str]], *,
                stop: Callable[[], bool] | None = None) -> dict[str, str | Exception]:
    """Delete a batch through ``connector``: by its ``delete_many`` if it has one, otherwise
    by ``delete``, one record at a time, each record's error kept for that record alone.

    Returns what was done, or the error, by idempotency key. In the one-at-a-time loop,
    ``stop()`` is asked before each record after the first; once it is true the rest are
    not attempted and are absent from the result. A whole-batch error from ``delete_many``
    becomes every record's error. ``BaseException`` (a kill, ``KeyboardInterrupt``) is never
    caught."""
    if not items:
        return {}
    if isinstance(connector, BatchConnector):
        try:
            done: dict[str, str | Exception] = dict(connector.delete_many(items))
        except Exception as exc:
            return {key: exc for _, key in items}
        missing = [key for _, key in items if key not in done]
        for key in missing:
            done[key] = TransientConnectorError(
                f"{connector.name}: delete_many returned no result for this record")
        return done
    out: dict[str, str | Exception] = {}
    for n, (ref, key) in enumerate(items):
        if n and stop is not None and stop():
            break
        try:
            out[key] = connector.delete(ref, key)
        except Exception as exc:
            out[key] = exc
    return out


def exists_each(connector: Connector, items: Sequence[tuple[ConnectorRef, str]]) -> dict[
        str, bool | Exception]:
    """Whether each ``(ref, idempotency_key)``'s data is still held, by idempotency key: by
    the connector's ``exists_many`` if it has one (an error of it is every record's),
    otherwise by ``exists`` one record at a time (an error is that record's alone)."""
    if not items:
        return {}
    if isinstance(connector, BatchConnector):
        try:
            still = connector.exists_many([ref for ref, _ in items])
        except Exception as exc:
            return {key: exc for _, key in items}
        return {key: ref in still for ref, key in items}
    out: dict[str, bool | Exception] = {}
    for ref, key in items:
        try:
            out[key] = bool(connector.exists(ref))
        except Exception as exc:
            out[key] = exc
    return out


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def option(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, *,
           required: bool = False, default: Any = None) -> Any:
    """One option of a ``[connectors.NAME]`` table, type-checked."""
    value = table.get(key)
    if value is None:
        if required:
            raise ConnectorConfigError(f"{where}.{key}: is required")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConnectorConfigError(f"{where}.{key}: must be a {names}")
    return value


#: The longest retention of copies a configuration may state (100 years).
MAX_KEPT_DAYS = 36_525


def remaining_option(table: Mapping[str, Any], key: str, where: str) -> int | None:
    """A number of days copies are kept (``backups_kept_days`` and the like), or None."""
    value = option(table, key, int, where)
    if value is not None and not 0 <= value <= MAX_KEPT_DAYS:
        raise ConnectorConfigError(f"{where}.{key}: must be a number of days from 0 to "
                                   f"{MAX_KEPT_DAYS}")
    return value  # type: ignore[no-any-return]


def identifier(value: Any, where: str) -> str:
    """A SQL table or column name from config: plain identifiers only (no quoting games)."""
    if not isinstance(value, str) or not all(_IDENT.match(p) for p in value.split(".")) \
            or value.count(".") > 1:
        raise ConnectorConfigError(f"{where}: {value!r} is not a table or column name")
    return value


def read_secret(table: Mapping[str, Any], stem: str, where: str, *, base_dir: Path,
                environ: Mapping[str, str] | None = None, required: bool = True) -> str | None:
    """A secret named by ``{stem}_file`` (a path) or ``{stem}_credential`` (a systemd credential
    name, read from ``$CREDENTIALS_DIRECTORY``). Secrets are never taken from the command
    line; the value is never logged."""
    env = os.environ if environ is None else environ
    path_text = option(table, f"{stem}_file", str, where)
    credential = option(table, f"{stem}_credential", str, where)
    if path_text and credential:
        raise ConnectorConfigError(f"{where}: give {stem}_file or {stem}_credential, not both")
    if credential:
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ConnectorConfigError(
                f"{where}.{stem}_credential: $CREDENTIALS_DIRECTORY is not set (use systemd's "
                f"LoadCredential= or give {stem}_file)"
            )
        if "/" in credential or credential in (".", ".."):
            raise ConnectorConfigError(f"{where}.{stem}_credential: not a credential name")
        path = Path(directory) / credential
    elif path_text:
        path = Path(path_text) if Path(path_text).is_absolute() else base_dir / path_text
    else:
        if required:
            raise ConnectorConfigError(f"{where}: {stem}_file or {stem}_credential is required")
        return None
    try:
        value: str = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConnectorConfigError(f"{where}: cannot read the {stem} secret file {path}: "
                                   f"{exc.strerror}") from exc
    if not value:
        raise ConnectorConfigError(f"{where}: the {stem} secret file {path} is empty")
    return value


def systems_option(name: str, table: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """The record systems a connector serves: ``systems = [...]``, by default its own name."""
    systems = option(table, "systems", list, where, default=[name])
    if not systems or not all(isinstance(s, str) and s for s in systems):
        raise ConnectorConfigError(f"{where}.systems: must be a list of system names")
    return tuple(systems)
