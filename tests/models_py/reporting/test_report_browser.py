"""The HTML report as a user sees it: valid HTML5 (a spec parser in strict mode) and rendered by
headless Chromium (Debian's `chromium` and `chromium-driver`, installed by `make browser`): every
image decodes, every section is there, nothing is wider than a 1280 px window."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from models_py._warehouse import connect
from models_py.cli import main
from tests.models_py.operations.replay_fixtures import write_timeline
from tests.models_py.reporting import uplift_report_fixtures as uplift
from tests.models_py.reporting.uplift_report_fixtures import (
    write_offer_marts,
    write_uplift_registry,
)
from tests.models_py.training.training_fixtures import (
    FAST_SPEC,
    GROUPS,
    copy_warehouse,
    template_warehouse,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Field onnx.AttributeProto:DeprecationWarning"),
]

#: ROC, PR, lift, cumulative gains, calibration, score distribution, feature importance.
IMAGES_PER_GROUP = 7
WINDOW = (1280, 900)
#: Flags that let Chromium run headless as root in a container, offline and without a profile.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def _write_scores_and_audiences(warehouse: Path) -> None:
    """The two marts the report reads besides the registry, as dbt would have built them."""
    rng = np.random.default_rng(3)
    customers = np.arange(1, 1501)
    scores = pa.table(
        {
            "customer_id": np.tile(customers, len(GROUPS)),
            "product_group": np.repeat(GROUPS, len(customers)),
            "as_of_date": [dt.date(2024, 7, 1)] * (len(customers) * len(GROUPS)),
            "score": rng.beta(1.2, 8.0, len(customers) * len(GROUPS)),
        }
    )
    eligible = rng.random(len(customers)) < 0.8
    audiences = pa.table(
        {
            "campaign_id": ["summer_sweets"] * len(customers),
            "product_group": ["sweets"] * len(customers),
            "customer_id": customers,
            "is_eligible": eligible,
            "exclusion_reason": [
                None if rng.random() < 0.9 else "recent_purchase" for _ in customers
            ],
            "is_holdout": rng.random(len(customers)) < 0.1,
            "is_selected": eligible & (rng.random(len(customers)) < 0.3),
        }
    )
    con = connect(warehouse)
    try:
        con.register("scores_view", scores)
        con.register("audiences_view", audiences)
        con.execute(
            "create or replace table marts.fct_propensity_scores as select * from scores_view"
        )
        con.execute(
            "create or replace table marts.fct_campaign_audiences as select * from audiences_view"
        )
    finally:
        con.close()


@pytest.fixture(scope="module")
def trained_warehouse(tmp_path_factory) -> Path:
    """A trained warehouse with scores and audiences; its uplift tables exist and are empty."""
    work = tmp_path_factory.mktemp("report_browser")
    settings = copy_warehouse(template_warehouse(tmp_path_factory), work / "wh.duckdb")
    spec_path = work / "specs.yml"
    spec_path.write_text(FAST_SPEC)
    assert main(["--warehouse", str(settings.warehouse), "train", "--spec", str(spec_path)]) == 0
    _write_scores_and_audiences(settings.warehouse)
    return settings.warehouse


@pytest.fixture(scope="module")
def report_page(trained_warehouse) -> Path:
    """The report of the trained warehouse, written by the CLI."""
    out = trained_warehouse.parent / "report"
    assert main(["--warehouse", str(trained_warehouse), "report", "--out", str(out)]) == 0
    return out / "index.html"


def test_report_is_valid_html5(report_page):
    import html5lib

    parser = html5lib.HTMLParser(strict=True)
    # strict: the first parse error (unclosed tag, stray character, bad attribute) raises.
    document = parser.parse(report_page.read_bytes())
    ns = {"h": "http://www.w3.org/1999/xhtml"}
    images = document.findall(".//h:img", ns)
    assert len(images) == IMAGES_PER_GROUP * len(GROUPS)
    assert all(img.get("src").startswith("data:image/png;base64,") for img in images)
    assert all(img.get("alt") for img in images)
    headings = [h.text for h in document.findall(".//h:h2", ns)]
    assert headings == ["Champions on the test period", "Audiences", *GROUPS]


def _browser_or_reason() -> tuple[str, str] | str:
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if chromium and chromedriver:
        return chromium, chromedriver
    missing = [
        name for name, path in (("chromium", chromium), ("chromedriver", chromedriver)) if not path
    ]
    return (
        f"headless Chromium renders the report in this test, but {' and '.join(missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not on PATH: install Debian's chromium and "
        "chromium-driver (`make browser` does it with apt-get when run as root)"
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    found = _browser_or_reason()
    if isinstance(found, str):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(found + " (CI must run the browser test)", pytrace=False)
        pytest.skip(found)
    chromium, chromedriver = found
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    # An explicit driver path: Selenium never looks for (or downloads) a driver of its own.
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=chromedriver)
    )
    try:
        yield driver
    finally:
        driver.quit()


#: Every element whose box leaves the viewport horizontally (scrollbars excluded).
_OVERFLOWING = """
const width = document.documentElement.clientWidth;
const out = [];
for (const el of document.body.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.left < -0.5 || r.right > width + 0.5 || el.scrollWidth > el.clientWidth + 1
      && getComputedStyle(el).overflowX === 'visible' && el.clientWidth > 0) {
    out.push(`${el.tagName.toLowerCase()} left=${r.left} right=${r.right} ` +
             `scrollWidth=${el.scrollWidth} clientWidth=${el.clientWidth}`);
  }
}
return out;
"""


def test_report_renders_in_chromium(browser, report_page, trained_warehouse):
    browser.get(report_page.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    assert browser.title == "Propensity report"
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    assert WINDOW[0] - 20 <= viewport <= WINDOW[0]  # the window width, less a scrollbar

    images = browser.execute_script(
        "return Array.from(document.images, i => "
        "[i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width, i.alt])"
    )
    assert len(images) == IMAGES_PER_GROUP * len(GROUPS)
    undecoded = [alt for complete, w, h, _, alt in images if not (complete and w > 0 and h > 0)]
    assert undecoded == [], f"images that did not decode: {undecoded}"
    # Three plots side by side: each is drawn a third of the content width, not collapsed.
    assert all(width > viewport / 5 for *_, width, _ in images)
    # Per group, permutation importance and mean |SHAP| side by side in one plot (decoded above).
    assert [alt for *_, alt in images if "importance" in alt] == [
        f"{g}: feature importance (test)" for g in GROUPS
    ]
    con = connect(trained_warehouse, read_only=True)
    try:
        assert con.execute(
            "select count(*) from ml.feature_importance i join ml.model_aliases a "
            "on a.model_id = i.model_id and a.alias = 'champion' "
            "where i.mean_abs_shap is null or i.importance_mean is null"
        ).fetchone() == (0,)
    finally:
        con.close()

    headings = browser.execute_script(
        "return Array.from(document.querySelectorAll('h2'), "
        "h => [h.textContent, h.getBoundingClientRect().left])"
    )
    # The uplift tables are empty: no "Uplift and offers" section.
    assert [text for text, _ in headings] == ["Champions on the test period", "Audiences", *GROUPS]
    # Every section starts at the same left edge (broken markup nests them ever deeper).
    assert len({round(left) for _, left in headings}) == 1

    tables = browser.execute_script(
        "return Array.from(document.querySelectorAll('table'), "
        "t => [t.getBoundingClientRect().right, t.scrollWidth])"
    )
    assert len(tables) == 2
    assert all(right <= viewport and scroll <= viewport for right, scroll in tables), tables
    assert browser.execute_script("return document.documentElement.scrollWidth") <= viewport
    assert browser.execute_script(_OVERFLOWING) == []


def test_replay_page_renders_in_chromium(browser, tmp_path):
    from models_py.reporting._replay_page import write_replay_page

    results = tmp_path / "results.duckdb"
    write_timeline(results)
    page = write_replay_page(results, tmp_path / "replay.html")
    browser.get(page.as_uri())
    assert browser.title == "Replay monitoring"
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    images = browser.execute_script(
        "return Array.from(document.images, i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(images) == 3  # ROC AUC per group (2) and the drift heatmap
    assert all(complete and w > 0 and h > 0 for complete, w, h in images)
    text = browser.find_element("tag name", "body").text
    assert "Drift alerts" in text and "Retrains" in text and "spend_30d" in text
    assert browser.execute_script("return document.documentElement.scrollWidth") <= viewport
    assert browser.execute_script(_OVERFLOWING) == []


def test_report_of_a_warehouse_in_daily_operation_shows_monitoring(
    browser, tmp_path_factory, tmp_path
):
    """After daily runs the report has a monitoring section: ROC AUC over the scored cutoffs
    (realised and estimated), drift at the newest cutoff and the latest retraining decisions."""
    from models_py.registry._decisions import record_decisions
    from tests.models_py.operations.daily_fixtures import FIRST_CUTOFF, copy_template, query

    wh = copy_template(tmp_path_factory, tmp_path)
    con = connect(wh)
    try:
        record_decisions(
            con,
            [
                {
                    "run_id": "r1",
                    "decided_at": dt.datetime(2026, 10, 1, 6),
                    "as_of_date": FIRST_CUTOFF,
                    "policy": "if-needed",
                    "spec_name": "lean",
                    "product_group": "wine",
                    "decision": "keep",
                    "reasons": "model data 0 days old (<= 90); no drift alert on its top 10 "
                    "features",
                }
            ],
        )
    finally:
        con.close()
    out = tmp_path / "report"
    assert main(["--warehouse", str(wh), "report", "--out", str(out)]) == 0
    browser.get((out / "index.html").as_uri())
    headings = browser.execute_script(
        "return Array.from(document.querySelectorAll('h2, h3'), h => h.textContent)"
    )
    monitoring = headings.index("Monitoring")
    assert headings[monitoring + 1 : monitoring + 3] == [
        "Drift at the newest cutoff",
        "Latest retraining decisions",
    ]
    over_time = browser.execute_script(
        "return Array.from(document.images).filter(i => i.alt.includes('ROC AUC over time'))"
        ".map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(over_time) == 1 and all(c and w > 0 and h > 0 for c, w, h in over_time)
    text = browser.find_element("tag name", "body").text
    assert "no drift alert on its top 10 features" in text
    assert FIRST_CUTOFF.isoformat() in text
    # Three top-decile customers per group with their reasons in plain words, as visible text.
    groups = [
        g
        for (g,) in query(
            wh, "select product_group from ml.model_aliases where alias = 'champion' order by 1"
        )
    ]
    assert [h for h in headings if "example customers" in h] == [
        f"{g}: example customers from the top decile" for g in groups
    ]
    examples = browser.execute_script(
        "return Array.from(document.querySelectorAll('td.reasons'), td => {"
        "  let h = td.closest('table').previousElementSibling;"
        "  while (h.tagName !== 'H3') h = h.previousElementSibling;"
        "  return [h.textContent.split(':')[0], td.closest('tr').cells[0].textContent,"
        "          td.innerText, td.getBoundingClientRect().height]; })"
    )
    assert sorted({group for group, *_ in examples}) == groups
    assert len(examples) == 3 * len(groups)
    for group, customer, reasons, height in examples:
        expected = query(
            wh,
            "select r.feature_label, s.decile from marts.fct_score_reasons r "
            "join marts.fct_propensity_scores s using (customer_id, product_group, as_of_date) "
            "where r.customer_id = ? and r.product_group = ? order by r.reason_rank",
            [int(customer.replace(",", "")), group],
        )
        assert expected and all(decile == 1 for _, decile in expected)
        assert height > 0  # shown, not collapsed
        # in plain words, rank 1 first, e.g. "Days since the last purchase order: 12"
        positions = [reasons.index(label) for label, _ in expected]
        assert positions == sorted(positions)
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= viewport
    assert browser.execute_script(_OVERFLOWING) == []


# ----------------------------------------------------------------------- uplift and offers


def _images(browser) -> list[list]:
    return browser.execute_script(
        "return Array.from(document.images, i => "
        "[i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width, i.alt])"
    )


def _headings(browser, selector: str) -> list[str]:
    return browser.execute_script(
        f"return Array.from(document.querySelectorAll('{selector}'), h => h.textContent)"
    )


def _assert_fits(browser) -> None:
    """No table, image or other element wider than the window."""
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    tables = browser.execute_script(
        "return Array.from(document.querySelectorAll('table'), "
        "t => [t.getBoundingClientRect().right, t.scrollWidth])"
    )
    assert all(right <= viewport and scroll <= viewport for right, scroll in tables), tables
    assert browser.execute_script("return document.documentElement.scrollWidth") <= viewport
    assert browser.execute_script(_OVERFLOWING) == []


def _assert_images_decode(images: list[list], viewport: int) -> None:
    undecoded = [alt for complete, w, h, _, alt in images if not (complete and w > 0 and h > 0)]
    assert undecoded == [], f"images that did not decode: {undecoded}"
    assert all(width > viewport / 5 for *_, width, _ in images)


def _copy(source: Path, target: Path) -> Path:
    shutil.copy(source, target)
    return target


@pytest.fixture(scope="module")
def uplift_pages(trained_warehouse) -> tuple[Path, Path]:
    """(index.html, offers.html) of the trained warehouse plus an uplift registry and the offer
    marts, written by `propensity report` and `propensity offers report`."""
    wh = _copy(trained_warehouse, trained_warehouse.parent / "uplift.duckdb")
    write_uplift_registry(wh)
    write_offer_marts(wh)
    out = wh.parent / "uplift_report"
    assert main(["--warehouse", str(wh), "report", "--out", str(out)]) == 0
    assert main(["--warehouse", str(wh), "offers", "report", "--out", str(out)]) == 0
    return out / "index.html", out / "offers.html"


def _assert_uplift_text(text: str) -> None:
    assert f"champion {uplift.CHAMPION}" in text
    assert uplift.CHALLENGER not in text  # only the champion set is reported
    assert "How to read a Qini curve" in text
    assert "between the curve and the diagonal" in text
    assert "earned +0.125 margin per customer against no offer (95 % CI -0.050 .. +0.300" in text
    assert "<new>" in text  # escaped: a tag-like segment reads as text
    for reason in uplift.REASONS:
        assert reason in text
    for policy in uplift.POLICIES:
        assert policy in text
    assert "530.9" in text  # the oracle's true profit


def test_report_shows_uplift_and_offers_in_chromium(browser, uplift_pages):
    index, _ = uplift_pages
    browser.get(index.as_uri())
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    images = _images(browser)
    assert len(images) == IMAGES_PER_GROUP * len(GROUPS) + uplift.IMAGES_MODEL + (
        uplift.IMAGES_OFFERS
    )
    _assert_images_decode(images, viewport)
    alts = [alt for *_, alt in images]
    assert alts[-5:] == [
        "discount: Qini curve (purchased)",
        "discount: Qini curve (revenue)",
        "discount: observed uplift by decile",
        f"{uplift.OFFER_ID}: arm by segment",
        f"{uplift.OFFER_ID}: profit by policy",
    ]
    assert _headings(browser, "h2")[-1] == "Uplift and offers"
    assert _headings(browser, "h3")[-3:] == [
        uplift.FAMILY,
        f"Offer assignments: {uplift.OFFER_ID}",
        f"Incremental profit by policy: {uplift.OFFER_ID}",
    ]
    _assert_uplift_text(browser.find_element("tag name", "body").text)
    # Held-out metrics: the oracle's Qini column (generated data), AUUC empty for revenue.
    header = browser.execute_script(
        "const t = Array.from(document.querySelectorAll('table'))"
        ".find(t => t.textContent.includes('qini'));"
        "return Array.from(t.rows[0].cells, c => c.textContent)"
    )
    assert header[:6] == [
        "arm",
        "outcome",
        "treated",
        "control",
        "qini_coefficient",
        "oracle_qini_coefficient",
    ]
    _assert_fits(browser)


def test_offers_page_renders_alone_in_chromium(browser, uplift_pages):
    import html5lib

    _, offers = uplift_pages
    html5lib.HTMLParser(strict=True).parse(offers.read_bytes())
    browser.get(offers.as_uri())
    assert browser.title == "Uplift and offers"
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    images = _images(browser)
    assert len(images) == uplift.IMAGES_MODEL + uplift.IMAGES_OFFERS
    _assert_images_decode(images, viewport)
    assert _headings(browser, "h1") == ["Uplift and offers"]
    assert _headings(browser, "h2") == [
        uplift.FAMILY,
        f"Offer assignments: {uplift.OFFER_ID}",
        f"Incremental profit by policy: {uplift.OFFER_ID}",
    ]
    text = browser.find_element("tag name", "body").text
    _assert_uplift_text(text)
    arm_mix = browser.execute_script(
        "const t = Array.from(document.querySelectorAll('table'))"
        ".find(t => t.rows[0].cells[0].textContent === 'segment');"
        "return Array.from(t.rows, r => Array.from(r.cells, c => c.textContent))"
    )
    assert arm_mix[0] == ["segment", "pct_10", "pct_20", "holdout", "no offer"]
    assert sorted(r[0] for r in arm_mix[1:]) == sorted(uplift.SEGMENTS)
    counts = sum(int(v) for r in arm_mix[1:] for v in r[1:])
    assert counts == uplift.CUSTOMERS
    _assert_fits(browser)


def test_offers_page_without_offer_marts(browser, trained_warehouse, tmp_path, capsys):
    """Uplift models but no offer marts yet: the model part alone, no offer headings."""
    wh = _copy(trained_warehouse, tmp_path / "wh.duckdb")
    write_uplift_registry(wh)
    write_offer_marts(wh, offers=False)
    assert main(["--warehouse", str(wh), "offers", "report", "--out", str(tmp_path)]) == 0
    assert "offers.html (1 offer families)" in capsys.readouterr().out
    browser.get((tmp_path / "offers.html").as_uri())
    assert _headings(browser, "h2") == [uplift.FAMILY]
    images = _images(browser)
    assert len(images) == uplift.IMAGES_MODEL
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    _assert_images_decode(images, viewport)
    _assert_fits(browser)


def test_offers_report_of_empty_uplift_tables(trained_warehouse, tmp_path, capsys):
    """The uplift tables exist but hold no model set (the report test above shows no section):
    `propensity offers report` says what to run and writes nothing."""
    assert (
        main(["--warehouse", str(trained_warehouse), "offers", "report", "--out", str(tmp_path)])
        == 1
    )
    err = capsys.readouterr().err
    assert "has no uplift model set" in err and "propensity uplift train" in err
    assert not (tmp_path / "offers.html").exists()


def test_report_without_uplift_tables(browser, trained_warehouse, tmp_path, capsys):
    """A registry from before uplift (no ml.uplift_* tables): the report has no uplift section
    and `propensity offers report` says what to run."""
    wh = _copy(trained_warehouse, tmp_path / "wh.duckdb")
    con = connect(wh)
    try:
        for table in ("uplift_aliases", "uplift_metrics", "uplift_bins", "uplift_model_sets"):
            con.execute(f"drop table ml.{table}")
    finally:
        con.close()
    out = tmp_path / "report"
    assert main(["--warehouse", str(wh), "report", "--out", str(out)]) == 0
    browser.get((out / "index.html").as_uri())
    assert _headings(browser, "h2") == ["Champions on the test period", "Audiences", *GROUPS]
    assert "Uplift" not in browser.find_element("tag name", "body").text
    assert len(_images(browser)) == IMAGES_PER_GROUP * len(GROUPS)
    capsys.readouterr()
    assert main(["--warehouse", str(wh), "offers", "report", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "has no uplift model set" in err and "propensity uplift train" in err
    assert not (out / "offers.html").exists()


def test_report_shows_experiments_once_they_have_results(
    browser, trained_warehouse, tmp_path_factory, tmp_path
):
    """With the experiment marts (copied from the experiments' generated warehouse), the report
    ends with the experiments section: one subsection per experiment, its plots decoded."""
    from tests.models_py.experiments.experiment_fixtures import experiment_template

    source = experiment_template(tmp_path_factory)
    wh = _copy(trained_warehouse, tmp_path / "wh.duckdb")
    con = connect(wh)
    try:
        con.execute(f"attach '{source}' as experiments (read_only)")
        for table in (
            "dim_experiments",
            "fct_experiment_results",
            "fct_experiment_balance",
            "fct_experiment_cumulative",
        ):
            con.execute(
                f"create or replace table marts.{table} as select * from experiments.marts.{table}"
            )
        con.execute("detach experiments")
    finally:
        con.close()
    out = tmp_path / "report"
    assert main(["--warehouse", str(wh), "report", "--out", str(out)]) == 0
    browser.get((out / "index.html").as_uri())
    assert _headings(browser, "h2")[-1] == "Experiments"
    assert _headings(browser, "h3")[-3:] == ["aa_sept", "discount_2026q3", "running_test"]
    images = _images(browser)
    viewport = browser.execute_script("return document.documentElement.clientWidth")
    _assert_images_decode(images, viewport)
    assert sum("cumulative conversion lift" in alt for *_, alt in images) == 3
    _assert_fits(browser)
