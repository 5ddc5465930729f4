"""Repository hygiene a user notices: docs and commands run on any machine."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Absolute paths of a developer's machine (home or work directories, a scratch tree).
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|home|Users|mnt|scratch)/[\w.-]+")


SUFFIXES = {".md", ".py", ".sql", ".yml", ".yaml"}


def _text_files():
    for folder in ("docs", "benchmarks", "models_py", "scoring", "dbt_project"):
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.suffix in SUFFIXES and "target" not in path.parts:
                yield path
    for name in ("README.md", "Makefile", "pyproject.toml", "profiles.yml"):
        yield REPO_ROOT / name


def test_no_machine_paths_in_docs_code_or_commands():
    found = [
        f"{path.relative_to(REPO_ROOT)}:{n}: {line.strip()}"
        for path in _text_files()
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if MACHINE_PATH.search(line)
    ]
    assert not found, "machine paths (use a placeholder or an option):\n" + "\n".join(found)
