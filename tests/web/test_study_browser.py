"""The studies pages in a real headless chromium against a real API: submit a study by pasting
its JSON (the field-named 422 shown, then accepted), the study page following its children
live, the results table with a collapsed cell flagged, the plot, the CSV export; the job page
flags a collapsed set. Screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

import json
import time

import pytest

from srnet.client import SRNetClient
from tests.client.live_service import LiveService, metric_payload
from tests.web.conftest import save_screenshot
from tests.web.test_browser import console_errors, css, text_of, use_key, wait_for

pytestmark = pytest.mark.e2e

STUDY = {
    "name": "web-study",
    "base": {"pruning": {"sparsities": [0.5]}, "training": {"seeds": [1, 2]}},
    "axes": [{"path": "debias.loss", "values": ["none", "poe"]}],
}


def paste(driver, text: str) -> None:
    driver.execute_script(
        "const box = document.getElementById('study-json'); box.value = arguments[0];", text
    )
    css(driver, "#submit-study")[0].click()


def run_children(service: LiveService, study_id: str, key: str) -> None:
    """Every child: a dense model and a 50% subnetwork per seed; the CE reference's magnitude
    subnetwork collapses on HANS in seed 2 (one class for 99% of it)."""
    with SRNetClient(service.url, key) as client:
        study = client.get_study(study_id)
    for child in study.children:
        worker = service.worker(child.job_id)
        worker.claim()
        for seed in (1, 2):
            lift = 0.01 * seed + (0.04 if "poe" in child.key else 0.0)
            worker.metric("dense", 10, metric_payload(0.80 + lift, 0.55), seed=seed,
                          sparsity=0.0, selected=True)  # fmt: skip
            payload = metric_payload(0.74 + lift, 0.58 + lift, sparsity=0.5)
            if child.key == "reference:none" and seed == 2:
                payload["hans"].update(
                    collapsed=True,
                    majority_share=0.99,
                    majority_label="non-entailment",
                    non_entailed=0.99,
                )
            worker.metric("search", 20, payload, seed=seed, sparsity=0.5, selected=True)
        worker.finish()
        time.sleep(0.05)


def poe_vs_ce_dev(driver) -> str | None:
    """The text of the comparison's dev row for loss poe − loss none (read in one script call:
    the table re-renders under the driver)."""
    return driver.execute_script(
        "const rows = document.querySelectorAll('#compare-table tr[data-metric=\"dev.accuracy\"]');"
        "const row = [...rows].find((r) => r.textContent.includes('loss poe @ 50%')"
        "  && r.textContent.includes('loss none @ 50%'));"
        "return row ? row.innerText : null;"
    )


def test_a_study_from_submission_to_its_table_and_plot(browser, service: LiveService, downloads):
    driver = browser
    key = service.key_for("web-studies")
    use_key(driver, service, key, "/web/studies")
    wait_for(driver, lambda d: "No studies yet" in css(d, "#studies-body")[0].text)

    # An unknown axis path: the 422 is shown with the field named, nothing is created.
    bad = {**STUDY, "axes": [{"path": "debias.lossy", "values": ["poe"]}]}
    paste(driver, json.dumps(bad))
    errors = wait_for(driver, lambda d: css(d, "#study-errors li"), message="no field errors")
    assert errors[0].get_attribute("data-field") == "axes.0.path"
    assert "debias.loss" in errors[0].text and "nothing was queued" in css(
        driver, "#study-errors")[0].text  # fmt: skip
    save_screenshot(driver, "studies-error")
    paste(driver, "{not json")
    wait_for(driver, lambda d: "Not JSON" in css(d, "#submit-status")[0].text)

    paste(driver, json.dumps(STUDY))
    wait_for(driver, lambda d: "/web/studies/" in d.current_url, message="not sent to the study")
    wait_for(driver, lambda d: css(d, '#study-status[data-status="queued"]'))
    study_id = driver.current_url.rsplit("/", 1)[-1]
    assert len(css(driver, "#children-table tbody tr")) == 4
    assert "4 jobs: 4 queued" in text_of(driver, "#study-counts")
    assert "Rows appear" in text_of(driver, "#results")
    driver.execute_script("window.__stay = 7;")

    run_children(service, study_id, key)
    wait_for(driver, lambda d: css(d, '#study-status[data-status="succeeded"]'),
             message="the page did not follow the study")  # fmt: skip
    assert driver.execute_script("return window.__stay") == 7  # refreshed in place
    wait_for(driver, lambda d: css(d, "#results-table tbody tr"))
    rows = {r.get_attribute("data-row") + "@" + r.get_attribute("data-sparsity"): r
            for r in css(driver, "#results-table tbody tr")}  # fmt: skip
    assert set(rows) == {"loss none@0.5", "loss poe@0.5", "dense CE@0", "magnitude CE@0.5",
                         "dense poe@0", "magnitude poe@0.5"}  # fmt: skip
    headers = [h.text for h in css(driver, "#results-table thead th")]
    assert headers[:5] == ["Setting", "Sparsity", "dev", "HANS", "HANS ent"]
    assert "79.5 ± 0.7 (2)" in rows["loss poe@0.5"].text  # dev: 0.74 + 0.04 + 0.015
    collapsed = css(driver, "#results-table td.collapsed")
    assert collapsed and all(c.get_attribute("data-collapsed") == "1" for c in collapsed)
    assert all(
        "magnitude CE" in c.find_element("xpath", "..").text for c in collapsed
    )  # only the collapsed row's HANS cells
    assert "1 collapsed" in collapsed[0].text
    assert "not a robustness gain" in text_of(driver, "#collapse-note")
    plot = wait_for(
        driver,
        lambda d: [
            i
            for i in css(d, "#study-plot")
            if d.execute_script("return arguments[0].naturalWidth", i)
        ],
    )
    assert plot[0].get_attribute("src").startswith("blob:")
    save_screenshot(driver, "study")

    css(driver, "#export-csv")[0].click()
    target = downloads / f"study-{study_id}.csv"
    wait_for(driver, lambda d: target.exists() and target.stat().st_size > 100)
    time.sleep(0.2)
    assert target.read_text().startswith("row,role,setting,sparsity,metric,mean,sd,n,collapsed")
    css(driver, "#export-seeds")[0].click()
    seeds = downloads / f"study-{study_id}-seeds.csv"
    wait_for(driver, lambda d: seeds.exists() and seeds.stat().st_size > 100)
    time.sleep(0.2)
    assert seeds.read_text().startswith("row,role,child,job,seed,sparsity,metric,value,")

    # The paired comparison: PoE children are 4 points above CE on every seed.
    wait_for(driver, lambda d: css(d, "#compare-table tbody tr"), message="no comparison")
    driver.execute_script(
        "for (const [id, value] of [['compare-a', 'loss poe'], ['compare-b', 'loss none']]) {"
        "  const box = document.getElementById(id); box.value = value;"
        "  box.dispatchEvent(new Event('change')); }"
    )
    dev = wait_for(driver, poe_vs_ce_dev, message="no PoE − CE comparison")
    assert "+4.00" in dev and "[+4.00, +4.00]" in dev and "1 2" in dev
    save_screenshot(driver, "study-compare")

    # The list shows it finished; the job page flags the collapsed set of its selected point.
    driver.get(service.url + "/web/studies")
    wait_for(driver, lambda d: css(d, f'#studies-body tr[data-study="{study_id}"]'))
    assert "4 of 4" in text_of(driver, f'#studies-body tr[data-study="{study_id}"]')
    with SRNetClient(service.url, key) as client:
        reference = next(c for c in client.get_study(study_id).children
                         if c.key == "reference:none")  # fmt: skip
    driver.get(service.url + f"/web/jobs/{reference.job_id}")
    flagged = wait_for(driver, lambda d: css(d, "#selected-table td.collapsed"))
    assert len(flagged) == 1 and 'collapsed (99% "non-entailment")' in flagged[0].text
    save_screenshot(driver, "job-collapsed")
    assert not console_errors(driver)


def test_the_study_page_of_someone_else_is_not_found(browser, service: LiveService):
    driver = browser
    with SRNetClient(service.url, service.key_for("web-study-owner")) as client:
        study = client.submit_study(STUDY)
    use_key(driver, service, service.key_for("web-study-other"), f"/web/studies/{study.id}")
    wait_for(driver, lambda d: "Not found" in css(d, "#app")[0].text)
