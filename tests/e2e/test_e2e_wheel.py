"""The product as a council installs it: an sdist, a wheel built from that sdist on a machine
without Node, installed into a fresh virtualenv with no source tree on the path, then the
documented first run and a styled page (tests/e2e/wheel_smoke.py does the steps)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
from wheel_smoke import ROOT, build_wheel, check, first_run, install, without_node

pytestmark = pytest.mark.slow

ASSETS = ROOT / "retentiond" / "web" / "static" / "govuk"


def _assets_or_skip() -> None:
    """Building the sdist needs the GOV.UK Frontend assets, which need npm once."""
    if not (ASSETS / "govuk-frontend.min.css").is_file() and shutil.which("npm") is None:
        if os.environ.get("RETENTIOND_REQUIRE_NODE") == "1":
            pytest.fail("npm is missing and the GOV.UK Frontend assets are not built")
        pytest.skip("npm is missing and the GOV.UK Frontend assets are not built")


def test_sdist_then_wheel_without_node_installs_and_serves_a_styled_ui(tmp_path):
    """The sdist carries the built assets and the packs; a wheel built from it with no node or
    npm on PATH holds packs, templates, migrations and assets (and no sources of the front-end);
    installed in a fresh venv it shows the packaged default pack, runs init, every job once,
    and serves a page whose stylesheet, fonts and all, is there."""
    _assets_or_skip()
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (sdist,) = dist.glob("retentiond-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "src", filter="data")
    top = names[0].split("/")[0]
    for wanted in ("policies/isa-default.toml", "retentiond/web/static/govuk/govuk-frontend.min.css",
                   "retentiond/web/frontend/package-lock.json", "setup.py", "MANIFEST.in"):
        assert f"{top}/{wanted}" in names, wanted
    assert not any("node_modules" in n for n in names)

    env = without_node(tmp_path)
    assert shutil.which("npm", path=env["PATH"]) is None
    assert shutil.which("node", path=env["PATH"]) is None
    source = tmp_path / "src" / top
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(tmp_path / "wheels"), str(source)], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheels").glob("retentiond-*.whl")
    contents = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(p.name for p in (ROOT / "retentiond/registry/migrations/versions").glob("*.py"))
    templates = sorted(p.name for p in (ROOT / "retentiond/web/templates").glob("*.html"))
    for wanted in ["retentiond/packs/isa-default.toml", "retentiond/packs/england-wider.toml",
                   "retentiond/registry/migrations/env.py",
                   "retentiond/registry/migrations/script.py.mako",
                   *(f"retentiond/registry/migrations/versions/{m}" for m in migrations),
                   *(f"retentiond/web/templates/{t}" for t in templates),
                   "retentiond/web/static/retentiond.css",
                   "retentiond/web/static/govuk/govuk-frontend.min.css",
                   "retentiond/web/static/govuk/govuk-frontend.min.js",
                   "retentiond/web/static/govuk/assets/fonts/bold-b542beb274-v2.woff2",
                   "retentiond/web/static/govuk/package.json"]:
        assert wanted in contents, wanted
    assert not [n for n in contents if n.endswith((".scss", ".njk")) or "frontend/" in n
                or n.startswith(("tests/", "policies/", "bench/"))]

    retentiond = install(wheel, tmp_path / "venv", env)
    check(first_run(retentiond, tmp_path, env), tmp_path / "venv")


def test_a_wheel_from_the_clone_builds_the_assets(tmp_path):
    """pip wheel straight from the clone (what the issue tried) gives a wheel with the packs and
    the built assets in it."""
    _assets_or_skip()
    wheel = build_wheel(ROOT, tmp_path / "dist")
    contents = set(zipfile.ZipFile(wheel).namelist())
    assert {"retentiond/packs/isa-default.toml",
            "retentiond/web/static/govuk/govuk-frontend.min.css"} <= contents


def test_the_frontend_build_copies_what_the_pages_serve(tmp_path):
    """build.py installs the pinned GOV.UK Frontend with npm and copies the served files and
    its licence into the destination; ensure() does not build again while the version holds,
    and does after the destination lost a file."""
    if shutil.which("npm") is None:
        if os.environ.get("RETENTIOND_REQUIRE_NODE") == "1":
            pytest.fail("npm is missing")
        pytest.skip("npm is missing")
    import runpy

    frontend = runpy.run_path(str(ROOT / "retentiond" / "web" / "frontend" / "build.py"))
    dest = tmp_path / "govuk"
    assert frontend["ensure"](dest=dest) is True
    pinned = frontend["pinned_version"]()
    assert frontend["built_version"](dest) == pinned
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert {"govuk-frontend.min.css", "govuk-frontend.min.js", "package.json", "README.md",
            "assets/fonts/bold-b542beb274-v2.woff2", "assets/images/favicon.ico"} <= names
    assert not [n for n in names if n.endswith((".scss", ".njk", ".mjs.map"))]
    assert "MIT" in (dest / "README.md").read_text()
    stamp = (dest / "govuk-frontend.min.css").stat().st_mtime_ns
    assert frontend["ensure"](dest=dest) is False
    assert (dest / "govuk-frontend.min.css").stat().st_mtime_ns == stamp
    (dest / "govuk-frontend.min.js").unlink()
    assert frontend["ensure"](dest=dest) is True
    assert (dest / "govuk-frontend.min.js").is_file()
