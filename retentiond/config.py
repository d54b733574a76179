"""Configuration: a TOML file, overridden by environment variables, overridden by flags.

The file format is documented in ``docs/configuration.md``; ``examples/retentiond.toml`` is a
complete example.
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEM_CONFIG = Path("/etc/retentiond/retentiond.toml")
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


#: Environment variables that set one key of a subsystem's section: what differs between
#: instances of the service on one host (docs/daemon.md, "Several instances").
INSTANCE_OVERRIDES: dict[str, tuple[str, str]] = {
    "RETENTIOND_INSTANCE": ("daemon", "instance"),
    "RETENTIOND_METRICS_LISTEN": ("metrics", "listen"),
    "RETENTIOND_WEB_LISTEN": ("web", "listen"),
}


class ConfigError(ValueError):
    """The configuration is wrong; the message names the file and the key."""


def _default_state_dir() -> Path:
    if state := os.environ.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "retentiond"


def _default_policies() -> list[str]:
    system = Path("/etc/retentiond/policies")
    if system.is_dir():
        return [str(system)]
    return [str(PACKAGE_ROOT / "policies" / "isa-default.toml")]


@dataclass(kw_only=True)
class Config:
    """Everything the commands and the service need to know about their surroundings."""

    source: str | None = None
    #: How ``source`` was chosen: ``--config``, ``$RETENTIOND_CONFIG`` or ``the default``.
    source_how: str = ""
    database_url: str = ""
    policy_paths: list[str] = field(default_factory=list)
    actor: str = ""
    log_level: str = "info"
    log_format: str = "json"
    pseudonym_key: bytes = b""
    #: The whole parsed file, for subsystems that read their own sections
    #: ([daemon], [connectors.NAME], [web], ...). Each validates its own section.
    raw: dict[str, Any] = field(default_factory=dict)
    #: ``"section.key"`` -> the environment variable that set it (for error messages).
    overridden: dict[str, str] = field(default_factory=dict)
    database_from_file: bool = False
    overridden_database: bool = False
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
        if self.overridden_database:
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
               "notify", "certificates", "metrics", "systems"}
    for key in doc:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown section [{key}] (allowed: {', '.join(sorted(allowed))})")
    database = doc.get("database", {})
    policies = doc.get("policies", {})
    actor = doc.get("actor", {})
    logging = doc.get("logging", {})
    base = Path(chosen).parent if chosen else Path.cwd()

    def relative(p: str) -> str:
        return str((base / p).resolve()) if not Path(p).is_absolute() else p

    cfg = Config(source=chosen, source_how=how if chosen else "", raw=doc,
                 system_names=_system_names(doc.get("systems", {}), where))
    url = _get(database, "url", str, f"{where}: [database]")
    cfg.database_url = url or f"sqlite:///{_default_state_dir() / 'retentiond.db'}"
    cfg.database_from_file = bool(url)
    paths = _get(policies, "paths", list, f"{where}: [policies]")
    cfg.policy_paths = [relative(p) for p in paths] if paths else _default_policies()
    cfg.actor = _get(actor, "name", str, f"{where}: [actor]") or ""
    cfg.log_level = _get(logging, "level", str, f"{where}: [logging]") or "info"
    cfg.log_format = _get(logging, "format", str, f"{where}: [logging]") or "json"
    key_file = _get(logging, "pseudonym_key_file", str, f"{where}: [logging]")

    if v := env.get("RETENTIOND_DATABASE_URL"):
        cfg.database_url, cfg.overridden_database = v, True
    if v := env.get("RETENTIOND_POLICIES"):
        cfg.policy_paths = [p for p in v.split(os.pathsep) if p]
    if v := env.get("RETENTIOND_ACTOR"):
        cfg.actor = v
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
    if cfg.log_format not in ("json", "console"):
        raise ConfigError(f"{where}: [logging].format must be 'json' or 'console'")
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}: [logging].level must be debug, info, warning or error")
    if key_file:
        try:
            cfg.pseudonym_key = Path(relative(key_file)).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: pseudonym key file {key_file}: {exc.strerror}") from exc
    if not cfg.actor:
        cfg.actor = getpass.getuser()
    return cfg
