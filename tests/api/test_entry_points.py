"""Where a new user lands (issue 19 item 3): `/` is the web pages, and the web pages and the
OpenAPI page link to each other."""

from __future__ import annotations


def test_the_service_root_leads_to_the_web_pages(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/web/"
    landed = client.get("/")
    assert landed.status_code == 200 and str(landed.url).endswith("/web/jobs")


def test_the_web_pages_and_the_docs_link_to_each_other(client):
    for page in ("/web/jobs", "/web/submit", "/web/runs"):
        assert '<a class="api-docs" href="/docs">API docs</a>' in client.get(page).text
    assert '<a href="/web/">← SRNet web pages</a>' in client.get("/docs").text
