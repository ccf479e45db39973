"""/docs in a real browser: Swagger UI renders every operation from the service's own files
under the strict policy, with no policy violation and no request to another host (issue 11
item 3)."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.client.live_service import LiveService
from tests.web.conftest import save_screenshot


def test_docs_renders_offline_under_the_strict_policy(browser, service: LiveService):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(service.url + "/docs")
    WebDriverWait(browser, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path"))
    )
    paths = {
        e.text.replace("\u200b", "")
        for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    }
    assert "/jobs" in paths and "/healthz" in paths
    assert browser.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title")
    save_screenshot(browser, "docs")
    hosts = {
        urlsplit(entry["name"]).netloc
        for entry in browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => ({name: e.name}))"
        )
    }
    assert hosts <= {urlsplit(service.url).netloc}, hosts
    problems = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]
    ]
    assert not problems, problems
