"""Configuration: a TOML file, overridden by environment variables, overridden by flags.

The file format is documented in ``docs/configuration.md``; ``examples/retentiond.toml`` is a
complete example.
"""

from __future__ import annotations

import getpass
import importlib.resources
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_CONFIG = Path("/etc/retentiond/retentiond.toml")


#: Environment variables that set one key of a subsystem's section: what differs between
#: instances of the service on one host (docs/daemon.md, "Several instances").
INSTANCE_OVERRIDES: dict[str, tuple[str, str]] = {
    "RETENTIOND_INSTANCE": ("daemon", "instance"),
    "RETENTIOND_METRICS_LISTEN": ("metrics", "listen"),
    "RETENTIOND_WEB_LISTEN": ("web", "listen"),
}


class ConfigError(ValueError):
    """The configuration is wrong; the message names the file and the key."""


#: The keys of the sections this module reads itself; every other section is checked, key by
#: key, by the subsystem that reads it ([daemon], [web], [notify], ...).
_SECTION_KEYS: dict[str, set[str]] = {
    "database": {"url"},
    "policies": {"paths"},
    "actor": {"name"},
    "logging": {"level", "format", "pseudonym_key_file"},
    "cli": {"allow_actor_override"},
}
#: Database URL schemes the registry runs on (docs/configuration.md).
SUPPORTED_DATABASES = "sqlite:///PATH or postgresql://USER@HOST:PORT/NAME"


def _section(doc: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """A section this module reads, refusing a non-table and unknown keys (a misspelt key
    must not be silently ignored: ``[policies] path = ...`` would load the default pack)."""
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table, not {table!r}")
    allowed = _SECTION_KEYS[name]
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: [{name}].{key}: unknown key "
                              f"(allowed: {', '.join(sorted(allowed))})")
    return table


def check_database_url(url: str, where: str) -> None:
    """Refuse a URL the registry cannot run on, naming ``where`` (file and key, or the
    environment variable) and the supported schemes. The URL itself is not repeated: it may
    hold a password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from retentiond.registry.db import normalise_url

    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        raise ConfigError(f"{where}: is not a database URL (use {SUPPORTED_DATABASES})") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if (backend, driver) not in (("sqlite", "pysqlite"), ("postgresql", "psycopg")):
        scheme = parsed.drivername
        raise ConfigError(f"{where}: unsupported database {scheme!r}: retentiond runs on SQLite "
                          f"and PostgreSQL (through psycopg 3) only; use {SUPPORTED_DATABASES}")


def _default_state_dir() -> Path:
    if state := os.environ.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "retentiond"


def packaged_packs() -> Path:
    """The directory of the policy packs that ship with retentiond (``policies/`` in the
    repository, the package ``retentiond.packs`` once installed)."""
    # An installed wheel is unpacked on disk, so the resource is a directory path.
    return Path(str(importlib.resources.files("retentiond.packs")))


def _default_policies() -> list[str]:
    system = Path("/etc/retentiond/policies")
    if system.is_dir():
        return [str(system)]
    return [str(packaged_packs() / "isa-default.toml")]


@dataclass(kw_only=True)
class Config:
    """Everything the commands and the service need to know about their surroundings."""

    source: str | None = None
    #: How ``source`` was chosen: ``--config``, ``$RETENTIOND_CONFIG`` or ``the default``.
    source_how: str = ""
    database_url: str = ""
    policy_paths: list[str] = field(default_factory=list)
    actor: str = ""
    #: The operating-system user running the command.
    os_user: str = ""
    #: What set ``actor`` to a name other than ``os_user`` (``[actor] name`` or
    #: ``$RETENTIOND_ACTOR``); None when the actor is the operating-system user.
    actor_set_by: str | None = None
    #: ``[cli] allow_actor_override``: the break-glass that lets separation-of-duty acts
    #: (approving, making an API token) run as a name other than the operating-system user.
    allow_actor_override: bool = False
    log_level: str = "info"
    log_format: str = "json"
    pseudonym_key: bytes = b""
    #: The whole parsed file, for subsystems that read their own sections
    #: ([daemon], [connectors.NAME], [web], ...). Each validates its own section.
    raw: dict[str, Any] = field(default_factory=dict)
    #: ``"section.key"`` -> the environment variable that set it (for error messages).
    overridden: dict[str, str] = field(default_factory=dict)
    database_from_file: bool = False
    #: ``[systems.NAME] name = "School MIS"``: what people read for a record's system.
    system_names: dict[str, str] = field(default_factory=dict)

    def system_label(self, system: str | None) -> str | None:
        """The display name of a holding system, else its code as imported."""
        if system is None:
            return None
        return self.system_names.get(system, system)

    def set_by(self, key: str) -> str:
        """`` (set by $VARIABLE)`` when an environment variable set ``key``, for messages."""
        variable = self.overridden.get(key)
        return f" (set by ${variable})" if variable else ""

    def describe_source(self) -> str:
        """Which config file was used, or where one was looked for (for messages)."""
        if self.source is not None:
            return f"config file {self.source} (from {self.source_how})"
        return (f"no config file: none was given by --config or $RETENTIOND_CONFIG, and "
                f"there is no {SYSTEM_CONFIG}")

    def describe_database(self) -> str:
        """What chose the database, and which config was read (for messages)."""
        if "database.url" in self.overridden:
            return f"from $RETENTIOND_DATABASE_URL; {self.describe_source()}"
        if self.database_from_file:
            return f"from {self.describe_source()}"
        if self.source is not None:
            return f"the default: {self.describe_source()} sets no [database] url"
        return f"the default: {self.describe_source()}"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _get(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if value is not None and not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: must be a {kind.__name__}, not {value!r}")
    return value


def _system_names(table: Any, where: str) -> dict[str, str]:
    """``[systems.mis] name = "School MIS"``: display names of the systems records name."""
    if not isinstance(table, dict):
        raise ConfigError(f'{where}: [systems] must hold tables such as [systems.mis] name = "..."')
    names = {}
    for system, entry in table.items():
        if not isinstance(entry, dict):
            raise ConfigError(f'{where}: [systems.{system}] must be a table: name = "..."')
        unknown = sorted(set(entry) - {"name"})
        if unknown:
            raise ConfigError(f"{where}: [systems.{system}].{unknown[0]}: unknown key (allowed: name)")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: [systems.{system}].name: must be a non-empty string")
        names[system] = name.strip()
    return names


def load_config(path: str | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the config file (``--config``, else ``$RETENTIOND_CONFIG``, else
    ``/etc/retentiond/retentiond.toml`` if it exists) and apply environment overrides."""
    env = dict(os.environ if env is None else env)
    chosen = path or env.get("RETENTIOND_CONFIG")
    how = "--config" if path else "$RETENTIOND_CONFIG"
    if chosen is None and SYSTEM_CONFIG.is_file():
        chosen, how = str(SYSTEM_CONFIG), "the default location"
    doc: dict[str, Any] = {}
    if chosen is not None:
        try:
            doc = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"{chosen}: no such config file") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{chosen}: not valid TOML: {exc}") from exc
    where = chosen or "config"
    allowed = {"database", "policies", "actor", "logging", "daemon", "connectors", "web",
               "notify", "certificates", "metrics", "cli", "sources", "systems"}
    for key in doc:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown section [{key}] (allowed: {', '.join(sorted(allowed))})")
    database = _section(doc, "database", where)
    policies = _section(doc, "policies", where)
    actor = _section(doc, "actor", where)
    logging = _section(doc, "logging", where)
    cli = _section(doc, "cli", where)
    base = Path(chosen).parent if chosen else Path.cwd()

    def relative(p: str) -> str:
        return str((base / p).resolve()) if not Path(p).is_absolute() else p

    cfg = Config(source=chosen, source_how=how if chosen else "", raw=doc,
                 system_names=_system_names(doc.get("systems", {}), where))
    url = _get(database, "url", str, f"{where}: [database]")
    cfg.database_url = url or f"sqlite:///{_default_state_dir() / 'retentiond.db'}"
    cfg.database_from_file = bool(url)
    paths = _get(policies, "paths", list, f"{where}: [policies]")
    if paths is not None and not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"{where}: [policies].paths: must be a list of file or directory "
                          f"names, not {paths!r}")
    cfg.policy_paths = [relative(p) for p in paths] if paths else _default_policies()
    cfg.actor = _get(actor, "name", str, f"{where}: [actor]") or ""
    actor_set_by = "[actor] name" if cfg.actor else None
    cfg.allow_actor_override = bool(_get(cli, "allow_actor_override", bool, f"{where}: [cli]"))
    cfg.log_level = _get(logging, "level", str, f"{where}: [logging]") or "info"
    cfg.log_format = _get(logging, "format", str, f"{where}: [logging]") or "json"
    key_file = _get(logging, "pseudonym_key_file", str, f"{where}: [logging]")

    if v := env.get("RETENTIOND_DATABASE_URL"):
        cfg.database_url = v
        cfg.overridden["database.url"] = "RETENTIOND_DATABASE_URL"
    if v := env.get("RETENTIOND_POLICIES"):
        cfg.policy_paths = [p for p in v.split(os.pathsep) if p]
    if v := env.get("RETENTIOND_ACTOR"):
        cfg.actor, actor_set_by = v, "$RETENTIOND_ACTOR"
    if v := env.get("RETENTIOND_LOG_LEVEL"):
        cfg.log_level = v
    if v := env.get("RETENTIOND_LOG_FORMAT"):
        cfg.log_format = v
    key_file = env.get("RETENTIOND_PSEUDONYM_KEY_FILE") or key_file
    # Per-instance settings, for several instances on one host sharing one config file
    # (systemd/retentiond@.service reads them from /etc/retentiond/instance-%i.env). They are
    # written into the sections their subsystems validate, so a bad value is refused there,
    # naming the variable.
    for variable, (section, key) in INSTANCE_OVERRIDES.items():
        if v := env.get(variable):
            table = doc.get(section, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: [{section}] must be a table")
            doc[section] = {**table, key: v}
            cfg.overridden[f"{section}.{key}"] = variable
    check_database_url(cfg.database_url, f"{where}: [database].url{cfg.set_by('database.url')}")
    if cfg.log_format not in ("json", "console"):
        raise ConfigError(f"{where}: [logging].format: must be 'json' or 'console'")
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}: [logging].level: must be debug, info, warning or error")
    if key_file:
        try:
            cfg.pseudonym_key = Path(relative(key_file)).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: pseudonym key file {key_file}: {exc.strerror}") from exc
    cfg.os_user = getpass.getuser()
    if not cfg.actor:
        cfg.actor = cfg.os_user
    cfg.actor_set_by = actor_set_by if cfg.actor != cfg.os_user else None
    return cfg
