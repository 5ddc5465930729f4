"""Build hook (the rest of the configuration is pyproject.toml): a wheel carries the dbt project and
its profile as package data, under ``models_py/_bundle/``, so that an installed `propensity` runs
dbt without the repository. `models_py._settings` uses the repository's own copies when it runs
from a checkout (or an editable install), the bundled ones otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: dbt's own output and installed packages (top level of the project): never shipped.
RUNTIME_DIRS = {"target", "logs", "dbt_packages"}


def _not_shipped(directory: str, names: list[str]) -> list[str]:
    top = Path(directory) == ROOT / "dbt_project"
    return [
        n for n in names if n.startswith(".") or n == "__pycache__" or (top and n in RUNTIME_DIRS)
    ]


class BuildPyWithDbtProject(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the repository's files in place
            return
        bundle = Path(self.build_lib) / "models_py" / "_bundle"
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.copytree(
            ROOT / "dbt_project",
            bundle / "dbt_project",
            ignore=_not_shipped,
        )
        shutil.copy2(ROOT / "profiles.yml", bundle / "profiles.yml")


setup(cmdclass={"build_py": BuildPyWithDbtProject})
