"""/healthz and /metrics as WSGI: status codes and bodies, without a socket."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import generate_latest

from retentiond.daemon.health import Health
from retentiond.daemon.httpd import make_app
from retentiond.daemon.metrics import Metrics


class DownCounts:
    """A counts cache whose database is unreachable."""

    max_age_s = 0.0

    def get(self, **_: Any) -> Any:
        raise ConnectionError("registry down")

    def peek(self) -> None:
        return None


def call(app: Any, path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": "",
               "wsgi.url_scheme": "http", "SERVER_NAME": "x", "SERVER_PORT": "1"}
    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def metrics() -> Metrics:
    health = Health(heartbeat_max_age_s=10, stall_s={"evaluate": 60})
    return Metrics(DownCounts(), health, lambda: {"policy_version": "abc"})


def test_healthz_is_200_with_json_when_healthy():
    """A healthy check answers 200 and its document as JSON."""
    app = make_app(metrics().registry, lambda: (True, {"status": "ok"}))
    status, headers, body = call(app, "/healthz")
    assert status == "200 OK" and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}


def test_healthz_is_503_when_unhealthy_or_when_the_check_breaks():
    """Unhealthy is 503 with the problems; a check that raises is 503 too, never a 500."""
    app = make_app(metrics().registry, lambda: (False, {"status": "unhealthy", "problems": ["x"]}))
    status, _, body = call(app, "/healthz")
    assert status.startswith("503") and json.loads(body)["problems"] == ["x"]

    def broken() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("boom")

    status, _, body = call(make_app(metrics().registry, broken), "/healthz")
    assert status.startswith("503") and json.loads(body)["error"] == "RuntimeError"


def test_other_paths_and_methods_are_refused():
    """Unknown paths are 404; anything but GET and HEAD is 405."""
    app = make_app(metrics().registry, lambda: (True, {}))
    assert call(app, "/")[0].startswith("404")
    assert call(app, "/metrics", "POST")[0].startswith("405")


def test_metrics_answer_when_the_registry_does_not():
    """A scrape during a database outage still answers, with retentiond_registry_up 0."""
    m = metrics()
    m.job_done("evaluate", "failed", 1.5, None)
    text = generate_latest(m.registry).decode()
    assert "retentiond_registry_up 0.0" in text
    assert 'retentiond_info{policy_version="abc",version=' in text
    assert 'retentiond_job_runs_total{job="evaluate",outcome="failed"} 1.0' in text
    assert 'retentiond_job_duration_seconds_count{job="evaluate"} 1.0' in text
    status, _, body = call(make_app(m.registry, lambda: (True, {})), "/metrics")
    assert status == "200 OK" and b"retentiond_registry_up 0.0" in body
