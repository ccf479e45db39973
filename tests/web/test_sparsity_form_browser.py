"""The submit form and the API answer a sparsity written as a percentage with the fraction to
write (issue 19 item 10): "50%" in the form, 50 from the API."""

from __future__ import annotations

from tests.client.live_service import LiveService
from tests.web.conftest import save_screenshot
from tests.web.test_browser import console_errors, css, use_key, wait_for

SLOT = '.field[data-path="pruning.sparsities"] .field-error'


def test_a_percentage_gets_the_fraction_to_write(browser, service: LiveService):
    driver = browser
    use_key(driver, service, service.key_for("web-sparsity"), "/web/submit")
    field = wait_for(driver, lambda d: css(d, "#f-pruning-sparsities"))[0]
    field.send_keys("50%")
    css(driver, "#submit-button")[0].click()
    wait_for(driver, lambda d: css(d, SLOT)[0].text, message="no error next to the field")
    assert '"50%" is a percentage: write 0.5' in css(driver, SLOT)[0].text
    field.clear()
    field.send_keys("50")  # a number the form passes on: the API's 422 says the same
    css(driver, "#submit-button")[0].click()
    wait_for(driver, lambda d: "write 0.5 for 50%" in css(d, SLOT)[0].text,
             message="the API's hint did not appear")  # fmt: skip
    save_screenshot(driver, "submit-sparsity-percentage")
    assert not console_errors(driver)
