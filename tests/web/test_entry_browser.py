"""A new user's first clicks in a real browser (issue 19 item 3): the service's root opens the
web pages, their navigation reaches the API docs, and the docs lead back."""

from __future__ import annotations

from tests.client.live_service import LiveService
from tests.web.conftest import save_screenshot


def test_root_to_web_to_docs_and_back(browser, service: LiveService):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(service.url + "/")
    wait.until(ec.url_to_be(service.url + "/web/jobs"))
    assert browser.find_element(By.ID, "page-heading").text == "Your jobs"
    docs = browser.find_element(By.CSS_SELECTOR, "nav.pages a.api-docs")
    assert docs.text == "API docs"
    docs.click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path")))
    assert browser.current_url == service.url + "/docs"
    save_screenshot(browser, "docs-with-web-link")
    browser.find_element(By.CSS_SELECTOR, ".srnet-web-link a").click()
    wait.until(ec.url_to_be(service.url + "/web/jobs"))
