"""Wrong API keys are throttled per client (issue 19 item 16): 800 guesses met no limit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.key_throttle import MAX_FAILURES, WINDOW_S, FailedKeyThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(client) -> Clock:
    clock = Clock()
    client.app.state.key_throttle = FailedKeyThrottle(clock=clock)
    return clock


def test_wrong_keys_meet_a_429_with_retry_after_then_the_limit_lifts(client, auth, clock):
    wrong = {"X-API-Key": "srn_" + "x" * 43}
    for _ in range(MAX_FAILURES):
        assert client.get("/jobs", headers=wrong).status_code == 401
        clock.now += 1.0
    throttled = client.get("/jobs", headers=wrong)
    assert throttled.status_code == 429
    assert throttled.json()["type"] == "too_many_failed_keys"
    # The first failure was 10 s ago: the window frees up 50 s from now.
    assert int(throttled.headers["retry-after"]) == int(WINDOW_S) - MAX_FAILURES
    # The right key is refused too while throttled: the answer must not tell them apart.
    assert client.get("/jobs", headers=auth).status_code == 429
    clock.now += WINDOW_S - MAX_FAILURES + 0.5
    assert client.get("/jobs", headers=auth).status_code == 200
    # One failure left the window: one more wrong key fills it again.
    assert client.get("/jobs", headers=wrong).status_code == 401
    assert client.get("/jobs", headers=wrong).status_code == 429


def test_the_limit_is_per_client(client, auth, clock):
    for _ in range(MAX_FAILURES):
        client.get("/jobs", headers={"X-API-Key": "wrong"})
    assert client.get("/jobs", headers=auth).status_code == 429
    other = TestClient(client.app, client=("203.0.113.7", 40000))
    assert other.get("/jobs", headers=auth).status_code == 200
    # A request without any key is a plain 401 and counts for nothing.
    assert other.get("/jobs").status_code == 401
    assert client.app.state.key_throttle.retry_after("203.0.113.7") is None


def test_the_throttle_forgets_the_least_recent_clients_beyond_its_bound():
    clock = Clock()
    throttle = FailedKeyThrottle(2, 60.0, max_clients=3, clock=clock)
    for client in ("a", "b", "c", "d"):
        throttle.record_failure(client)
        throttle.record_failure(client)
    assert throttle.retry_after("a") is None  # dropped: the bound holds memory
    assert throttle.retry_after("d") == 60
    clock.now += 60.0
    assert throttle.retry_after("d") is None


def test_openapi_declares_the_429_wherever_a_key_is_asked_for(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "429" in paths["/jobs"]["get"]["responses"]
    assert "too_many_failed_keys" in paths["/jobs"]["post"]["responses"]["429"]["description"]
