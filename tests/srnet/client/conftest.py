"""The client tests' fixtures: the real API per module and a key per test, shared with the CLI
tests in tests/client (tests.client.conftest)."""

from tests.client.conftest import client, key, service

__all__ = ["client", "key", "service"]
