"""Connectors to the systems that hold the data, selected per record by its ``system``.

Configured as ``[connectors.NAME]`` tables (``docs/connectors.md``)::

    [connectors.mis]
    kind = "sql"               # sql, filesystem, manual, return, or a plug-in's kind
    systems = ["mis"]          # the records' systems it serves (default: its NAME)
    ...                        # the kind's own options

Third-party kinds are found through the entry point group ``retentiond.connectors``: the
entry point's name is the kind, its object either has a ``from_config(name, options, *,
base_dir)`` class method or is such a callable, and what it returns keeps the
:class:`~retentiond.connectors.base.Connector` contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from retentiond.config import Config, ConfigError
from retentiond.connectors.base import (
    UNDECLARED,
    Anonymiser,
    BatchConnector,
    Connector,
    ConnectorConfigError,
    ConnectorError,
    ConnectorRef,
    CopyKeeper,
    Export,
    ExportedFile,
    ExportedTable,
    LocatorRefused,
    LocatorValidator,
    PermanentConnectorError,
    RemainingCopy,
    Transferrer,
    TransientConnectorError,
    delete_each,
    exists_each,
    locator_problem,
    remaining_copies,
    systems_option,
)
from retentiond.connectors.filesystem import FilesystemConnector
from retentiond.connectors.manual import ManualConnector
from retentiond.connectors.returning import ReturnConnector
from retentiond.connectors.sql import SqlConnector

ENTRY_POINT_GROUP = "retentiond.connectors"

Factory = Callable[..., Connector]

#: Built-in kinds and the options each accepts (an unknown option is refused, not ignored).
BUILTIN: dict[str, tuple[Any, frozenset[str]]] = {
    "sql": (SqlConnector, frozenset({"url", "url_file", "url_credential", "table", "key_column",
                                     "children", "key_type", "backups_kept_days",
                                     "vacuum_after_delete"})),
    "filesystem": (FilesystemConnector, frozenset({"root", "backups_kept_days",
                                                   "snapshots_kept_days"})),
    "manual": (ManualConnector, frozenset({"instructions", "backups_kept_days"})),
    "return": (ReturnConnector, frozenset({"drop_dir", "password_dir", "format", "controllers"})),
}


class ConnectorRegistry:
    """The configured connectors, by name and by the record systems they serve."""

    def __init__(self, connectors: Mapping[str, Connector], systems: Mapping[str, str]) -> None:
        self._by_name = dict(connectors)
        self._by_system = dict(systems)
        returners = [c for c in self._by_name.values() if isinstance(c, ReturnConnector)]
        if len(returners) > 1:
            raise ConnectorConfigError("at most one connector of kind 'return' may be configured")
        self._returner = returners[0] if returners else None
        if self._returner is not None:
            self._returner.bind(self.for_system)

    def __iter__(self) -> Iterator[Connector]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def get(self, name: str) -> Connector | None:
        return self._by_name.get(name)

    def systems(self) -> dict[str, str]:
        """Record system -> connector name."""
        return dict(self._by_system)

    def for_system(self, system: str | None) -> Connector:
        """The connector for a record's system, or a permanent error saying none is set up."""
        if not system:
            raise PermanentConnectorError("the record names no system: no connector can act on it")
        name = self._by_system.get(system)
        if name is None:
            raise PermanentConnectorError(f"no connector is configured for system {system!r}")
        return self._by_name[name]

    def returner(self) -> ReturnConnector:
        """The connector that makes returns, or a permanent error if none is configured."""
        if self._returner is None:
            raise PermanentConnectorError(
                "no connector of kind 'return' is configured: a return cannot be made"
            )
        return self._returner

    def close(self) -> None:
        for connector in self._by_name.values():
            connector.close()


class LocatorCheck:
    """``(system, locator) -> problem or None`` for ``records import``: whether the connector
    of a record's system can name its locator exactly. A system with no connector configured
    is not checked (its records cannot be executed until one is). A connector that cannot be
    asked (its database is down) makes each of its system's locators a problem, with the
    reason, asked once per import."""

    def __init__(self, registry: ConnectorRegistry) -> None:
        self._registry = registry
        self._systems = registry.systems()
        self._broken: dict[str, str] = {}

    def __call__(self, system: str | None, locator: str) -> str | None:
        if not system or system not in self._systems:
            return None
        if system in self._broken:
            return self._broken[system]
        connector = self._registry.for_system(system)
        try:
            problem = locator_problem(connector, locator)
        except ConnectorError as exc:
            self._broken[system] = f"cannot be checked by connector {connector.name}: {exc}"
            return self._broken[system]
        return None if problem is None else \
            f"connector {connector.name} cannot name this locator exactly: {problem}"


def _plugin(kind: str) -> Any:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == kind:
            return ep.load()
    return None


def build_connector(name: str, table: Mapping[str, Any], *, base_dir: Path) -> Connector:
    """One connector from its ``[connectors.NAME]`` table."""
    where = f"[connectors.{name}]"
    kind = table.get("kind")
    if not isinstance(kind, str) or not kind:
        raise ConnectorConfigError(f"{where}.kind: is required (sql, filesystem, manual, return, "
                                   "or an installed plug-in's kind)")
    options = {k: v for k, v in table.items() if k not in ("kind", "systems")}
    if kind in BUILTIN:
        cls, allowed = BUILTIN[kind]
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConnectorConfigError(f"{where}: unknown option(s) {', '.join(unknown)} for kind "
                                       f"{kind!r} (allowed: {', '.join(sorted(allowed))})")
        connector: Connector = cls.from_config(name, table, base_dir=base_dir)
        return connector
    factory = _plugin(kind)
    if factory is None:
        raise ConnectorConfigError(f"{where}.kind: no connector kind {kind!r} (built in: "
                                   f"{', '.join(BUILTIN)}; plug-ins register the entry point "
                                   f"group {ENTRY_POINT_GROUP!r})")
    make = getattr(factory, "from_config", factory)
    connector = make(name, table, base_dir=base_dir)
    if not isinstance(connector, Connector):
        raise ConnectorConfigError(f"{where}: the {kind!r} plug-in did not return a connector")
    return connector


def load_connectors(cfg: Config) -> ConnectorRegistry:
    """Every ``[connectors.NAME]`` table of the config, built and checked (nothing connects
    yet: a holding system that is down does not stop the service from starting)."""
    section = cfg.raw.get("connectors", {})
    where = cfg.source or "config"
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: [connectors] must be a table of [connectors.NAME] tables")
    base_dir = Path(cfg.source).parent if cfg.source else Path.cwd()
    connectors: dict[str, Connector] = {}
    systems: dict[str, str] = {}
    try:
        for name, table in section.items():
            if not isinstance(table, dict):
                raise ConnectorConfigError(f"[connectors.{name}]: must be a table")
            connector = build_connector(name, table, base_dir=base_dir)
            connectors[name] = connector
            if isinstance(connector, ReturnConnector):
                if "systems" in table:
                    raise ConnectorConfigError(f"[connectors.{name}].systems: a return "
                                               "connector serves every system; remove it")
                continue
            for system in systems_option(name, table, f"[connectors.{name}]"):
                if system in systems:
                    raise ConnectorConfigError(
                        f"[connectors.{name}].systems: system {system!r} is already served by "
                        f"[connectors.{systems[system]}]"
                    )
                systems[system] = name
        return ConnectorRegistry(connectors, systems)
    except ConnectorConfigError as exc:
        for c in connectors.values():
            c.close()
        raise ConfigError(f"{where}: {exc}") from exc


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "UNDECLARED",
    "Anonymiser",
    "BatchConnector",
    "Connector",
    "ConnectorConfigError",
    "ConnectorError",
    "ConnectorRef",
    "ConnectorRegistry",
    "CopyKeeper",
    "Export",
    "ExportedFile",
    "ExportedTable",
    "FilesystemConnector",
    "LocatorCheck",
    "LocatorRefused",
    "LocatorValidator",
    "ManualConnector",
    "PermanentConnectorError",
    "RemainingCopy",
    "ReturnConnector",
    "SqlConnector",
    "Transferrer",
    "TransientConnectorError",
    "build_connector",
    "delete_each",
    "exists_each",
    "load_connectors",
    "locator_problem",
    "remaining_copies",
]
