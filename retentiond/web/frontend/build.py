"""Build the GOV.UK Frontend assets the web UI serves.

``npm ci`` here (the version is pinned by ``package-lock.json``), then copy what the pages use
from ``node_modules/govuk-frontend/dist/govuk`` (the stylesheet, the script, fonts and images)
into ``retentiond/web/static/govuk`` (git-ignored), with the package's ``package.json`` and
``README.md`` (its licence: MIT, crown copyright assets under the OGL), which also record the
version built.

The wheel and sdist builds run this (``setup.py``), so an installed wheel serves a styled UI
on a machine without Node; an sdist carries the built assets, so a wheel built from it needs no
Node either. ``./dev`` runs it too, with ``--if-npm`` (a clone without npm works unstyled).

    python retentiond/web/frontend/build.py [--if-npm]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEST = HERE.parent / "static" / "govuk"
#: What the pages load (base.html, static/init.mjs): everything else in dist/ is sources.
SERVED = ("govuk-frontend.min.css", "govuk-frontend.min.js", "assets")
PROVENANCE = ("package.json", "README.md")


class FrontendError(RuntimeError):
    """The assets are not built and cannot be built here."""


def pinned_version(here: Path = HERE) -> str:
    lock = json.loads((here / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"]["node_modules/govuk-frontend"]["version"])


def built_version(dest: Path = DEST) -> str | None:
    """The version of the assets in ``dest``, or None when they are missing or incomplete."""
    try:
        version = json.loads((dest / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return None
    return str(version) if all((dest / name).exists() for name in SERVED) else None


def build(here: Path = HERE, dest: Path = DEST) -> None:
    """Install the pinned package with npm and copy the served files into ``dest``."""
    npm = shutil.which("npm")
    if npm is None:
        raise FrontendError(
            f"npm is needed to build the GOV.UK Frontend assets into {dest} (install Node.js "
            "and npm), or build from the sdist, which carries them built")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=here,
                          stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise FrontendError(f"npm ci in {here} failed (exit {done.returncode}); its errors are "
                            "above")
    package = here / "node_modules" / "govuk-frontend"
    staging = dest.with_name(dest.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in SERVED:
        source = package / "dist" / "govuk" / name
        if source.is_dir():
            shutil.copytree(source, staging / name)
        else:
            shutil.copy2(source, staging / name)
    for name in PROVENANCE:
        shutil.copy2(package / name, staging / name)
    # Replace the whole directory, so that files of an older version do not linger.
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def ensure(here: Path = HERE, dest: Path = DEST) -> bool:
    """Build unless ``dest`` holds the pinned version already; True when it built."""
    if built_version(dest) == pinned_version(here):
        return False
    build(here, dest)
    return True


def main(argv: list[str]) -> int:
    if "--if-npm" in argv and shutil.which("npm") is None:
        if built_version() is None:
            print("note: npm is missing; the web UI will be unstyled (install node and npm, "
                  "then ./dev again)", file=sys.stderr)
        return 0
    try:
        if ensure():
            print(f"built GOV.UK Frontend {pinned_version()} into {DEST}", file=sys.stderr)
    except FrontendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
