"""The long-running service (``retentiond run``); see ``docs/daemon.md``.

Exit statuses, so that systemd does not restart what a restart cannot fix
(``RestartPreventExitStatus=78`` in the unit): 0 stopped cleanly; 1 a job failed (``--once``)
or the service failed; 75 another daemon holds the SQLite database; 78 the configuration,
the policies or the database schema are wrong.
"""

from __future__ import annotations

import sys

from retentiond.config import Config, ConfigError
from retentiond.daemon.sdnotify import notify

EX_TEMPFAIL = 75
EX_CONFIG = 78


def run(cfg: Config, *, once: bool = False) -> int:
    """``retentiond run [--once]``."""
    from retentiond.daemon.instance_lock import InstanceLocked
    from retentiond.daemon.service import ListenError, Service
    from retentiond.logs import describe_error
    from retentiond.policy import PolicyError
    from retentiond.registry.db import SchemaError

    try:
        service = Service(cfg)
        return service.run_once() if once else service.serve()
    except InstanceLocked as exc:
        return _refuse(str(exc), EX_TEMPFAIL)
    except ListenError as exc:
        # Exit 1, not 78: systemd may try again, and the address may be free by then.
        return _refuse(str(exc), 1)
    except PolicyError as exc:
        lines = [f"policy refused: {len(exc.problems)} problem(s)", *exc.problems]
        return _refuse("\n  ".join(lines), EX_CONFIG)
    except (ConfigError, SchemaError) as exc:
        return _refuse(str(exc), EX_CONFIG)
    except Exception as exc:  # e.g. the database is down: say so in systemctl status too
        notify(f"STATUS=failed: {describe_error(exc)}")
        raise


def _refuse(message: str, status: int) -> int:
    notify(f"STATUS=failed to start: {message.splitlines()[0]}")
    print(f"retentiond: error: {message}", file=sys.stderr)
    return status
