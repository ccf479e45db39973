"""The web pages in a real headless chromium against a real API. A stand-in worker writes
progress, metrics and artifacts through the persistence repositories (no GPU needed).
Each test saves a screenshot of its page in test-artifacts/screenshots/ for review."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from persistence.tables import JobStatus
from srcore.jobspec.layout import artifact_names, job_tag
from srnet.client import SRNetClient
from tests.client.live_service import LiveService
from tests.web.conftest import save_screenshot

pytestmark = pytest.mark.e2e
WAIT_S = 30


def wait_for(driver, condition, timeout: float = WAIT_S, message: str = ""):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Pages re-render as data arrives: an element read a moment ago may have been replaced.
    wait = WebDriverWait(
        driver, timeout, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(condition, message)


def text_of(driver, selector: str) -> str:
    """The rendered text of the first element matching `selector`, read in one script call:
    a page that re-renders between finding an element and reading it cannot make it stale."""
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", selector
    )
    assert text is not None, f"no element {selector}"
    return text


def job_rows(driver) -> dict[str, str]:
    """The jobs table as {job id: row text}, read in one go (it refreshes itself)."""
    # Pairs, not an object: chromedriver would hand an object back with its keys sorted.
    pairs = driver.execute_script(
        "return [...document.querySelectorAll('#jobs-body tr[data-job]')]"
        ".map(row => [row.dataset.job, row.innerText])"
    )
    return dict(pairs)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def use_key(driver, service: LiveService, key: str, path: str) -> None:
    """Open `path` with a fresh tab state and enter the key in the page's key bar."""
    driver.get(service.url + "/web/jobs")
    driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    console_errors(driver)  # start with an empty log
    driver.get(service.url + path)
    field = wait_for(driver, lambda d: css(d, "#api-key"), message="no key field")[0]
    from selenium.webdriver.common.keys import Keys

    field.send_keys(key, Keys.ENTER)  # the keyboard is enough
    wait_for(driver, lambda d: css(d, "#key-state"), message="the key was not accepted")


def console_errors(driver) -> list[str]:
    """Script errors logged since the last call (the 4xx answers the tests provoke on purpose
    are logged by chromium too: those are not errors of the page)."""
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]


def test_a_wrong_key_is_refused_and_the_key_stays_in_this_tab(browser, service: LiveService):
    driver = browser
    driver.get(service.url + "/web/jobs")
    driver.execute_script("sessionStorage.clear();")
    driver.refresh()
    field = wait_for(driver, lambda d: css(d, "#api-key"))[0]
    field.send_keys("srn_wrong-key")
    css(driver, "#key-form button[type=submit]")[0].click()
    wait_for(driver, lambda d: "refused" in css(d, "#key-message")[0].text)
    assert driver.execute_script("return sessionStorage.length") == 0

    key = service.key_for("web-keys")
    use_key(driver, service, key, "/web/jobs")
    assert driver.execute_script("return sessionStorage.getItem('srnet.apiKey')") == key
    assert driver.execute_script("return localStorage.length") == 0
    assert driver.execute_script("return document.cookie") == ""
    assert key not in driver.current_url
    assert key not in driver.page_source  # shown only as its 12-character prefix
    css(driver, "#forget-key")[0].click()
    wait_for(driver, lambda d: css(d, "#api-key"))
    assert driver.execute_script("return sessionStorage.length") == 0


def test_submit_shows_the_api_errors_next_to_the_field_then_creates_a_job(
    browser, service: LiveService
):
    from selenium.webdriver.support.ui import Select

    driver = browser
    key = service.key_for("web-submit")
    use_key(driver, service, key, "/web/submit")
    sparsities = wait_for(driver, lambda d: css(d, "#f-pruning-sparsities"))[0]
    assert sparsities.get_attribute("placeholder") == "default: 0.5"
    help_text = css(driver, "#f-pruning-sparsities-help")[0].text
    assert "Default: 0.5" in help_text and "0 < each < 1" in help_text
    # Defaults in words, as the README gives them; no Python or JSON words in the help.
    eval_every = css(driver, "#f-training-eval-every-help")[0].text
    assert "Default: 10 evaluations per stage." in eval_every and "Not set" not in eval_every
    assert css(driver, "#f-pruning-initial-sparsity")[0].get_attribute("placeholder") == (
        "default: 0.7"
    )
    assert "(none to turn it off)" in css(driver, "#f-training-grad-clip-help")[0].text
    helps = " ".join(h.get_attribute("textContent") for h in css(driver, ".field .help"))
    for leftover in ("null", "None", "True", "False", "Default: none. Not set"):
        assert leftover not in helps, leftover

    # A value the API refuses: its 422 appears next to pruning.sparsities.
    sparsities.send_keys("0.5, 1.5")
    css(driver, "#submit-button")[0].click()
    slot = '.field[data-path="pruning.sparsities"] .field-error'
    wait_for(driver, lambda d: css(d, slot)[0].text, message="no error next to the field")
    assert css(driver, slot)[0].text == "value 2: Input should be less than 1"
    assert sparsities.get_attribute("aria-invalid") == "true"
    assert "pruning.sparsities" in css(driver, "#error-summary")[0].text
    save_screenshot(driver, "submit-errors")
    # A rule about the whole section is shown on the section.
    Select(css(driver, "#f-pruning-method")[0]).select_by_value("imp")
    sparsities.clear()
    sparsities.send_keys("0.55")
    css(driver, "#submit-button")[0].click()
    wait_for(driver, lambda d: css(d, "#group-error-pruning")[0].text)
    assert "multiples of imp_rate" in css(driver, "#group-error-pruning")[0].text
    assert not css(driver, slot)[0].text  # the earlier error is gone
    # A value the browser cannot even parse never reaches the API.
    batch = css(driver, "#f-training-batch-size")[0]
    batch.send_keys("many")
    css(driver, "#submit-button")[0].click()
    wait_for(
        driver,
        lambda d: (
            "not a number" in css(d, '.field[data-path="training.batch_size"] .field-error')[0].text
        ),
    )
    with SRNetClient(service.url, key) as client:
        assert client.list().count == 0  # nothing was stored

    # A preset (chosen with the keyboard), then a valid submission.
    from selenium.webdriver.common.keys import Keys

    css(driver, '[data-preset="mnli-poe-mask"]')[0].send_keys(Keys.ENTER)
    assert sparsities.get_attribute("value") == "0.5, 0.7, 0.9"
    # The feedback is beside the presets, on screen where the click was.
    assert "Preset applied" in css(driver, "#preset-status")[0].text
    assert driver.execute_script(
        "const r = document.getElementById('preset-status').getBoundingClientRect();"
        "return r.top >= 0 && r.bottom <= window.innerHeight;"
    )
    assert css(driver, '[data-preset="mnli-poe-mask"]')[0].get_attribute("aria-pressed") == "true"
    save_screenshot(driver, "submit-preset")
    assert Select(css(driver, "#f-debias-loss")[0]).first_selected_option.text == "poe"
    assert batch.get_attribute("value") == ""  # the reset cleared the bad value
    css(driver, "#submit-button")[0].click()
    link = wait_for(driver, lambda d: css(d, "#new-job-link"), message="no job created")[0]
    job_id = link.get_attribute("href").rsplit("/", 1)[-1]
    with SRNetClient(service.url, key) as client:
        job = client.get(job_id)
    assert job.name == "mnli-poe-mask-50-70-90" and job.status == "queued"
    assert job.spec["pruning"]["sparsities"] == [0.5, 0.7, 0.9]
    assert job.spec["debias"]["loss"] == "poe"
    save_screenshot(driver, "submit")
    assert not console_errors(driver)


def test_jobs_page_lists_filters_and_cancels(browser, service: LiveService):
    driver = browser
    key = service.key_for("web-jobs")
    with SRNetClient(service.url, key) as client:
        queued = client.submit({"name": "queued-job"})
        running = client.submit({"name": "<img src=x onerror=window.__xss=1>"})
        done = client.submit({"name": "finished-job"})
    worker = service.worker(running.id)
    worker.claim()
    worker.stage("search", "seed 1: mask_training, finetuned")
    worker.progress(120, 400, 812.0, 95.0)
    service.worker(done.id).run_search((0.5,))

    use_key(driver, service, key, "/web/jobs")
    wait_for(driver, lambda d: len(job_rows(d)) == 3)
    rows = job_rows(driver)
    assert list(rows) == [done.id, running.id, queued.id], rows  # newest first
    assert "<img src=x onerror=window.__xss=1>" in rows[running.id]  # text, not markup
    assert driver.execute_script("return window.__xss") is None
    running_row = rows[running.id]
    assert "running" in running_row and "search" in running_row and "30%" in running_row
    assert "1 min 35 s" in running_row  # the ETA
    assert "succeeded" in rows[done.id]
    assert not css(driver, f'[data-cancel="{done.id}"]')  # nothing to cancel
    save_screenshot(driver, "jobs")

    css(driver, f'[data-cancel="{queued.id}"]')[0].click()
    wait_for(driver, lambda d: d.switch_to.alert).accept()
    wait_for(
        driver,
        lambda d: css(d, f'tr[data-job="{queued.id}"][data-status="cancelled"]'),
        message="not cancelled",
    )
    with SRNetClient(service.url, key) as client:
        assert client.get(queued.id).status == "cancelled"

    from selenium.webdriver.support.ui import Select

    Select(css(driver, "#status-filter")[0]).select_by_value("succeeded")
    wait_for(driver, lambda d: list(job_rows(d)) == [done.id])
    assert "1 of 1 job" in text_of(driver, "#jobs-count")
    assert not console_errors(driver)


def test_job_page_follows_the_stream_and_shows_curves_tables_and_downloads(
    browser, service: LiveService, downloads: Path
):
    driver = browser
    key = service.key_for("web-job")
    with SRNetClient(service.url, key) as client:
        job = client.submit({"name": "live-job", "pruning": {"sparsities": [0.5, 0.7]}})
    checkpoint = bytes(range(256)) * 4000  # ~1 MB
    use_key(driver, service, key, f"/web/jobs/{job.id}")
    wait_for(driver, lambda d: css(d, '#job-status[data-status="queued"]'))
    # Its place in the queue and why it waits (GET /jobs/{id} queue_place).
    place = text_of(driver, "#job-queue-place")  # other tests of the module may queue jobs
    assert place.startswith("Place ") and " in the gpu queue: " in place, place
    wait_for(driver, lambda d: css(d, '#connection[data-state="live"]'), message="no stream")
    # Record every status the page shows; a marker proves the page is never reloaded.
    driver.execute_script(
        "window.__stay = 42; window.__seen = [];"
        "new MutationObserver(() => {"
        "  const node = document.getElementById('job-status');"
        "  const s = node && node.dataset.status;"
        "  if (s && window.__seen[window.__seen.length - 1] !== s) window.__seen.push(s);"
        "}).observe(document.getElementById('job-summary'), {childList: true, subtree: true});"
    )
    worker = threading.Thread(
        target=service.worker(job.id).run_search,
        kwargs={"sparsities": (0.5, 0.7), "pause_s": 0.15, "checkpoint": checkpoint},
    )
    worker.start()
    wait_for(driver, lambda d: css(d, '#job-status[data-status="running"]'))
    wait_for(driver, lambda d: "% of the job" in css(d, "#job-summary .bar-text")[0].text)
    assert text_of(driver, "#job-speed") == "512"
    # The bar is the whole job's (the stand-in: 20% + 75% of the search), the stage line the
    # search's step; the job has an ETA and an elapsed time.
    # Read in one go: the summary re-renders with every progress message.
    running, stage, eta, elapsed = driver.execute_script(
        "const t = (id) => document.getElementById(id).textContent;"
        "return [document.getElementById('job-progress').value, t('job-stage'),"
        " t('job-eta-job'), t('job-elapsed')];"
    )
    assert 20 < running < 96
    assert "search" in stage and "step" in stage
    assert eta not in ("", "–") and elapsed.endswith(" s")
    save_screenshot(driver, "job-running")
    wait_for(
        driver,
        lambda d: css(d, '#job-status[data-status="succeeded"]'),
        message="the page did not reach succeeded",
    )
    worker.join()
    # Finished: its final state and how long it took, not "stage export".
    wait_for(driver, lambda d: css(d, "#job-stage")[0].text.startswith("took "))
    assert "export" not in text_of(driver, "#job-summary")
    assert not css(driver, "#job-progress")  # no bar once finished
    assert driver.execute_script("return window.__stay") == 42
    seen = driver.execute_script("return window.__seen")
    assert [s for s in seen if s != "queued"] == ["running", "succeeded"], seen
    wait_for(driver, lambda d: css(d, '#connection[data-state="ended"]'))

    # Curves: dense (2 evaluations) and one search curve per sparsity (4), dev and HANS each.
    wait_for(
        driver,
        lambda d: len(css(d, "#curves svg .point")) == 2 * (2 + 4 + 4),
        message="curves not drawn",
    )
    titles = [f.text for f in css(driver, "#curves figcaption")]
    assert titles == [
        "dense · seed 1 · sparsity 0%",
        "search · seed 1 · sparsity 50%",
        "search · seed 1 · sparsity 70%",
    ]
    assert len(css(driver, "#curves svg .point.highlight")) == 2 * 3  # the selected points
    # Sparsity vs accuracy: 0 (dense), 50 and 70% for dev and HANS.
    points = css(driver, "#sparsity svg .point")
    assert len(points) == 6
    xs = sorted({float(p.get_attribute("data-x")) for p in points})
    assert xs == [0.0, 50.0, 70.0]
    ys = {round(float(p.get_attribute("data-y")), 2) for p in points}
    assert 79.5 in ys and 62.75 in ys  # dev and HANS at 50%, step 30
    # HANS per heuristic.
    hans = css(driver, "#hans-table")[0]
    assert "lexical overlap" in hans.text and "constituent" in hans.text
    assert len(css(driver, "#hans-table tbody tr")) == 3
    # Where each mask moved: per matrix type and per layer, one row per selected mask.
    q_cells = driver.execute_script(
        "return [...document.querySelectorAll('#movement-type-table td[data-group=\"Q\"]')]"
        ".map((td) => td.textContent);"
    )
    assert q_cells == ["2.00", "4.00"]  # 50% and 70% masks: the stand-in's 1% and 2%, Q twice
    assert len(css(driver, "#movement-layer-table tbody tr")) == 2
    assert "layer 1" in text_of(driver, "#movement-layer-table thead")
    # Artifacts and the log.
    wait_for(driver, lambda d: len(css(d, "#artifacts-table tbody tr")) == 5)
    log = text_of(driver, "#event-log")
    # the kind column says "stage" once: "stage search (…)", never "stage stage search (…)"
    assert "stage search (seed 1: mask_training, finetuned)" in log
    assert "stage stage" not in log and "artifact artifact" not in log
    save_screenshot(driver, "job")

    # Download: with the key in a header, checked against the sha256, saved as a file.
    name = artifact_names(job_tag(job.id), 1, 0.7).checkpoint
    row = next(r for r in css(driver, "#artifacts-table tbody tr") if name in r.text)
    assert "3.9 MiB" not in row.text and "1000.0 KiB" in row.text
    row.find_element("css selector", "button").click()
    target = downloads / name
    wait_for(
        driver,
        lambda d: target.exists() and target.stat().st_size == len(checkpoint),
        message="no file downloaded",
    )
    time.sleep(0.2)
    assert target.read_bytes() == checkpoint
    assert row.find_element("css selector", ".dl-state").text == "saved · sha256 verified"
    # The training loss the evaluations recorded: one line per curve (dense + 2 searches).
    assert len(css(driver, "#loss svg g.series")) == 3
    assert len(css(driver, "#loss svg .point")) == 2 + 4 + 4
    assert {p.get_attribute("data-y") for p in css(driver, "#loss svg .point")} == {"0.42"}
    assert not console_errors(driver)

    # Clone into the form: the submit page starts from this job's spec.
    css(driver, "#clone-job")[0].click()
    wait_for(
        driver,
        lambda d: any("Cloned from job live-job" in e.text for e in css(d, "#preset-status")),
        message="the form was not filled from the job",
    )
    assert css(driver, "#f-pruning-sparsities")[0].get_attribute("value") == "0.5, 0.7"
    assert css(driver, "#f-name")[0].get_attribute("value") == "live-job"
    assert css(driver, "#f-training-batch-size")[0].get_attribute("value") == ""  # a default
    save_screenshot(driver, "submit-cloned")
    assert not console_errors(driver)


def test_compare_page_puts_several_jobs_on_one_chart(browser, service: LiveService):
    driver = browser
    key = service.key_for("web-compare")
    with SRNetClient(service.url, key) as client:
        poe = client.submit({"name": "poe-mask", "debias": {"loss": "poe"}})
        ce = client.submit({"name": "ce-mask"})
    service.worker(poe.id).run_search((0.5, 0.7, 0.9), shift=0.04)
    service.worker(ce.id).run_search((0.5, 0.7, 0.9))
    use_key(driver, service, key, f"/web/compare?jobs={poe.id},{ce.id}")
    wait_for(
        driver,
        lambda d: len(css(d, "#comparison svg .point")) == 8,
        message="compare chart not drawn",
    )  # dense + 3 sparsities, for each job
    series = [g.get_attribute("data-series") for g in css(driver, "#comparison svg g.series")]
    assert sorted(series) == ["ce-mask", "poe-mask"]
    poe_points = css(driver, '#comparison svg g[data-series="poe-mask"] .point')
    ce_points = css(driver, '#comparison svg g[data-series="ce-mask"] .point')
    # Same sparsity, PoE sits to the left (ID) and above (OOD) of CE by the shift.
    poe_xy = sorted(
        (float(p.get_attribute("data-x")), float(p.get_attribute("data-y"))) for p in poe_points
    )
    ce_xy = sorted(
        (float(p.get_attribute("data-x")), float(p.get_attribute("data-y"))) for p in ce_points
    )
    for (px, py), (cx, cy) in zip(poe_xy, ce_xy, strict=True):
        assert cx - px == pytest.approx(4.0) and py - cy == pytest.approx(4.0)
    assert len(css(driver, "#compare-table tbody tr")) == 8
    assert css(driver, "#ood-set")[0].get_attribute("value") == "hans"
    save_screenshot(driver, "compare")
    # Unticking a job redraws with the other one only, and the address follows.
    css(driver, f'input[name=job][value="{poe.id}"]')[0].click()
    wait_for(driver, lambda d: len(css(d, "#comparison svg .point")) == 4)
    assert poe.id not in driver.current_url and ce.id in driver.current_url
    assert not console_errors(driver)


def test_a_failed_job_says_what_it_never_made_without_yet(browser, service: LiveService):
    driver = browser
    key = service.key_for("web-failed")
    with SRNetClient(service.url, key) as client:
        job = client.submit({"name": "broken"})
    worker = service.worker(job.id)
    worker.claim()
    worker.stage("dense", "seed 1")
    worker.finish(JobStatus.failed, error="loss is nan at step 12")
    use_key(driver, service, key, f"/web/jobs/{job.id}")
    wait_for(driver, lambda d: css(d, '#job-status[data-status="failed"]'))
    wait_for(driver, lambda d: "no artifacts" in css(d, "#artifacts")[0].text)
    text = text_of(driver, "main")
    assert " yet" not in text and "appear" not in text, text
    assert "No mask was selected" in text_of(driver, "#sparsity")
    assert text_of(driver, "#job-stage").startswith("during dense")
    assert "loss is nan at step 12" in text_of(driver, "#job-error")
    save_screenshot(driver, "job-failed")
    assert not console_errors(driver)


def test_chart_ticks_carry_the_decimals_their_step_needs(browser, service: LiveService):
    """33.25 is not 33.3: a tick is written with as many decimals as the step needs."""
    driver = browser
    driver.get(service.url + "/web/compare")
    labels = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "import('/web/static/js/charts.js').then((m) => {"
        "  const figure = m.chart({title: 't', xLabel: 'x', yLabel: 'y', series: [{name: 'a',"
        "    points: [{x: 33.0, y: 33.0}, {x: 34.1, y: 34.1}]}], padX: true,"
        "    xFormat: (v) => v.toFixed(1), yFormat: (v) => v.toFixed(1)});"
        "  done([...figure.querySelectorAll('.tick')].map((t) => [t.textContent,"
        "    t.getAttribute('data-value')]));"
        "});"
    )
    assert labels
    for text, value in labels:
        assert float(text) == pytest.approx(float(value), abs=1e-9), (text, value)
    assert "33.25" in [text for text, _ in labels]
