"""What every command that works on the registry starts from: a context built from the
configuration (its own module so that the command modules need not import each other)."""

from __future__ import annotations

from retentiond.clock import SystemClock
from retentiond.config import Config
from retentiond.lifecycle.context import Context
from retentiond.policy import PolicySet, load_policy_in_force
from retentiond.registry.db import make_engine, require_current, session_factory


def load_policy(cfg: Config) -> PolicySet:
    """The policy set the configuration puts in force."""
    return load_policy_in_force(cfg.policy_paths)


def make_context(cfg: Config, *, check_schema: bool = True) -> Context:
    engine = make_engine(cfg.database_url)
    if check_schema:
        require_current(engine)
    return Context(sessions=session_factory(engine), policy=load_policy(cfg),
                   clock=SystemClock(), actor=cfg.actor)
