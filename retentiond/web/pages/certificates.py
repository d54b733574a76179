"""Certificates and notifications: listed and downloadable once ``retentiond.certificates``
lands; until then the page says so plainly."""

from __future__ import annotations

import importlib.util

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from retentiond.web.pages.common import render

router = APIRouter(include_in_schema=False)


def certificates_available() -> bool:
    return importlib.util.find_spec("retentiond.certificates") is not None


@router.get("/certificates", name="certificates_page")
def certificates_page(request: Request) -> HTMLResponse:
    return render(request, "certificates.html", title="Certificates and notices",
                  available=certificates_available())
