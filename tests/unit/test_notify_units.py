"""Pure parts of certificates and notifications: backoff, webhook signatures, tokens, the
config sections and the document's own consistency checks."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from retentiond.certificates.document import check_consistency, totals
from retentiond.certificates.settings import certificate_settings
from retentiond.config import Config, ConfigError
from retentiond.notify.ack import TokenInvalid, make_token, read_token
from retentiond.notify.channels import check_webhook_signature, message_id, webhook_signature
from retentiond.notify.outbox import backoff_s
from retentiond.notify.settings import NotifySettings, notify_settings


@pytest.mark.parametrize(("attempts", "low", "high"), [
    (1, 30, 60), (2, 60, 120), (3, 120, 240), (10, 1800, 3600), (40, 1800, 3600),
])
def test_backoff_doubles_with_jitter_up_to_the_cap(attempts, low, high):
    """Delay after n tries: base * 2**(n-1), capped, times a factor in [0.5, 1]."""
    settings = NotifySettings(sender="x@y", ig_email=None, backoff_s=60, backoff_max_s=3600)
    rng = random.Random(attempts)
    delays = [backoff_s(settings, attempts, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert max(delays) - min(delays) > (high - low) / 4  # jittered, not fixed


def test_webhook_signature_checks_key_body_and_age():
    """The receiver's check passes for the right key and body only, and refuses old ones."""
    header = webhook_signature(b"k1", 1_700_000_000, b'{"a":1}')
    assert check_webhook_signature(b"k1", header, b'{"a":1}')
    assert not check_webhook_signature(b"k2", header, b'{"a":1}')
    assert not check_webhook_signature(b"k1", header, b'{"a":2}')
    assert not check_webhook_signature(b"k1", header, b'{"a":1}', now=1_700_000_000 + 3600)
    assert not check_webhook_signature(b"k1", "garbage", b'{"a":1}')


def test_message_id_is_stable_per_key():
    """The same notice always has the same Message-ID; another notice another one."""
    assert message_id("certificate:A-000001:email") == message_id("certificate:A-000001:email")
    assert message_id("certificate:A-000001:email") != message_id("certificate:A-000002:email")


def test_ack_token_round_trip_and_tamper():
    """A token names its serial; changed or foreign tokens are refused."""
    until = dt.date(2027, 2, 20)
    token = make_token(b"secret", "SCH-01-000003", expires_on=until)
    assert read_token(b"secret", token) == "SCH-01-000003"
    other = make_token(b"secret", "SCH-01-000004", expires_on=until)
    forged = other.split(".")[0] + "." + ".".join(token.split(".")[1:])
    extended = token.replace(".20270220.", ".20370220.")
    for bad in (forged, extended, token + "x", "nonsense", ""):
        with pytest.raises(TokenInvalid):
            read_token(b"secret", bad)
    with pytest.raises(TokenInvalid):
        read_token(b"another", token)


def _cfg(tmp_path: Path, raw: dict) -> Config:
    return Config(source=str(tmp_path / "retentiond.toml"), raw=raw)


@pytest.mark.parametrize(("raw", "message"), [
    ({"certificates": {"batch": "weekly"}}, r"\[certificates\].batch"),
    ({"certificates": {"isuer": "x"}}, r"\[certificates\].isuer: unknown key"),
    ({"notify": {"max_attempts": 0}}, r"\[notify\].max_attempts"),
    ({"notify": {"smtp": {"security": "ssl", "host": "h"}}}, r"\[notify.smtp\].security"),
    ({"notify": {"smtp": {"host": "h", "username": "u"}}}, r"password_file: required"),
    ({"notify": {"secret_file": "missing-secret"}}, r"retentiond.toml: \[notify\].secret_file"),
    ({"notify": {"colour": "blue"}}, r"\[notify\].colour: unknown key"),
])
def test_config_errors_name_the_file_and_key(tmp_path, raw, message):
    """A bad [certificates] or [notify] is refused with the file and the key."""
    with pytest.raises(ConfigError, match=message) as exc:
        certificate_settings(_cfg(tmp_path, raw))
        notify_settings(_cfg(tmp_path, raw))
    assert "retentiond.toml" in str(exc.value)


def test_relative_paths_are_relative_to_the_config(tmp_path):
    """key_dir and secret_file are read relative to the config file."""
    (tmp_path / "secret").write_text("s3\n")
    cfg = _cfg(tmp_path, {"certificates": {"key_dir": "keys", "issuer": "X"},
                          "notify": {"secret_file": "secret",
                                     "smtp": {"host": "mail", "port": 25, "security": "none"}}})
    assert certificate_settings(cfg).key_dir == tmp_path / "keys"
    settings = notify_settings(cfg)
    assert settings.secret == b"s3" and settings.smtp is not None and settings.smtp.port == 25


def test_consistency_finds_wrong_totals_and_chain_fields():
    """Signed content that contradicts itself is reported."""
    records = [{"action": "deleted", "category": "c"}]
    good = {"type": "retentiond.disposal-certificate", "records": records,
            "totals": totals(records), "sequence": 1, "previous": None}
    assert check_consistency(good) == []
    assert "totals" in check_consistency({**good, "totals": {"records": 2}})[0]
    assert "names no previous" in check_consistency({**good, "sequence": 2})[0]
    assert "first certificate" in check_consistency({**good, "previous": {"sha256": "x"}})[0]
