"""``/metrics`` and ``/healthz`` on a loopback address: a small threaded WSGI server.

prometheus-client's own ``start_http_server`` answers every path with metrics; we also need
``/healthz`` (200 with JSON when healthy, 503 otherwise) and a 404 for anything else.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

#: ``(healthy, document)``
HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_app(registry: CollectorRegistry, health: HealthCheck) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD")])
            return [b""]
        if path == "/metrics":
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            try:
                ok, doc = health()
            except Exception as exc:  # the check itself failed: that is not healthy
                ok, doc = False, {"status": "error", "error": type(exc).__name__}
            body = json.dumps(doc, sort_keys=True).encode()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "application/json"),
                            ("Cache-Control", "no-store"), ("Content-Length", str(len(body)))])
            return [body]
        body = b"not found: try /metrics or /healthz\n"
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [body]

    return app


class MetricsServer:
    """Serves in a daemon thread; ``close`` stops it."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry,
                 health: HealthCheck) -> None:
        server_class = _Server6 if ":" in host else _Server
        self.server = make_server(host, port, make_app(registry, health),
                                  server_class=server_class, handler_class=_QuietHandler)
        self.address: tuple[str, int] = self.server.server_address[:2]  # type: ignore[assignment]
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics-http",
                                       daemon=True, kwargs={"poll_interval": 0.5})
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
