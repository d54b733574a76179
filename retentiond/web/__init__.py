"""The review UI and REST API: one FastAPI app (``create_app``), run by ``serve``.

Imports are lazy so that ``import retentiond.web`` costs nothing for commands that do not
serve pages.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from retentiond.config import Config


def create_app(cfg: Config, **kwargs: Any) -> FastAPI:
    """See ``retentiond.web.app.create_app``."""
    from retentiond.web.app import create_app as _create

    return _create(cfg, **kwargs)


def serve(cfg: Config, stop_event: threading.Event, **kwargs: Any) -> None:
    """See ``retentiond.web.app.serve``."""
    from retentiond.web.app import serve as _serve

    _serve(cfg, stop_event, **kwargs)


__all__ = ["create_app", "serve"]
