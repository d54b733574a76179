"""Build hooks (the rest of the metadata is in pyproject.toml).

- The default policy packs stay in ``policies/`` at the top of the repository, where policy
  authors find them, and ship as the package ``retentiond.packs``.
- The GOV.UK Frontend assets are built (npm, ``retentiond/web/frontend/build.py``) when a wheel
  or an sdist is built, never at install; an sdist carries them, so a wheel built from it
  needs no Node. An editable install (``./dev``) leaves them to ``./dev``.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

ROOT = Path(__file__).resolve().parent
frontend: dict[str, Any] = runpy.run_path(str(ROOT / "retentiond" / "web" / "frontend" / "build.py"))


class BuildPy(build_py):
    def run(self) -> None:
        if not self.editable_mode:
            frontend["ensure"]()
            # The list of package data is computed once; drop it if it was made before the
            # assets existed.
            self.__dict__.pop("data_files", None)
        super().run()


class Sdist(sdist):
    def run(self) -> None:
        frontend["ensure"]()
        super().run()


setup(
    packages=[*find_packages(include=["retentiond", "retentiond.*"]), "retentiond.packs"],
    package_dir={"retentiond.packs": "policies"},
    cmdclass={"build_py": BuildPy, "sdist": Sdist},
)
