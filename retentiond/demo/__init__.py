"""The demonstration: synthetic data, and (``site``) everything ``./dev run`` sets up around it.

Nothing here is personal data, and nothing here is used by the service itself.
"""

from __future__ import annotations

from retentiond.demo.estate import load_demo

__all__ = ["load_demo"]
