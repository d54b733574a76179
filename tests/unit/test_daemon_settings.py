"""The [daemon] and [metrics] sections: defaults, and refusals that name the file and key."""

from __future__ import annotations

from typing import Any

import pytest

from retentiond.config import Config, ConfigError
from retentiond.daemon.settings import JOB_NAMES, load_settings, parse_listen


def settings(raw: dict[str, Any]):
    return load_settings(Config(source="/etc/retentiond/retentiond.toml", raw=raw))


def test_defaults_schedule_every_job():
    """With no [daemon] section every job runs on its default schedule, metrics on loopback."""
    s = settings({})
    assert tuple(s.jobs) == JOB_NAMES
    assert s.jobs["evaluate"].cron == "30 3 * * *"
    assert s.jobs["execute"].interval_s == 60 and s.jobs["execute"].batch_size == 100
    assert s.migrate_on_start is True
    assert s.metrics_listen == ("127.0.0.1", 9464)


def test_a_job_can_switch_from_cron_to_interval_and_be_disabled():
    """Giving interval_s replaces the default cron; enabled = false keeps the spec."""
    s = settings({"daemon": {"jobs": {"evaluate": {"interval_s": 600},
                                      "digest": {"enabled": False}}}})
    assert s.jobs["evaluate"].cron is None and s.jobs["evaluate"].interval_s == 600
    assert s.jobs["digest"].enabled is False and s.jobs["digest"].describe() == "disabled"


@pytest.mark.parametrize(("raw", "message"), [
    ({"daemon": {"stop_timeout": 3}}, "[daemon].stop_timeout: unknown key"),
    ({"daemon": {"jobs": {"evaluation": {}}}}, "[daemon.jobs].evaluation: unknown key"),
    ({"daemon": {"jobs": {"evaluate": {"cron": "30 3 * * *", "interval_s": 5}}}},
     "[daemon.jobs.evaluate]: give either cron or interval_s"),
    ({"daemon": {"jobs": {"evaluate": {"cron": "30 3 * *"}}}},
     "[daemon.jobs.evaluate].cron: '30 3 * *' is not a cron expression of five fields"),
    ({"daemon": {"jobs": {"digest": {"cron": "0 8 * * 1-5"}}}},
     "[daemon.jobs.digest].cron: day of week '1-5': use names"),
    ({"daemon": {"jobs": {"digest": {"cron": "0 25 * * *"}}}},
     "[daemon.jobs.digest].cron: '0 25 * * *' is not a valid cron expression"),
    ({"daemon": {"jobs": {"execute": {"interval_s": 0}}}},
     "[daemon.jobs.execute].interval_s: must be at least 0.1"),
    ({"daemon": {"jobs": {"execute": {"batch_size": 2.5}}}},
     "[daemon.jobs.execute].batch_size: must be a whole number"),
    ({"daemon": {"jobs": {"digest": {"batch_size": 5}}}},
     "[daemon.jobs.digest].batch_size: unknown key"),
    ({"daemon": {"migrate_on_start": "yes"}}, "[daemon].migrate_on_start: must be true or false"),
    ({"daemon": {"heartbeat_s": True}}, "[daemon].heartbeat_s: must be a number"),
    ({"metrics": {"listen": "localhost"}}, "[metrics].listen: 'localhost' is not host:port"),
    ({"metrics": {"listen": "metrics.example:9464"}}, "is not an IP address"),
    ({"metrics": {"port": 9464}}, "[metrics].port: unknown key"),
])
def test_mistakes_are_refused_with_file_and_key(raw, message):
    """Each refusal names the config file and the key, so the operator can find it."""
    with pytest.raises(ConfigError) as exc:
        settings(raw)
    assert str(exc.value).startswith("/etc/retentiond/retentiond.toml: ")
    assert message in str(exc.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("[::1]:9464", ("::1", 9464)),
    ("localhost:0", ("localhost", 0)),
    ("", None),
])
def test_listen_addresses(text, expected):
    """host:port, bracketed IPv6, and an empty string to turn the endpoint off."""
    assert parse_listen(text, "x") == expected
