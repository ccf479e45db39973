"""Prometheus: request counts and latency per route template, jobs by status (read from the
database at scrape time, so every API process reports the same truth)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from persistence.db import Database
from persistence.repositories import JobRepository

log = logging.getLogger(__name__)


class JobStatusCollector(Collector):
    def __init__(self, database: Database):
        self.database = database

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("srnet_jobs", "Jobs by status", labels=["status"])
        try:
            with self.database.session() as session:
                counts = JobRepository(session).count_by_status()
        except Exception:  # a scrape must not fail because the database is down
            log.warning("could not count jobs for /metrics", exc_info=True)
            return
        for status, n in counts.items():
            gauge.add_metric([status.value], n)
        yield gauge


class Monitoring:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self, database: Database):
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "srnet_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "srnet_http_request_duration_seconds",
            "HTTP request latency (until the response headers are sent)",
            ["method", "route"],
            registry=self.registry,
        )
        self.registry.register(JobStatusCollector(database))

    def endpoint(self, _request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, monitoring: Monitoring):
        self.app = app
        self.monitoring = monitoring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                self._observe(scope, status_code, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            self._observe(scope, status_code, time.perf_counter() - started)
            raise

    def _observe(self, scope: Scope, status_code: int, seconds: float) -> None:
        route = scope.get("route")
        # The template, not the path: one series per route, not per job id.
        template = getattr(route, "path", None) or "<unmatched>"
        method = scope.get("method", "?")
        self.monitoring.requests.labels(method, template, str(status_code)).inc()
        self.monitoring.latency.labels(method, template).observe(seconds)
