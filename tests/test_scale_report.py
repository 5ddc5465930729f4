"""benchmarks/scale.py reads the published `scale` section back when its results store is
missing (a new machine), so a partial re-run keeps the rows measured elsewhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _scale():
    spec = importlib.util.spec_from_file_location("scale", ROOT / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_and_growth(text: str) -> list[str]:
    section = text.split("<!-- BEGIN scale -->", 1)[-1].split("<!-- END scale -->", 1)[0]
    return [
        line
        for line in section.splitlines()
        if line.startswith(("| ", "`")) and not line.startswith("| step ")
    ]


def test_the_published_scale_rows_read_back_into_the_same_table():
    scale = _scale()
    published = (ROOT / "docs" / "benchmarks.md").read_text()
    results = scale.rows_from_docs(published)
    assert len(results) == 3
    assert {"training_set", "daily_no_reasons", "features_one_cutoff"} <= set(results["1000000"])
    failed = results["10000000"]["features_one_cutoff"]
    assert failed["failed"].startswith("stopped after 5 min")
    rendered = scale.report(results, "12GB")
    assert _table_and_growth(rendered) == _table_and_growth(published)
    assert len(_table_and_growth(published)) > 20


def test_a_missing_section_gives_no_rows():
    assert _scale().rows_from_docs("# Benchmarks\n") == {}
