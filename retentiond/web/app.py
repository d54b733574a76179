"""The web application: one FastAPI app serving the review pages and the REST API.

``create_app(cfg)`` builds it; ``serve(cfg, stop_event)`` runs it under uvicorn until the
event is set (the daemon starts it in a thread when ``[web] enabled = true``; ``retentiond
web`` runs it in the foreground).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException

from retentiond import __version__
from retentiond.clock import Clock, SystemClock
from retentiond.config import Config
from retentiond.logs import get_logger
from retentiond.policy import PolicySet, load_policy_in_force
from retentiond.web.auth import Denied, LoginRequired, WebState, authorise, is_api
from retentiond.web.settings import WEB_DIR, WebSettings, load_web_settings

if TYPE_CHECKING:
    from retentiond.connectors import ConnectorRegistry

log = get_logger("retentiond.web")
#: Where the app serves static files (mounted below): the only responses a browser or proxy
#: may keep. Everything else (pages, the API, errors) may carry personal data.
STATIC_PREFIXES = ("/static/", "/govuk/", "/assets/")
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def create_app(cfg: Config, *, policy: PolicySet | None = None, clock: Clock | None = None,
               sessions: sessionmaker[Session] | None = None,
               settings: WebSettings | None = None,
               connectors: ConnectorRegistry | None = None) -> FastAPI:
    """The app for ``cfg``; tests and the daemon may pass the policy, clock and sessions.
    ``connectors`` (the holding systems', which confirming data not found asks again) are
    loaded from ``cfg`` when first needed unless given; given ones are the caller's to close."""
    from retentiond.registry.db import (
        make_engine,
        require_current,
        require_exists,
        session_factory,
    )

    settings = settings or load_web_settings(cfg)
    if sessions is None:
        where = f" ({cfg.describe_database()})"
        require_exists(cfg.database_url, where=where)
        engine = make_engine(cfg.database_url)
        require_current(engine, where=where)
        sessions = session_factory(engine)
    if policy is None:
        policy = load_policy_in_force(cfg.policy_paths)
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    state = WebState(cfg=cfg, settings=settings, sessions=sessions, policy=policy,
                     clock=clock or SystemClock(), templates=templates,
                     export_key=cfg.pseudonym_key or os.urandom(32), connectors=connectors)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:  # the connectors the app loaded itself (connection pools, sessions)
            state.close_connectors()

    app = FastAPI(
        lifespan=lifespan,
        title="retentiond", version=__version__, openapi_url=None, docs_url=None,
        redoc_url=None, dependencies=[Depends(authorise)],
        description="Review and disposal of records shared under Information Sharing "
                    "Agreements. Authenticate with `Authorization: Bearer rtd_...`.",
    )
    app.state.web = state

    from retentiond.web.api import disposals as api_disposals
    from retentiond.web.api import feed as api_feed
    from retentiond.web.api import filters as api_filters
    from retentiond.web.api import holds as api_holds
    from retentiond.web.api import overview as api_overview
    from retentiond.web.api import records as api_records
    from retentiond.web.api import tasks as api_tasks
    from retentiond.web.api import tokens as api_tokens
    from retentiond.web.pages import (
        account,
        audit,
        certificates,
        dashboard,
        exports,
        filters,
        groups,
        holds,
        public,
        queue,
        queue_matching,
        records,
        signin,
        sources,
        tasks,
        users,
    )
    from retentiond.web.pages import (
        policy as policy_pages,
    )

    # exports first: /holds/export.csv must win over /holds/{id}
    for module in (signin, account, dashboard, exports, queue, queue_matching, records, tasks,
                   holds, filters, policy_pages, audit, certificates, public, users, groups,
                   sources, api_disposals, api_tasks, api_records, api_holds, api_filters,
                   api_overview, api_tokens,
                   api_feed):
        app.include_router(module.router)
    if settings.oidc is not None:
        from retentiond.web import oidc

        app.include_router(oidc.router)

    meta = APIRouter(include_in_schema=False)

    @meta.get("/api/v1/openapi.json", name="openapi_document")
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    app.include_router(meta)
    _mount_static(app, settings)
    _install_handlers(app)
    return app


def iter_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every API route the app serves, through included routers too (FastAPI 0.120+ keeps
    them as wrappers in ``app.routes``; routers here are included without a prefix)."""
    def walk(routes: Any) -> Iterator[APIRoute]:
        for route in routes:
            if isinstance(route, APIRoute):
                yield route
            elif hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)

    yield from walk(app.routes)


def _mount_static(app: FastAPI, settings: WebSettings) -> None:
    assets = settings.assets_dir
    if (assets / "govuk-frontend.min.css").is_file():
        app.mount("/govuk", StaticFiles(directory=str(assets)), name="govuk")
        app.mount("/assets", StaticFiles(directory=str(assets / "assets")), name="govuk-assets")
    else:
        log.warning("govuk_frontend_missing", assets_dir=str(assets),
                    hint="build them (python retentiond/web/frontend/build.py; ./dev and wheel builds do) "
                    "or set [web] assets_dir")
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")


def _page_error(request: Request, status: int, title: str, message: str) -> Response:
    from retentiond.web.pages.common import render

    try:
        return render(request, "error.html", title=title, message=message, status_code=status)
    except Exception:  # the error page must never fail the error
        return Response(f"{title}: {message}", status_code=status, media_type="text/plain")


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        if is_api(request):
            return JSONResponse({"detail": "sign in, or send an API token: Authorization: Bearer rtd_..."},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(Denied)
    async def denied(request: Request, exc: Denied) -> Response:
        if is_api(request):
            return JSONResponse({"detail": str(exc)}, status_code=403)
        message = str(exc)
        if exc.permission is not None:
            from retentiond.web.wording import PERMISSION_WORDS

            words = PERMISSION_WORDS.get(exc.permission, "do this")
            message = (f"Your role does not let you {words}. If your work needs it, ask an "
                       "administrator.")
        return _page_error(request, 403, "You cannot do this", message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_api(request) or exc.status_code == 405:
            return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        if exc.status_code == 404:
            return _page_error(request, 404, "Page not found",
                               "There is nothing here, or it is not yours to see.")
        return _page_error(request, exc.status_code, "There is a problem", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if is_api(request):
            from fastapi.encoders import jsonable_encoder

            return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
        return _page_error(request, 400, "There is a problem",
                           "Part of the address or form could not be understood.")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CSP)
        if request.app.state.web.settings.cookie_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        # Not kept by the browser's cache, a shared proxy or the back button's history: a
        # signed-out user on a shared machine must not find a record page or API answer there.
        # Routes that publish something (the key set, the CA) set their own.
        if not request.url.path.startswith(STATIC_PREFIXES):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def set_policy(app: FastAPI, policy: PolicySet) -> None:
    """Put a newly loaded policy set in force for the pages and API (the daemon calls this
    when it reloads policies, so both act under the same version)."""
    app.state.web.policy = policy


def serve(cfg: Config, stop_event: threading.Event, *, app: FastAPI | None = None) -> None:
    """Run the app under uvicorn until ``stop_event`` is set (or, in the main thread, a
    SIGTERM/SIGINT). Blocks.

    The daemon runs it in a thread: ``app = create_app(cfg, policy=policy)`` (so that the web
    and the scheduled jobs share the policy in force; ``set_policy(app, new)`` on a reload),
    then ``serve(cfg, stop_event, app=app)``. uvicorn installs no signal handlers outside the
    main thread; setting ``stop_event`` stops it gracefully.
    """
    import uvicorn

    settings = load_web_settings(cfg)
    app = app or create_app(cfg)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, access_log=False,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None, server_header=False,
    )
    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # said only once the address is bound, never before
                log.info("web_listening", host=settings.host, port=settings.port)

    server = Server(config)

    def watch() -> None:
        stop_event.wait()
        server.should_exit = True

    threading.Thread(target=watch, name="retentiond-web-stop", daemon=True).start()
    with contextlib.suppress(SystemExit):  # uvicorn exits this way when it cannot bind
        server.run()
    if not server.started:
        chosen = ("$RETENTIOND_WEB_LISTEN" if "web.listen" in cfg.overridden
                  else f"[web] listen in {cfg.source}" if cfg.source else "[web] listen")
        raise RuntimeError(f"the web server could not start on {settings.host}:{settings.port} "
                           f"(is another program using the address?): {chosen} chose it; set "
                           "it, or RETENTIOND_WEB_LISTEN for this instance, to a free address")
