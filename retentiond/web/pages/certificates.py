"""Certificates and notices: the list (a controller sees its own), one certificate with its
notices and acknowledgements, the signed PDF and JSON to download, resending a notice (IG
officers), and a controller acknowledging or disputing its certificate. Built on
``retentiond.certificates.views`` and ``retentiond.notify``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.text import has_visible
from retentiond.web.auth import audit, context_for, current
from retentiond.web.pages.common import FieldError, redirect, render

router = APIRouter(include_in_schema=False)


def certificates_available() -> bool:
    try:
        import retentiond.certificates.views  # noqa: F401
    except ImportError:
        return False
    return True


def visible_certificates(request: Request, limit: int = 200) -> list[Any]:
    from retentiond.certificates.views import list_certificates

    principal = current(request)
    return list_certificates(context_for(request), controller=principal.controller_code,
                             limit=limit)


def visible_certificate(request: Request, serial: str) -> Any:
    """One certificate the user may see; 404 for another controller's (same words as none)."""
    from retentiond.certificates.views import show_certificate

    try:
        detail = show_certificate(context_for(request), serial)
    except LifecycleError:
        raise HTTPException(status_code=404, detail=f"no certificate {serial}") from None
    principal = current(request)
    if principal.controller_code is not None and detail.view.controller != principal.controller_code:
        audit(request, "AccessDenied", "certificate", serial, {"why": "another controller's"})
        raise HTTPException(status_code=404, detail=f"no certificate {serial}")
    return detail


@router.get("/certificates", name="certificates_page")
def certificates_page(request: Request) -> HTMLResponse:
    items = visible_certificates(request) if certificates_available() else []
    return render(request, "certificates.html", title="Certificates and notices",
                  available=certificates_available(), items=items)


def _certificate_view(request: Request, serial: str, *, errors: list[FieldError] | None = None,
                      status_code: int = 200) -> HTMLResponse:
    detail = visible_certificate(request, serial)
    return render(request, "certificate.html", title=f"Certificate {serial}", c=detail.view,
                  detail=detail, error_summary=errors, errors=errors, status_code=status_code)


@router.get("/certificates/{serial}", name="certificate_page")
def certificate_page(request: Request, serial: str) -> HTMLResponse:
    return _certificate_view(request, serial)


@router.get("/certificates/{serial}/download/{kind}", name="certificate_download")
def certificate_download(request: Request, serial: str, kind: str) -> Response:
    from retentiond.certificates.views import certificate_files

    if kind not in ("pdf", "json"):
        raise HTTPException(status_code=404, detail="download pdf or json")
    visible_certificate(request, serial)
    pdf, jws = certificate_files(context_for(request), serial)
    audit(request, "CertificateDownloaded", "certificate", serial, {"format": kind})
    body, media = (pdf, "application/pdf") if kind == "pdf" else (jws.encode(), "application/json")
    return Response(body, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{serial}.{kind}"'})


#: A notice's id in an address: bounded like every other id route, so an id no backend can
#: hold (2**63 overflows PostgreSQL's and SQLite's bigint) is refused (a page answers 400),
#: never a 500.
NotificationId = Annotated[int, Path(ge=1, le=2**62)]


@router.post("/notifications/{notification_id:int}/resend", name="notification_resend")
async def notification_resend(request: Request, notification_id: NotificationId) -> Response:
    from retentiond.notify.outbox import resend

    form = await request.form()
    back = str(form.get("back") or "/certificates")
    if not back.startswith("/certificates"):
        back = "/certificates"
    try:
        await run_in_threadpool(resend, context_for(request), notification_id)
    except LifecycleError as exc:
        return redirect(back, flash=str(exc), kind="important")
    return redirect(back, flash=f"Notice {notification_id} will be sent again.")


@router.post("/certificates/{serial}/acknowledge", name="certificate_acknowledge")
async def certificate_acknowledge(request: Request, serial: str) -> Response:
    from retentiond.notify.ack import acknowledge

    form = await request.form()
    principal = current(request)
    kind = "disputed" if form.get("dispute") else "acknowledged"
    comment = str(form.get("comment") or "").strip() or None
    if kind == "disputed" and not has_visible(comment or ""):
        errors = [FieldError("comment", "Say what is wrong with the certificate")]
        return await run_in_threadpool(lambda: _certificate_view(request, serial, errors=errors,
                                                                 status_code=400))
    try:
        await run_in_threadpool(lambda: acknowledge(
            context_for(request), serial, by=principal.username, kind=kind, comment=comment,
            via="web", controller=principal.controller_code))
    except LifecycleError:
        raise HTTPException(status_code=404, detail=f"no certificate {serial}") from None
    return redirect(f"/certificates/{serial}", flash="Thank you: your " +
                    ("acknowledgement" if kind == "acknowledged" else "dispute") + " is recorded.")
