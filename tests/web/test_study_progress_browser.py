"""A study's progress on the studies list and the study page (issue 19 item 7): a bar over
the whole study and "n of m jobs done · percent · running · elapsed · ETA"."""

from __future__ import annotations

from srnet.client import SRNetClient
from tests.client.live_service import LiveService
from tests.web.conftest import save_screenshot
from tests.web.test_browser import console_errors, css, use_key, wait_for

STUDY = {
    "name": "bar-study",
    "base": {"pruning": {"sparsities": [0.5]}, "training": {"max_steps": 5}},
    "axes": [{"path": "debias.loss", "values": ["none", "poe"]}],
    "dense_references": False,
}


def test_the_study_pages_show_its_progress(browser, service: LiveService):
    driver = browser
    key = service.key_for("web-study-progress")
    with SRNetClient(service.url, key) as client:
        study = client.submit_study(STUDY)
    first, second = (c.job_id for c in study.children)
    service.worker(first).run_search((0.5,))
    running = service.worker(second)
    running.claim()
    running.progress(20, 40, 512.0, 30.0, job_fraction=0.5, job_eta_s=60.0)

    use_key(driver, service, key, "/web/studies")
    cell = f'tr[data-study="{study.id}"] .study-progress'
    wait_for(driver, lambda d: css(d, cell), message="no progress on the studies list")
    text, value = driver.execute_script(
        f"const c = document.querySelector('{cell}');"
        "return [c.textContent, c.querySelector('progress').value];"
    )
    assert text.startswith("1 of 2 jobs done · 75% · 1 running · elapsed")
    assert text.endswith("ETA 1 min 00 s")
    assert value == 75
    save_screenshot(driver, "studies-progress")

    driver.get(service.url + f"/web/studies/{study.id}")
    wait_for(driver, lambda d: css(d, "#study-progress"), message="no progress on the page")
    text = driver.execute_script("return document.querySelector('#study-progress').textContent")
    assert "1 of 2 jobs done · 75%" in text
    save_screenshot(driver, "study-progress")
    assert not console_errors(driver)
