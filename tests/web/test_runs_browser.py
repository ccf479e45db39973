"""The runs page and the job page's tags and note in a real headless chromium against a real
API: tag a job on its page (a refused tag shown with its reason), the runs table across jobs
with a collapsed row flagged, filters kept in the address, sorting by a heading, the CSV
export. Screenshots in test-artifacts/screenshots/ (runs, job-annotations)."""

from __future__ import annotations

import csv
import time

import pytest

from srnet.client import SRNetClient
from tests.client.live_service import LiveService, metric_payload
from tests.web.conftest import save_screenshot
from tests.web.test_browser import console_errors, css, text_of, use_key, wait_for

pytestmark = pytest.mark.e2e


def table_rows(driver) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#runs-body tr[data-job]')]"
        ".map(r => [r.dataset.job, r.dataset.stage, r.dataset.sparsity, r.innerText])"
    )


def test_tags_on_the_job_page_then_the_runs_table(browser, service: LiveService, downloads):
    driver = browser
    key = service.key_for("web-runs")
    with SRNetClient(service.url, key) as client:
        poe = client.submit({"name": "poe-run", "debias": {"loss": "poe"},
                             "pruning": {"sparsities": [0.5, 0.7]}})  # fmt: skip
        service.worker(poe.id).run_search()
        time.sleep(0.05)
        ce = client.submit({"name": "ce-run", "pruning": {"sparsities": [0.5]}})
        worker = service.worker(ce.id)
        worker.claim()
        collapsed = metric_payload(0.70, 0.50, sparsity=0.5)
        collapsed["hans"].update(collapsed=True, majority_share=0.99)
        worker.metric("search", 20, collapsed, sparsity=0.5, selected=True)
        worker.finish()

    # The job page: tag it, a refused tag is shown with its reason, then saved.
    use_key(driver, service, key, f"/web/jobs/{poe.id}")
    tags = wait_for(driver, lambda d: css(d, "#job-tags"), message="no tags field")[0]
    tags.send_keys("paper bad|tag")
    css(driver, "#job-note")[0].send_keys("PoE at 50% looks right")
    css(driver, "#save-annotations")[0].click()
    wait_for(driver, lambda d: css(d, '#annotate-state[data-state="error"]'))
    assert "tags.1" in text_of(driver, "#annotate-state")
    assert "one word" in text_of(driver, "#annotate-state")
    field = css(driver, "#job-tags")[0]
    field.clear()
    field.send_keys("paper poe")
    css(driver, "#save-annotations")[0].click()
    wait_for(driver, lambda d: css(d, '#annotate-state[data-state="saved"]'))
    assert [a.text for a in css(driver, "#current-tags a.tag")] == ["paper", "poe"]
    save_screenshot(driver, "job-annotations")
    with SRNetClient(service.url, key) as client:
        shown = client.get(poe.id)
    assert shown.tags == ("paper", "poe") and shown.note == "PoE at 50% looks right"

    # The runs page: every job's rows, the collapsed one flagged.
    driver.get(service.url + "/web/runs")
    wait_for(driver, lambda d: len(table_rows(d)) == 4, message="not 4 runs")
    rows = table_rows(driver)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (ce.id, "search", "0.5"), (poe.id, "dense", "0"), (poe.id, "search", "0.5"),
        (poe.id, "search", "0.7")]  # fmt: skip
    assert "⚠ hans" in rows[0][3] and css(driver, "#runs-body tr.collapsed-row")
    assert "paper" in rows[2][3] and "PoE at 50% looks right" in rows[2][3]
    headings = [th.text for th in css(driver, "#runs-head th")]
    assert "hans (OOD)" in headings and "ID (dev)" in headings
    assert "Structure" in headings and all("unstructured" in r[3] for r in rows)
    save_screenshot(driver, "runs")

    # Sorting by a heading asks the API (aria-sort follows), and the address keeps it.
    css(driver, '#runs-head th[data-sort="ood.hans"] button')[0].click()
    wait_for(driver, lambda d: css(d, '#runs-head th[data-sort="ood.hans"][aria-sort="ascending"]'))
    wait_for(driver, lambda d: table_rows(d)[0][0] == ce.id)  # the lowest HANS first
    assert "sort=ood.hans" in driver.current_url

    # Filters: a tag button, then the loss; the view survives a reload from the address.
    css(driver, '#runs-body button.tag[data-tag="poe"]')[0].click()
    wait_for(driver, lambda d: len(table_rows(d)) == 3 and "tag=poe" in d.current_url)
    from selenium.webdriver.support.ui import Select

    Select(css(driver, "#filter-stage")[0]).select_by_value("search")
    wait_for(driver, lambda d: len(table_rows(d)) == 2)
    driver.get(driver.current_url)
    wait_for(driver, lambda d: len(table_rows(d)) == 2, message="the address lost the filters")
    assert css(driver, "#filter-tag")[0].get_attribute("value") == "poe"
    assert "tag=poe" in text_of(driver, "#api-link")
    save_screenshot(driver, "runs-filtered")

    # The CSV export is the filtered table.
    for old in downloads.glob("srnet-runs*.csv"):
        old.unlink()
    css(driver, "#export-csv")[0].click()
    path = wait_for(driver, lambda d: next(iter(downloads.glob("srnet-runs*.csv")), None),
                    message="no CSV downloaded")  # fmt: skip
    wait_for(driver, lambda d: path.stat().st_size > 0)
    lines = list(csv.DictReader(path.open()))
    assert {line["job_id"] for line in lines} == {poe.id} and len(lines) == 2
    css(driver, "#filter-sparsity")[0].send_keys("70%\n")
    wait_for(driver, lambda d: len(table_rows(d)) == 1 and table_rows(d)[0][2] == "0.7")
    # pruning.structure is a filter too: no structured job here
    Select(css(driver, "#filter-structure")[0]).select_by_value("ffn_neurons")
    wait_for(driver, lambda d: len(table_rows(d)) == 0 and "structure=ffn_neurons" in d.current_url)
    assert console_errors(driver) == []
