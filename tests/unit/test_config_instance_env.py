"""Per-instance environment variables: what differs between instances of the service on one
host (systemd/retentiond@.service), on top of one shared config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from retentiond.config import ConfigError, load_config
from retentiond.daemon.settings import load_settings
from retentiond.web.settings import load_web_settings


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    path = tmp_path / "retentiond.toml"
    path.write_text('[database]\nurl = "postgresql+psycopg://retentiond@db/registry"\n'
                    '[daemon]\ninstance = "from-file"\n[metrics]\nlisten = "127.0.0.1:9464"\n'
                    '[web]\nenabled = true\nlisten = "127.0.0.1:8080"\n', encoding="utf-8")
    return path


def test_without_the_variables_the_file_is_used(shared: Path) -> None:
    cfg = load_config(str(shared), env={})
    s = load_settings(cfg)
    assert s.instance == "from-file" and s.metrics_listen == ("127.0.0.1", 9464)
    assert load_web_settings(cfg).port == 8080
    assert cfg.overridden == {}


def test_each_instance_gets_its_own_name_and_ports(shared: Path) -> None:
    env = {"RETENTIOND_INSTANCE": "host-a-2", "RETENTIOND_METRICS_LISTEN": "127.0.0.1:9466",
           "RETENTIOND_WEB_LISTEN": "127.0.0.1:8082"}
    cfg = load_config(str(shared), env=env)
    s = load_settings(cfg)
    assert s.instance == "host-a-2" and s.metrics_listen == ("127.0.0.1", 9466)
    web = load_web_settings(cfg)
    assert (web.host, web.port) == ("127.0.0.1", 8082)
    # The rest of each section is the shared file's.
    assert cfg.raw["web"]["enabled"] is True
    assert cfg.overridden == {"daemon.instance": "RETENTIOND_INSTANCE",
                              "metrics.listen": "RETENTIOND_METRICS_LISTEN",
                              "web.listen": "RETENTIOND_WEB_LISTEN"}


def test_a_variable_works_without_the_section_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bare.toml"
    path.write_text("", encoding="utf-8")
    cfg = load_config(str(path), env={"RETENTIOND_METRICS_LISTEN": "127.0.0.1:9470"})
    assert load_settings(cfg).metrics_listen == ("127.0.0.1", 9470)


@pytest.mark.parametrize(("variable", "value", "load", "expected"), [
    ("RETENTIOND_METRICS_LISTEN", "9466", load_settings,
     "[metrics].listen (set by $RETENTIOND_METRICS_LISTEN): '9466' is not host:port"),
    ("RETENTIOND_WEB_LISTEN", "localhost", load_web_settings,
     "[web].listen (set by $RETENTIOND_WEB_LISTEN): must be HOST:PORT"),
])
def test_a_bad_value_names_the_variable(shared: Path, variable, value, load, expected) -> None:
    cfg = load_config(str(shared), env={variable: value})
    with pytest.raises(ConfigError) as info:
        load(cfg)
    assert expected in str(info.value)
