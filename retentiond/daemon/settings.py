"""The ``[daemon]`` and ``[metrics]`` sections of the config file, validated.

Every problem is refused with the file and the key, so that a typo in a job name or an
interval is found when the service starts (or reloads), not at three in the morning.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from retentiond.config import Config, ConfigError
from retentiond.cron import check_cron

#: The jobs the daemon knows, in the order ``run --once`` runs them: holds that ended are
#: lifted, and the sources read, before evaluation looks at what is due; execution runs after
#: leases are reaped; what was executed is certified, and everything queued in the pass (the
#: certificates' notices, the IG digest) is delivered by ``deliver`` last, in the same pass: a
#: digest queued after the delivery would wait for the next run, a day later.
JOB_NAMES = ("expire_holds", "sources", "evaluate", "advance_notice", "reap_leases", "execute",
             "certify", "digest", "deliver")

#: Defaults: cron expressions are Europe/London wall-clock times.
DEFAULT_SCHEDULES: dict[str, dict[str, Any]] = {
    # A hold is active through its ``until`` date, so expiry is due just after midnight.
    "expire_holds": {"cron": "5 0 * * *"},
    # Looks for the [sources.NAME] that are due (each has its own schedule) and runs them.
    "sources": {"interval_s": 60},
    # 03:30 is outside the hour the clocks change in (01:00-02:00), every year.
    "evaluate": {"cron": "30 3 * * *"},
    "advance_notice": {"cron": "0 7 * * *"},
    "reap_leases": {"interval_s": 120},
    "execute": {"interval_s": 60},
    "certify": {"interval_s": 300},
    "deliver": {"interval_s": 60},
    "digest": {"cron": "0 8 * * *"},
}

_JOB_KEYS = {"cron", "interval_s", "enabled", "stall_s"}
_EXTRA_JOB_KEYS = {"execute": {"batch_size", "lease_s"}}
_DAEMON_KEYS = {"migrate_on_start", "stop_timeout_s", "heartbeat_s", "overdue_grace_days",
                "instance", "jobs"}
_METRICS_KEYS = {"listen", "cache_s"}


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """When one job runs: a cron expression in Europe/London, or a fixed interval."""

    name: str
    enabled: bool = True
    cron: str | None = None
    interval_s: float | None = None
    #: A run that takes longer than this is taken as stuck: the watchdog stops being fed.
    stall_s: float = 3600.0
    batch_size: int = 100
    lease_s: int = 600

    def describe(self) -> str:
        if not self.enabled:
            return "disabled"
        return f"cron '{self.cron}' Europe/London" if self.cron else f"every {self.interval_s:g}s"


@dataclass(frozen=True, kw_only=True)
class DaemonSettings:
    """What ``retentiond run`` reads from ``[daemon]`` and ``[metrics]``."""

    migrate_on_start: bool = True
    stop_timeout_s: float = 60.0
    heartbeat_s: float = 5.0
    overdue_grace_days: int = 30
    instance: str = ""
    jobs: dict[str, JobSpec] = field(default_factory=dict)
    #: ``None``: no HTTP endpoint.
    metrics_listen: tuple[str, int] | None = ("127.0.0.1", 9464)
    metrics_cache_s: float = 15.0


def _number(table: dict[str, Any], key: str, where: str, *, minimum: float,
            integer: bool = False) -> Any:
    value: Any = table[key]
    ok = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not ok:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where}.{key}: must be {kind}, not {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}.{key}: must be at least {minimum:g}, not {value!r}")
    return value


def _check_keys(table: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, not {table!r}")
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    return table


def _job(name: str, table: Any, where: str) -> JobSpec:
    table = _check_keys(table, _JOB_KEYS | _EXTRA_JOB_KEYS.get(name, set()), where)
    merged = dict(table)
    if "cron" not in table and "interval_s" not in table:
        merged.update(DEFAULT_SCHEDULES[name])
    if "cron" in table and "interval_s" in table:
        raise ConfigError(f"{where}: give either cron or interval_s, not both")
    kw: dict[str, Any] = {"name": name}
    if "cron" in merged:
        if not isinstance(merged["cron"], str):
            raise ConfigError(f"{where}.cron: must be a string such as \"30 3 * * *\"")
        kw["cron"] = check_cron(merged["cron"].strip(), f"{where}.cron")
    else:
        kw["interval_s"] = float(_number(merged, "interval_s", where, minimum=0.1))
    if "enabled" in table:
        if not isinstance(table["enabled"], bool):
            raise ConfigError(f"{where}.enabled: must be true or false")
        kw["enabled"] = table["enabled"]
    if "stall_s" in table:
        kw["stall_s"] = float(_number(table, "stall_s", where, minimum=1))
    if "batch_size" in table:
        kw["batch_size"] = _number(table, "batch_size", where, minimum=1, integer=True)
    if "lease_s" in table:
        kw["lease_s"] = _number(table, "lease_s", where, minimum=1, integer=True)
    return JobSpec(**kw)


def parse_listen(text: str, where: str) -> tuple[str, int] | None:
    """``host:port`` (``[::1]:9464`` for IPv6); an empty string turns the endpoint off."""
    if text == "":
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: {text!r} is not host:port, e.g. \"127.0.0.1:9464\"")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"{where}: {host!r} is not an IP address (use 127.0.0.1 or ::1)") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def load_settings(cfg: Config) -> DaemonSettings:
    """``[daemon]`` and ``[metrics]`` from the config, with defaults; raises ``ConfigError``."""
    src = cfg.source or "config"
    daemon = _check_keys(cfg.raw.get("daemon", {}), _DAEMON_KEYS, f"{src}: [daemon]")
    metrics = _check_keys(cfg.raw.get("metrics", {}), _METRICS_KEYS, f"{src}: [metrics]")
    where = f"{src}: [daemon]"
    kw: dict[str, Any] = {}
    if "migrate_on_start" in daemon:
        if not isinstance(daemon["migrate_on_start"], bool):
            raise ConfigError(f"{where}.migrate_on_start: must be true or false")
        kw["migrate_on_start"] = daemon["migrate_on_start"]
    if "stop_timeout_s" in daemon:
        kw["stop_timeout_s"] = float(_number(daemon, "stop_timeout_s", where, minimum=1))
    if "heartbeat_s" in daemon:
        kw["heartbeat_s"] = float(_number(daemon, "heartbeat_s", where, minimum=0.1))
    if "overdue_grace_days" in daemon:
        kw["overdue_grace_days"] = _number(daemon, "overdue_grace_days", where, minimum=0,
                                           integer=True)
    if "instance" in daemon:
        if not isinstance(daemon["instance"], str):
            raise ConfigError(f"{where}.instance: must be a string")
        kw["instance"] = daemon["instance"]
    jobs_table = _check_keys(daemon.get("jobs", {}), set(JOB_NAMES), f"{src}: [daemon.jobs]")
    kw["jobs"] = {name: _job(name, jobs_table.get(name, {}), f"{src}: [daemon.jobs.{name}]")
                  for name in JOB_NAMES}
    mwhere = f"{src}: [metrics]"
    if "listen" in metrics:
        if not isinstance(metrics["listen"], str):
            raise ConfigError(f"{mwhere}.listen: must be a string such as \"127.0.0.1:9464\"")
        kw["metrics_listen"] = parse_listen(metrics["listen"].strip(),
                                            f"{mwhere}.listen{cfg.set_by('metrics.listen')}")
    if "cache_s" in metrics:
        kw["metrics_cache_s"] = float(_number(metrics, "cache_s", mwhere, minimum=0))
    return DaemonSettings(**kw)
