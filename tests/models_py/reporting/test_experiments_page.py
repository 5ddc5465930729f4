"""The experiments page (`propensity experiment report`) as a user sees it: valid HTML5, and in
headless Chromium every image decodes, every experiment has its section, flags and verdict, and
nothing is wider than the window."""

from __future__ import annotations

import pytest

from tests.models_py.experiments.experiment_fixtures import cli, experiment_template
from tests.models_py.reporting.test_report_browser import (  # noqa: F401 (fixture)
    _OVERFLOWING,
    browser,
)

pytestmark = pytest.mark.slow

#: Forest plots per metric (the discount experiment has margin too), cumulative conversion and
#: revenue, balance: 4 + 2 + 1, 3 + 2 + 1, 3 + 2 + 1.
IMAGES = 19


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    warehouse = experiment_template(tmp_path_factory)
    out = tmp_path_factory.mktemp("experiments_page")
    assert cli(warehouse, "experiment", "report", "--out", str(out)) == 0
    return out / "experiments.html"


def test_the_page_is_valid_html5(page):
    import html5lib

    document = html5lib.HTMLParser(strict=True).parse(page.read_bytes())
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    assert len(document.findall(".//h:img", ns)) == IMAGES
    assert [h.text for h in document.findall(".//h:h2", ns)] == [
        "aa_sept",
        "discount_2026q3",
        "running_test",
    ]


def test_the_page_renders_in_chromium(browser, page):  # noqa: F811
    browser.get(page.as_uri())
    assert browser.title == "Experiments"
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    images = browser.execute_script(
        "return Array.from(document.images, i => "
        "[i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width, i.alt])"
    )
    assert len(images) == IMAGES
    undecoded = [alt for complete, w, h, _, alt in images if not (complete and w > 0 and h > 0)]
    assert undecoded == []
    assert all(width > viewport / 5 for *_, width, _ in images)
    alts = [alt for *_, alt in images]
    assert "discount_2026q3: conversion by arm" in alts
    assert "discount_2026q3: cumulative conversion lift" in alts
    assert "running_test: balance at assignment" in alts

    flags = browser.execute_script(
        "return Array.from(document.querySelectorAll('.flag'), f => "
        "[f.textContent, f.closest('p').previousElementSibling.textContent])"
    )
    assert flags == [["INTERIM", "running_test"]]
    verdicts = browser.execute_script(
        "return Array.from(document.querySelectorAll('ul.verdict'), u => u.innerText)"
    )
    assert len(verdicts) == 3
    assert "Arm 25 raised conversion" in verdicts[1]
    assert verdicts[2].startswith("INTERIM: the outcome window closes on 2026-10-06")
    text = browser.find_element("tag name", "body").text
    assert "Sample ratio: chi-square" in text and "passes" in text
    assert "Balance at assignment: 58 features" in text

    assert browser.execute_script("return document.documentElement.scrollWidth") <= viewport
    assert browser.execute_script(_OVERFLOWING) == []


def test_report_of_an_unknown_experiment_or_a_warehouse_without_results(
    tmp_path_factory, tmp_path, capsys
):
    warehouse = experiment_template(tmp_path_factory)
    assert (
        cli(warehouse, "experiment", "report", "--experiment", "nope", "--out", str(tmp_path)) == 1
    )
    assert "no results for experiment nope" in capsys.readouterr().err
    empty = tmp_path / "empty.duckdb"
    import duckdb

    duckdb.connect(str(empty)).close()
    assert cli(empty, "experiment", "report", "--out", str(tmp_path)) == 1
    assert "has no experiment results" in capsys.readouterr().err
    assert not (tmp_path / "experiments.html").exists()
