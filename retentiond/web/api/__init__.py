"""The JSON REST API under ``/api/v1``; its OpenAPI document is ``/api/v1/openapi.json``.

Machines authenticate with ``Authorization: Bearer rtd_...`` (an API token acting as its
user); a browser session works too, with the ``X-CSRF-Token`` header on changes.
"""

from __future__ import annotations

from typing import Any

from retentiond.web.api.schemas import Error

#: The refusals every route may answer with (422 is added by FastAPI where it applies).
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "a parameter or body that cannot be used"},
    401: {"model": Error, "description": "no valid session or API token"},
    403: {"model": Error, "description": "the role does not allow it"},
    404: {"model": Error, "description": "no such thing (or not yours to see)"},
    409: {"model": Error, "description": "refused by the lifecycle (state, hold, approvers)"},
}
