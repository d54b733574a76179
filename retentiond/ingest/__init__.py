"""Importers: CSV and JSON lines -> validated facts -> registry, in bulk, all or nothing."""

from __future__ import annotations

from retentiond.ingest.errors import ImportRefused

__all__ = ["ImportRefused"]
