"""What controllers reach without an account: the published keys that check a certificate,
and the acknowledgement link from a disposal notice.

The link's signed token is its authority (only the notice's recipients have it). Opening the
link shows a form and changes nothing, because mail scanners follow links; only the POST
records an acknowledgement or a dispute, with the name the person gives.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from retentiond.lifecycle.context import LifecycleError
from retentiond.text import has_visible
from retentiond.web.auth import web_state
from retentiond.web.pages.common import FieldError, render

if TYPE_CHECKING:
    from retentiond.certificates.settings import CertificateSettings

router = APIRouter(include_in_schema=False)


def _certificate_settings(request: Request) -> CertificateSettings:
    from retentiond.certificates.settings import certificate_settings

    return certificate_settings(web_state(request).cfg)


@router.get("/keys/jwks.json", name="public_jwks")
def public_jwks(request: Request) -> JSONResponse:
    """The public key set that checks a certificate's signed JSON."""
    from retentiond.certificates.keys import KeyProblem, public_jwk

    try:
        key = public_jwk(_certificate_settings(request))
    except KeyProblem:
        raise HTTPException(status_code=404, detail="no signing key is set up yet") from None
    return JSONResponse({"keys": [key]}, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/keys/ca.pem", name="public_ca")
def public_ca(request: Request) -> Response:
    """The CA certificate that checks a certificate's signed PDF (and its JSON)."""
    from retentiond.certificates.settings import CA_CERT

    path = _certificate_settings(request).path(CA_CERT)
    try:
        pem = path.read_bytes()
    except OSError:
        raise HTTPException(status_code=404, detail="no CA certificate is set up yet") from None
    return Response(pem, media_type="application/x-pem-file",
                    headers={"Cache-Control": "public, max-age=3600"})


def _link_settings(request: Request) -> tuple[bytes | None, int]:
    from retentiond.notify.settings import notify_settings

    settings = notify_settings(web_state(request).cfg)
    return settings.secret, settings.ack_link_days


def _serial(request: Request, token: str) -> tuple[str | None, dt.date | None]:
    """The certificate a link names, or None; and the day it expired after, when it has."""
    from retentiond.notify.ack import TokenExpired, check_link

    secret, days = _link_settings(request)
    if not secret or not token:
        return None, None
    state = web_state(request)
    try:
        with state.sessions() as session:
            return check_link(session, secret, token, today=state.clock.today(),
                              link_days=days), None
    except TokenExpired as exc:
        return exc.serial, exc.expires_on
    except LifecycleError:
        return None, None


def _form(request: Request, *, token: str, serial: str | None, dispute: bool,
          errors: list[FieldError] | None = None, by: str = "", comment: str = "",
          done: str | None = None, expired: dt.date | None = None,
          status_code: int = 200) -> HTMLResponse:
    if expired is not None:
        status_code = 410
    return render(request, "acknowledge.html", title="Acknowledge a disposal certificate",
                  token=token, serial=serial, dispute=dispute, errors=errors or [],
                  error_summary=errors or None, by=by, expired=expired,
                  comment=comment, done=done, status_code=status_code)


@router.get("/acknowledge", name="ack_form")
def ack_form(request: Request, token: str = "", action: str = "") -> HTMLResponse:
    """The page an acknowledgement link opens: it says which certificate, and asks (or says
    the link has expired)."""
    serial, expired = _serial(request, token)
    return _form(request, token=token, serial=serial, dispute=action == "dispute",
                 expired=expired, status_code=200 if serial else 400)


@router.post("/acknowledge", name="ack_submit")
async def ack_submit(request: Request) -> HTMLResponse:
    """Record the acknowledgement or dispute the person confirmed."""
    from retentiond.notify.ack import TokenExpired, acknowledge_with_token

    form = await request.form()
    token = str(form.get("token") or "")
    by = str(form.get("by") or "").strip()
    comment = str(form.get("comment") or "").strip()
    dispute = form.get("kind") == "disputed"
    serial, expired = await run_in_threadpool(_serial, request, token)
    if serial is None or expired is not None:
        return _form(request, token=token, serial=serial, dispute=dispute, expired=expired,
                     status_code=400)
    errors = []
    if not has_visible(by):
        errors.append(FieldError("by", "Enter your name, so the issuer knows who confirmed"))
    if dispute and not has_visible(comment):
        errors.append(FieldError("comment", "Say what is wrong with the certificate"))
    if errors:
        return _form(request, token=token, serial=serial, dispute=dispute, errors=errors, by=by,
                     comment=comment, status_code=400)
    ctx = web_state(request).context(f"link:{serial}")
    secret, days = _link_settings(request)
    assert secret is not None  # _serial checked it
    try:
        view = await run_in_threadpool(lambda: acknowledge_with_token(
            ctx, secret, token, by=by, dispute=dispute, comment=comment or None,
            link_days=days))
    except TokenExpired as exc:  # expired between the two checks (midnight)
        return _form(request, token=token, serial=serial, dispute=dispute,
                     expired=exc.expires_on)
    except LifecycleError as exc:
        errors = [FieldError("comment", str(exc))]
        return _form(request, token=token, serial=serial, dispute=dispute, errors=errors,
                     by=by, comment=comment, status_code=400)
    return _form(request, token=token, serial=serial, dispute=dispute, done=view.kind)
