"""Every preset on the submit page states its size and an estimate before anyone submits
(issue 19 item 4): on a service that has finished no job yet, "No measurement yet"."""

from __future__ import annotations

from tests.client.live_service import LiveService
from tests.web.conftest import save_screenshot
from tests.web.test_browser import console_errors, css, use_key, wait_for


def test_each_preset_shows_its_steps_evaluations_and_estimate(browser, service: LiveService):
    driver = browser
    use_key(driver, service, service.key_for("web-preset-size"), "/web/submit")
    buttons = wait_for(driver, lambda d: css(d, "button.preset"))
    assert len(buttons) >= 6
    for button in buttons:
        size = button.find_element("css selector", ".preset-size").text
        estimate = button.find_element("css selector", ".preset-estimate").text
        assert "training steps" in size and "evaluations" in size, size
        assert estimate.startswith(("No measurement yet on this service", "About ")), estimate
    first = css(driver, '[data-preset="mnli-poe-mask"] .preset-size')[0].text
    assert first.startswith("5,076 training steps (dense 1 × 846 steps, search 3 × 1,410 steps)")
    css(driver, '[data-preset="quick-cpu"]')[0].click()
    status = wait_for(driver, lambda d: css(d, "#preset-status")[0].text)
    assert "60 training steps" in status and "queue cpu" in status
    save_screenshot(driver, "submit-preset-sizes")
    assert not console_errors(driver)
