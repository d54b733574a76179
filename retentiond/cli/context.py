"""What every command that works on the registry starts from: a context built from the
configuration (its own module so that the command modules need not import each other)."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine

from retentiond.clock import SystemClock
from retentiond.config import Config
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.logs import get_logger
from retentiond.policy import PolicySet, load_policy_in_force
from retentiond.registry.db import make_engine, require_current, require_exists, session_factory


def load_policy(cfg: Config) -> PolicySet:
    """The policy set the configuration puts in force."""
    return load_policy_in_force(cfg.policy_paths)


def open_registry(cfg: Config, *, check_schema: bool = True) -> Engine:
    """The registry's engine. A SQLite file that is not there is refused, not created (only
    ``db upgrade`` creates a registry); refusals say which config and database were used."""
    where = f" ({cfg.describe_database()})"
    require_exists(cfg.database_url, where=where)
    engine = make_engine(cfg.database_url)
    if check_schema:
        require_current(engine, where=where)
    return engine


def make_context(cfg: Config, *, check_schema: bool = True) -> Context:
    engine = open_registry(cfg, check_schema=check_schema)
    return Context(sessions=session_factory(engine), policy=load_policy(cfg),
                   clock=SystemClock(), actor=cfg.actor)


def acting_context(cfg: Config, act: str) -> Context:
    """The context for a separation-of-duty act (approving, making an API token): it acts as
    the operating-system user running the command. Another name (``[actor] name``,
    ``$RETENTIOND_ACTOR``) is refused unless the config sets the break-glass
    ``[cli] allow_actor_override = true``; then the operating-system user is recorded beside
    the actor in the act's audit event, and logged by :func:`log_override` once it is done
    (docs/cli.md)."""
    ctx = make_context(cfg)
    if cfg.actor_set_by is None:
        return ctx
    if not cfg.allow_actor_override:
        raise LifecycleError(
            f"{act} acts as the person running it, the operating-system user {cfg.os_user!r}, "
            f"not {cfg.actor!r} (set by {cfg.actor_set_by}): a rule's different approvers must "
            "be different people. Run it as that person, or see docs/cli.md for the "
            "break-glass setting [cli] allow_actor_override")
    return dataclasses.replace(ctx, os_user=cfg.os_user)


def log_override(ctx: Context, act: str) -> None:
    """Log a separation-of-duty act done under the break-glass (after it is done: the first
    line on stderr of a refused command is its error)."""
    if ctx.os_user is not None:
        get_logger("retentiond.cli").warning("actor_override", act=act, actor=ctx.actor,
                                             os_user=ctx.os_user)
