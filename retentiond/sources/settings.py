"""``[sources.NAME]`` tables: where the registry reads its records from by itself.

Every problem is refused with the file and the key (``retentiond.toml: [sources.mis].settle_s:
must be a number``), when the service starts or reloads, so that a typo is found then and not
at the first run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from retentiond.config import Config, ConfigError
from retentiond.connectors.base import ConnectorConfigError, read_secret
from retentiond.ingest.records import OPTIONAL, REQUIRED
from retentiond.registry.db import normalise_url

KINDS = ("inbox", "sql")
MODES = ("full", "changes")
#: The feed name the push API's records carry (``POST /api/v1/records``): no source may take it.
API_SOURCE = "api"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_COMMON = {"kind", "mode", "cron", "interval_s", "enabled"}
_KIND_KEYS = {
    "inbox": {"path", "settle_s"},
    "sql": {"url", "url_file", "url_credential", "query", "columns", "fetch_size"},
}
RECORD_COLUMNS = (*REQUIRED, *OPTIONAL)


@dataclass(frozen=True, kw_only=True)
class SourceSpec:
    """One configured source."""

    name: str
    kind: str
    #: ``full``: each extract lists every record of the source (reconciled); ``changes``:
    #: each extract only adds and updates.
    mode: str = "changes"
    cron: str | None = None
    interval_s: float | None = None
    enabled: bool = True
    #: inbox: the folder exports land in (``done/``, ``refused/`` and ``work/`` beside them).
    path: Path | None = None
    #: inbox: seconds between the two looks at a file without a ``.ready`` marker.
    settle_s: float = 5.0
    #: sql: the database URL (may hold a password: never logged, never shown).
    url: str | None = field(default=None, repr=False)
    query: str | None = None
    #: sql: record column -> the query's column, where they differ.
    columns: dict[str, str] = field(default_factory=dict)
    fetch_size: int = 10_000

    def describe(self) -> str:
        """The schedule, in words."""
        if not self.enabled:
            return "disabled"
        return f"cron '{self.cron}' Europe/London" if self.cron else f"every {self.interval_s:g}s"

    @property
    def full(self) -> bool:
        return self.mode == "full"


def _number(table: dict[str, Any], key: str, where: str, minimum: float, *,
            integer: bool = False) -> Any:
    value = table[key]
    ok = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not ok:
        raise ConfigError(f"{where}.{key}: must be {'a whole number' if integer else 'a number'}"
                          f", not {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}.{key}: must be at least {minimum:g}, not {value!r}")
    return value


def _text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.{key}: is required (a string)")
    return value.strip()


def _sql_url(table: dict[str, Any], where: str, base: Path) -> str:
    """As connectors take it: inline only without a password, else from a file or a systemd
    credential."""
    inline = table.get("url")
    try:
        if inline is not None:
            if not isinstance(inline, str):
                raise ConfigError(f"{where}.url: must be a string")
            if table.get("url_file") or table.get("url_credential"):
                raise ConfigError(f"{where}: give url, url_file or url_credential, only one")
            url = inline
        else:
            secret = read_secret(table, "url", where, base_dir=base)
            assert secret is not None
            url = secret
    except ConnectorConfigError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        parsed = make_url(normalise_url(url))
    except Exception as exc:
        raise ConfigError(f"{where}: the database URL is not a SQLAlchemy URL") from exc
    if inline is not None and parsed.password is not None:
        raise ConfigError(f"{where}.url: a URL with a password belongs in url_file or "
                          "url_credential")
    return normalise_url(url)


def _columns(table: dict[str, Any], where: str) -> dict[str, str]:
    columns = table.get("columns", {})
    if not isinstance(columns, dict):
        raise ConfigError(f"{where}.columns: must be a table of record_column = \"query_column\"")
    out: dict[str, str] = {}
    for record_column, query_column in columns.items():
        if record_column not in RECORD_COLUMNS:
            raise ConfigError(f"{where}.columns.{record_column}: not a record column (one of "
                              f"{', '.join(RECORD_COLUMNS)})")
        if not isinstance(query_column, str) or not query_column:
            raise ConfigError(f"{where}.columns.{record_column}: must be the query's column name")
        if query_column in out.values():
            raise ConfigError(f"{where}.columns.{record_column}: {query_column!r} is already "
                              "mapped to another record column")
        out[record_column] = query_column
    return out


def source_spec(name: str, table: Any, where: str, *, base: Path) -> SourceSpec:
    """One ``[sources.NAME]`` table, checked."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}: {name!r} is not a source name (lower-case letters, digits, "
                          "'_' and '-', at most 64)")
    if name == API_SOURCE:
        raise ConfigError(f"{where}: the name {API_SOURCE!r} is kept for records pushed through "
                          "the API")
    kind = table.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: must be one of {', '.join(KINDS)}, not {kind!r}")
    allowed = _COMMON | _KIND_KEYS[kind]
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key for kind {kind!r} (allowed: "
                              f"{', '.join(sorted(allowed))})")
    kw: dict[str, Any] = {"name": name, "kind": kind}
    mode = table.get("mode", "changes")
    if mode not in MODES:
        raise ConfigError(f"{where}.mode: must be one of {', '.join(MODES)}, not {mode!r}")
    kw["mode"] = mode
    if ("cron" in table) == ("interval_s" in table):
        raise ConfigError(f"{where}: give a schedule, either cron or interval_s (not both)")
    if "cron" in table:
        from retentiond.cron import check_cron

        if not isinstance(table["cron"], str):
            raise ConfigError(f"{where}.cron: must be a string such as \"0 2 * * *\"")
        kw["cron"] = check_cron(table["cron"].strip(), f"{where}.cron")
    else:
        kw["interval_s"] = float(_number(table, "interval_s", where, 1))
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            raise ConfigError(f"{where}.enabled: must be true or false")
        kw["enabled"] = table["enabled"]
    if kind == "inbox":
        text = _text(table, "path", where)
        path = Path(text) if Path(text).is_absolute() else (base / text).resolve()
        kw["path"] = path
        if "settle_s" in table:
            kw["settle_s"] = float(_number(table, "settle_s", where, 0))
    else:
        kw["url"] = _sql_url(table, where, base)
        kw["query"] = _text(table, "query", where)
        kw["columns"] = _columns(table, where)
        if "fetch_size" in table:
            kw["fetch_size"] = _number(table, "fetch_size", where, 1, integer=True)
    return SourceSpec(**kw)


def load_sources(cfg: Config) -> tuple[SourceSpec, ...]:
    """Every ``[sources.NAME]`` of the config, by name; raises ``ConfigError``."""
    src = cfg.source or "config"
    section = cfg.raw.get("sources", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{src}: [sources] must be a table of [sources.NAME] tables")
    base = Path(cfg.source).parent if cfg.source else Path.cwd()
    return tuple(source_spec(name, section[name], f"{src}: [sources.{name}]", base=base)
                 for name in sorted(section))
