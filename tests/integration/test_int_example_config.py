"""examples/retentiond.toml is a config retentiond accepts, and states the defaults."""

from __future__ import annotations

from pathlib import Path

from retentiond.config import load_config
from retentiond.daemon.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retentiond.toml"


def test_example_config_loads_and_matches_the_defaults():
    """Every section of the example parses, and the daemon values it shows are the defaults."""
    cfg = load_config(str(EXAMPLE), env={})
    assert cfg.database_url == "sqlite:////var/lib/retentiond/retentiond.db"
    shown = load_settings(cfg)
    cfg.raw = {k: v for k, v in cfg.raw.items() if k not in ("daemon", "metrics")}
    defaults = load_settings(cfg)
    assert shown == defaults
