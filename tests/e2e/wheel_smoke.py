"""What a council's platform team does with a release, done for real: build the wheel, install
it into a fresh virtualenv with Node hidden and no source tree on the path, then the documented
first run (``retentiond init``, ``retentiond run --once``) and one page of the running service,
styled.

Used by tests/e2e/test_e2e_wheel.py and by CI (``.ci/run``)::

    .venv/bin/python tests/e2e/wheel_smoke.py [WORKDIR]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "Synthetic Borough Council"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def without_node(workdir: Path) -> dict[str, str]:
    """The environment with a PATH that has Python but no node or npm, no RETENTIOND_*
    variables, no PYTHONPATH, and HOME in ``workdir``."""
    bin_dir = workdir / "bin-without-node"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("sh", "bash", "env", "uname", "ldconfig", "gcc", "cc"):
        found = shutil.which(tool)
        if found and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RETENTIOND_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=str(bin_dir), HOME=str(workdir), XDG_DATA_HOME=str(workdir / "data"))
    return env


def run(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout}\n"
                             f"{done.stderr}")
    return done.stdout


def build_wheel(source: Path, out: Path) -> Path:
    """``pip wheel`` of ``source`` (a clone or an unpacked sdist) into ``out``."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        cwd=out.parent, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    wheels = sorted(out.glob("retentiond-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def install(wheel: Path, venv: Path, env: dict[str, str]) -> Path:
    """A fresh virtualenv with the wheel and its dependencies; its ``retentiond``."""
    run([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent, env=env)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", str(wheel)], cwd=venv.parent, env=env)
    return venv / "bin" / "retentiond"


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers.get("Content-Type", ""), response.read()


def first_run(retentiond: Path, workdir: Path, env: dict[str, str]) -> dict[str, object]:
    """The documented first run against the installed command; what it saw."""
    seen: dict[str, object] = {}
    python = retentiond.with_name("python")
    seen["module"] = run([str(python), "-c", "import retentiond; print(retentiond.__file__)"],
                         cwd=workdir, env=env).strip()
    shown = json.loads(run([str(retentiond), "policies", "show", "--format", "json"],
                           cwd=workdir, env=env))
    seen["default_packs"] = [p["path"] for p in shown["packs"]]
    etc = workdir / "etc"
    run([str(retentiond), "init", "--dir", str(etc), "--issuer", ISSUER], cwd=workdir, env=env)
    config = str(etc / "retentiond.toml")
    seen["once"] = run([str(retentiond), "--config", config, "run", "--once"], cwd=workdir,
                       env=env)
    port = free_port()
    served = {**env, "RETENTIOND_WEB_LISTEN": f"127.0.0.1:{port}",
              "RETENTIOND_METRICS_LISTEN": f"127.0.0.1:{free_port()}"}
    with (workdir / "service.log").open("w") as log:
        service = subprocess.Popen([str(retentiond), "--config", config, "run"], cwd=workdir,
                                   env=served, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, kind, page = get(base + "/login")
                break
            except OSError:
                if service.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the service did not serve /login:\n"
                                         + (workdir / "service.log").read_text()) from None
                time.sleep(0.3)
        seen["login"] = (status, kind, page.decode())
        seen["css"] = get(base + "/govuk/govuk-frontend.min.css")
        seen["font"] = get(base + "/assets/fonts/bold-b542beb274-v2.woff2")[:2]
    finally:
        service.send_signal(signal.SIGTERM)
        seen["stopped"] = service.wait(timeout=60)
    return seen


def check(seen: dict[str, object], venv: Path) -> None:
    """What a working, styled install shows; raises AssertionError naming what is wrong."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert str(seen["module"]).startswith(str(site)), f"imported {seen['module']}, not the wheel"
    assert seen["default_packs"] == [str(site / "retentiond" / "packs" / "isa-default.toml")], \
        seen["default_packs"]
    once = str(seen["once"])
    for job in ("evaluate", "execute", "certify", "deliver"):
        assert f"{job}: ok" in once, once
    status, kind, html = seen["login"]  # type: ignore[misc]
    assert status == 200 and kind.startswith("text/html"), (status, kind)
    assert '<link rel="stylesheet" href="/govuk/govuk-frontend.min.css">' in html
    status, kind, css = seen["css"]  # type: ignore[misc]
    assert status == 200 and kind.startswith("text/css") and len(css) > 100_000, (status, kind)
    assert b".govuk-header" in css
    assert seen["font"] == (200, "font/woff2"), seen["font"]
    assert seen["stopped"] == 0, seen["stopped"]


def main(argv: list[str]) -> int:
    workdir = Path(argv[0]) if argv else Path(tempfile.mkdtemp(prefix="retentiond-wheel-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wheel = build_wheel(ROOT, workdir / "dist")
    env = without_node(workdir)
    venv = workdir / "venv"
    retentiond = install(wheel, venv, env)
    check(first_run(retentiond, workdir, env), venv)
    print(f"wheel smoke test passed in {time.monotonic() - started:.0f} s: {wheel.name} "
          f"installed in {venv} without node, init, run --once, a styled page")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
