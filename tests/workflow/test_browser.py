"""The smoke-scale report in a real browser: Debian's chromium, headless, driven by selenium through Debian's
chromedriver (.ci/install-chromium.sh installs both in CI).

``snakemake --report`` writes a single-page app: the front page (workflow/report/workflow.rst) exists only once
React has rendered it, so these checks read the rendered DOM, at a 1366 x 900 viewport: the front page shows the
verdict-count table, the forest plot (loaded) and the compact ledger; nothing overflows horizontally (the document,
the scrolling content pane, and every table and image of the front page end inside the window); every image on
the page has loaded (naturalWidth > 0); no docutils "System Message"; every figure link of the ledger opens a
result of the report. The screenshots go to the smoke run's results/ (the test prints their paths). Without
chromium the test is skipped with the reason; under CI=true that skip is a failure.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 1366, 900
CHROMIUM = os.environ.get("NNRDS_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NNRDS_CHROMEDRIVER", "/usr/bin/chromedriver")

#: DOM facts the checks read (one script, run in the page)
PROBE = """
const W = window.innerWidth;
const front = document.querySelector('#nnrds-front');
const desc = front ? front.closest('.prose') : null;
let pane = desc;
while (pane && pane !== document.body && !['auto', 'scroll'].includes(getComputedStyle(pane).overflowX)) {
  pane = pane.parentElement;
}
const right = el => el.getBoundingClientRect().right;
const wide = desc ? Array.from(desc.querySelectorAll('table, img, pre'))
  .filter(el => right(el) > W + 0.5 || el.scrollWidth > el.clientWidth + 1)
  .map(el => `${el.tagName.toLowerCase()}.${el.className} right=${Math.round(right(el))} scrollWidth=${el.scrollWidth}`) : [];
const forest = document.querySelector('img.nnrds-forest');
const links = Array.from(document.querySelectorAll('a.nnrds-fig')).map(a => a.dataset.result);
return {
  innerWidth: W,
  docScrollWidth: document.documentElement.scrollWidth,
  front: !!front,
  paneOverflow: pane && pane !== document.body ? pane.scrollWidth - pane.clientWidth : 0,
  wide: wide,
  countsRows: document.querySelectorAll('table.nnrds-counts tbody tr').length,
  ledgerRows: document.querySelectorAll('table.nnrds-ledger tbody tr').length,
  forestWidth: forest ? forest.getBoundingClientRect().width : 0,
  forestNatural: forest ? forest.naturalWidth : 0,
  brokenImages: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => (i.getAttribute('src') || '').slice(0, 60)),
  images: document.images.length,
  systemMessage: document.body.innerText.includes('System Message') || !!document.querySelector('.system-message'),
  deadLinks: links.filter(p => typeof results === 'undefined' || !(p in results)),
  links: links.length,
};
"""


def page_problems(facts: dict) -> list[str]:
    """What is wrong with a rendered front page (``facts`` from :data:`PROBE`): overflow, broken images, system
    messages, figure links to nothing."""
    out = []
    if facts["docScrollWidth"] > WIDTH:
        out.append(f"the page is {facts['docScrollWidth']} px wide (> {WIDTH})")
    if facts["paneOverflow"] > 0:
        out.append(f"the content pane scrolls horizontally by {facts['paneOverflow']} px")
    out += [f"wider than the window: {w}" for w in facts["wide"]]
    out += [f"image failed to load: {s}..." for s in facts["brokenImages"]]
    if facts["systemMessage"]:
        out.append('a docutils "System Message" is shown')
    out += [f"figure link to no result of the report: {p}" for p in facts["deadLinks"]]
    return out


def _require_browser():
    """chromium + chromedriver + selenium, or skip with the reason (a failure under CI=true)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the python package selenium (pip install -e '.[test]')")
    if missing:
        reason = f"no browser for the report test: missing {', '.join(missing)} (.ci/install-chromium.sh installs them)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the browser test: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        opts.add_argument(a)
    opts.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    yield drv
    drv.quit()


def _load(drv, url: str, ready: str, timeout: float = 60.0) -> dict:
    """Open ``url``, wait until ``ready`` (a CSS selector) exists and every image has finished, return PROBE."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    drv.get(url)
    WebDriverWait(drv, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, ready)))
    WebDriverWait(drv, timeout).until(
        lambda d: d.execute_script("return Array.from(document.images).every(i => i.complete)")
    )
    time.sleep(0.3)  # layout settles (fonts, the rule graph)
    return drv.execute_script(PROBE)


def test_page_checks_catch_overflow_broken_images_and_system_messages(browser, tmp_path):
    """The checks can fail: a page with a 2000-px table, a broken image, a system message and a dead figure link."""
    page = tmp_path / "bad.html"
    page.write_text(
        '<html><body><div class="prose"><span id="nnrds-front"></span>'
        '<table style="width:2000px"><tr><td>wide</td></tr></table><img src="missing.png">'
        '<p>System Message: WARNING/2</p><a class="nnrds-fig" data-result="figures/x.png">x</a></div></body></html>'
    )
    problems = page_problems(_load(browser, page.as_uri(), "#nnrds-front"))
    text = "\n".join(problems)
    assert "px wide" in text and "wider than the window: table" in text
    assert "image failed to load: missing.png" in text and "System Message" in text
    assert "figure link to no result of the report: figures/x.png" in text


def test_smoke_report_front_page_in_chromium(browser, smoke_run, smoke_report, capsys):
    import pandas as pd

    t0 = time.perf_counter()
    facts = _load(browser, smoke_report.resolve().as_uri(), "img.nnrds-forest")
    shot = smoke_run / "results/report_front_page.png"
    browser.save_screenshot(str(shot))
    # the whole front page in one picture: a viewport as tall as the scrolling pane's content
    tall = browser.execute_script(
        "const d = document.querySelector('#nnrds-front').closest('.prose');"
        "return Math.ceil(d.getBoundingClientRect().height) + 60;"
    )
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": min(int(tall), 12000), "deviceScaleFactor": 1, "mobile": False},
    )
    time.sleep(0.3)
    full = smoke_run / "results/report_front_page_full.png"
    browser.save_screenshot(str(full))
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    with capsys.disabled():
        print(f"\nreport front page at {WIDTH}x{HEIGHT}: {shot}\nwhole front page: {full}")
        print(f"browser check took {time.perf_counter() - t0:.1f} s; DOM facts: {facts}")
    led = pd.read_csv(smoke_run / "results/claims.csv")
    counts = pd.read_csv(smoke_run / "results/claims/verdict_counts.csv")
    assert facts["innerWidth"] == WIDTH and facts["front"]
    assert facts["countsRows"] == len(counts), "the front page must show the verdict counts (one row per study + all)"
    assert facts["ledgerRows"] == len(led), "the front page must show the compact ledger, one row per claim"
    assert facts["forestNatural"] > 0 and facts["forestWidth"] >= 400, "the forest plot must be shown, and large"
    assert facts["links"] >= 1 and facts["images"] >= 1
    assert not page_problems(facts), "\n".join(page_problems(facts))
