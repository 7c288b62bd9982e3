"""Prometheus metrics, in one registry per gateway (tests can build several)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter(
            "gateway_inbound_messages",
            "Inbound messages by channel and result (stored, duplicate, refused, invalid)",
            ["channel", "result"],
            registry=r,
        )
        self.outbound = Counter(
            "gateway_outbound_messages",
            "Outbound messages by channel and final status (sent, failed)",
            ["channel", "status"],
            registry=r,
        )
        self.send_seconds = Histogram(
            "gateway_send_seconds",
            "Time a provider took to accept a message",
            ["channel"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "gateway_outbox_depth", "Messages queued or being sent", registry=r
        )
        self.worker_restarts = Counter(
            "gateway_worker_restarts",
            "Background workers restarted after an unexpected error",
            ["worker"],
            registry=r,
        )
        self.http = Counter(
            "gateway_http_requests", "HTTP requests by route and status", ["route", "status"],
            registry=r,
        )  # fmt: skip

    def read_at_scrape(self, read: Callable[[], Iterable[Metric]]) -> None:
        """Add metrics computed from live state each time they are scraped."""
        self.registry.register(_Collector(read))


class _Collector(Collector):
    def __init__(self, read: Callable[[], Iterable[Metric]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        return self.read()


def counter(name: str, documentation: str, labels: list[str], rows: list[tuple]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for *values, amount in rows:
        family.add_metric(values, amount)
    return family


def gauge(name: str, documentation: str, labels: list[str], rows: list[tuple]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for *values, amount in rows:
        family.add_metric(values, amount)
    return family
