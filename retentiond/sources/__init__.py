"""Sources: the registry follows the systems that hold its facts by itself.

``[sources.NAME]`` tables (``settings.py``) name an inbox folder (``inbox.py``) or a query
(``sql.py``) and a schedule; the daemon's ``sources`` job runs those that are due
(``run.py``), each run all or nothing through the importer's rules
(``retentiond.ingest.records.apply_feed``). See ``docs/sources.md``.
"""

from __future__ import annotations

from retentiond.sources.run import (
    SourceOutcome,
    SourceStatus,
    gone_by_source,
    next_run_at,
    run_due_sources,
    run_source,
    source_statuses,
)
from retentiond.sources.settings import API_SOURCE, SourceSpec, load_sources

__all__ = [
    "API_SOURCE",
    "SourceOutcome",
    "SourceSpec",
    "SourceStatus",
    "gone_by_source",
    "load_sources",
    "next_run_at",
    "run_due_sources",
    "run_source",
    "source_statuses",
]
