"""Configuration (issue 11, item 11): every section of the config file refuses a key it does
not know, and every error names the file and the key; a database URL the registry cannot run
on is refused naming the file, the key and the supported schemes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from retentiond.config import Config, ConfigError, load_config


def _daemon(cfg: Config) -> Any:
    from retentiond.daemon.settings import load_settings

    return load_settings(cfg)


def _web(cfg: Config) -> Any:
    from retentiond.web.settings import load_web_settings

    return load_web_settings(cfg)


def _notify(cfg: Config) -> Any:
    from retentiond.notify.settings import notify_settings

    return notify_settings(cfg)


def _certificates(cfg: Config) -> Any:
    from retentiond.certificates.settings import certificate_settings

    return certificate_settings(cfg)


def _connectors(cfg: Config) -> Any:
    from retentiond.connectors import load_connectors

    return load_connectors(cfg)


#: (TOML with one misspelt key, the loader that reads that section, the key as the error names it)
SECTIONS: list[tuple[str, Callable[[Config], Any], str]] = [
    ('[database]\nurls = "sqlite:///x.db"\n', lambda c: c, "urls"),
    ('[policies]\npath = ["policies"]\n', lambda c: c, "path"),
    ('[actor]\nnmae = "ig.officer"\n', lambda c: c, "nmae"),
    ('[logging]\nlevle = "debug"\n', lambda c: c, "levle"),
    ("[daemon]\nmigrate_on_strat = true\n", _daemon, "migrate_on_strat"),
    ('[daemon.jobs.evaluate]\ncorn = "0 3 * * *"\n', _daemon, "corn"),
    ('[metrics]\nlisten_on = "127.0.0.1:9464"\n', _daemon, "listen_on"),
    ("[web]\nenable = true\n", _web, "enable"),
    ('[notify]\nig_mail = "ig@la.example"\n', _notify, "ig_mail"),
    ('[notify.smtp]\nhost = "smtp.la.example"\nprot = 25\n', _notify, "prot"),
    ("[notify.webhook]\ntimeout = 3\n", _notify, "timeout"),
    ('[certificates]\nissuerr = "Synthetic Council"\n', _certificates, "issuerr"),
    ('[connectors.files]\nkind = "filesystem"\nroots = ["/srv"]\n', _connectors, "roots"),
]


@pytest.mark.parametrize(("text", "load", "key"), SECTIONS,
                         ids=[t.split("]")[0].lstrip("[") for t, _, _ in SECTIONS])
def test_every_section_refuses_an_unknown_key(tmp_path: Path, text: str,
                                              load: Callable[[Config], Any], key: str) -> None:
    """A misspelt key is refused by the section that owns it, naming the file and the key
    (a misspelt ``[policies] path`` must not quietly load the default pack instead)."""
    path = tmp_path / "retentiond.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(load_config(str(path), env={}))
    message = str(err.value)
    assert message.startswith(f"{path}: "), message
    assert key in message and "unknown" in message, message


@pytest.mark.parametrize("text", ['database = "sqlite:///x.db"\n', "policies = 3\n"])
def test_a_section_that_is_not_a_table_is_refused(tmp_path: Path, text: str) -> None:
    """``database = "..."`` (for ``[database] url = ...``) is a clear error, not a crash."""
    path = tmp_path / "retentiond.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"must be a table"):
        load_config(str(path), env={})


@pytest.mark.parametrize(("url", "scheme"), [
    ("mysql://ig:secret-password@db.la.example/retention", "mysql"),
    ("mariadb+pymysql://ig:secret-password@127.0.0.1:3306/test", "mariadb+pymysql"),
    ("postgresql+asyncpg://ig:secret-password@db/retention", "postgresql+asyncpg"),
    ("oracle://ig:secret-password@db/retention", "oracle"),
])
def test_unsupported_database_url_names_file_key_and_schemes(tmp_path: Path, url: str,
                                                             scheme: str) -> None:
    """A MySQL (or any other) URL fails with the file, the key, the scheme and what is
    supported, and never repeats the password."""
    path = tmp_path / "retentiond.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={})
    message = str(err.value)
    assert message.startswith(f"{path}: [database].url: unsupported database {scheme!r}")
    assert "sqlite:///PATH or postgresql://" in message
    assert "secret-password" not in message


def test_database_url_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    """When $RETENTIOND_DATABASE_URL set the URL, the error says so."""
    path = tmp_path / "retentiond.toml"
    path.write_text("")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), env={"RETENTIOND_DATABASE_URL": "mysql://h/db"})
    assert "[database].url (set by $RETENTIOND_DATABASE_URL): unsupported database 'mysql'" \
        in str(err.value)


@pytest.mark.parametrize("url", ["sqlite:///var/r.db", "postgresql://u@h/db",
                                 "postgres://u@h/db", "postgresql+psycopg://u@h:5432/db",
                                 "sqlite://"])
def test_supported_database_urls_are_accepted(tmp_path: Path, url: str) -> None:
    """SQLite and PostgreSQL URLs, in the forms the docs give, load."""
    path = tmp_path / "retentiond.toml"
    path.write_text(f'[database]\nurl = "{url}"\n')
    assert load_config(str(path), env={}).database_url == url
