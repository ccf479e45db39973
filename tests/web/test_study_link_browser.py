"""A study's child links back to its study (issue 19 item 8): the job API names the study and
the child's setting; the job page links to the study page."""

from __future__ import annotations

from srnet.client import SRNetClient
from tests.client.live_service import LiveService
from tests.web.conftest import save_screenshot
from tests.web.test_browser import console_errors, css, use_key, wait_for

STUDY = {
    "name": "link-back",
    "base": {"pruning": {"sparsities": [0.5]}, "training": {"max_steps": 5}},
    "axes": [{"path": "debias.loss", "values": ["none", "poe"]}],
    "dense_references": False,
}


def test_a_child_job_page_links_to_its_study(browser, service: LiveService):
    driver = browser
    key = service.key_for("web-study-link")
    with SRNetClient(service.url, key) as client:
        study = client.submit_study(STUDY)
        child = study.children[1]
        job = client.get(child.job_id)
        plain = client.submit({"name": "plain"})
    assert job.raw["study_id"] == study.id and job.raw["study_key"] == "debias.loss=poe"
    assert client_free_of_study(plain.raw)

    use_key(driver, service, key, f"/web/jobs/{child.job_id}")
    wait_for(driver, lambda d: css(d, "#job-study a"), message="no study link")
    # Read in one script call: the summary re-renders as the job's stream moves.
    href, text = driver.execute_script(
        "const p = document.querySelector('#job-study');"
        "return [p.querySelector('a').href, p.textContent];"
    )
    assert href.endswith(f"/web/studies/{study.id}")
    assert "setting debias.loss=poe" in text
    save_screenshot(driver, "job-study-link")
    driver.execute_script("document.querySelector('#job-study a').click()")
    wait_for(driver, lambda d: d.current_url.endswith(f"/web/studies/{study.id}"))
    driver.get(service.url + f"/web/jobs/{plain.id}")
    wait_for(driver, lambda d: css(d, "#job-status"), message="the plain job did not render")
    assert not css(driver, "#job-study")
    assert not console_errors(driver)


def client_free_of_study(raw: dict) -> bool:
    return raw["study_id"] is None and raw["study_key"] is None
