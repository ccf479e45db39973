"""/web/compare flags a collapsed subnetwork (issue 19 item 5): its OOD cell carries the ⚠ and
the seed count, and its chart point says so; a model that did not collapse is shown plain."""

from __future__ import annotations

from srnet.client import SRNetClient
from tests.client.live_service import LiveService, metric_payload
from tests.web.conftest import save_screenshot
from tests.web.test_browser import console_errors, css, use_key, wait_for


def test_compare_flags_a_collapsed_subnetwork(browser, service: LiveService):
    driver = browser
    key = service.key_for("web-compare-collapse")
    with SRNetClient(service.url, key) as client:
        job = client.submit({"name": "collapsing"})
    worker = service.worker(job.id)
    worker.claim()
    worker.metric("dense", 20, metric_payload(0.8, 0.6), sparsity=None, selected=True)
    collapsed = metric_payload(0.7, 0.5, sparsity=0.9)
    collapsed["hans"].update(collapsed=True, majority_label="entailment", majority_share=0.99)
    worker.metric("search", 30, collapsed, sparsity=0.9, selected=True)
    worker.finish()

    use_key(driver, service, key, f"/web/compare?jobs={job.id}")
    wait_for(driver, lambda d: len(css(d, "#compare-table tbody tr")) == 2,
             message="compare table not drawn")  # fmt: skip
    rows = {r.find_elements("css selector", "td")[1].text: r
            for r in css(driver, "#compare-table tbody tr")}  # fmt: skip
    sparse_cells = rows["90%"].find_elements("css selector", "td")
    assert sparse_cells[4].get_attribute("data-collapsed") == "true"
    assert sparse_cells[4].text.endswith("⚠ 1 collapsed")
    assert sparse_cells[3].get_attribute("data-collapsed") is None  # not on dev
    dense_cells = rows["dense"].find_elements("css selector", "td")
    assert all(c.get_attribute("data-collapsed") is None for c in dense_cells)
    labels = [t.text for t in css(driver, "#comparison svg text")]
    assert any(text == "90% ⚠ collapsed" for text in labels), labels
    assert "collapsed" in css(driver, "#compare-table caption")[0].text
    save_screenshot(driver, "compare-collapsed")
    assert not console_errors(driver)
