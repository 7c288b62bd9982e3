"""Prometheus metrics, in one registry per gateway (tests can build several)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The `_created` series double every counter's series for a value nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client 0.21


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # What every Prometheus client exports by default: CPU, memory, descriptors, GC.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
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
        # The team's backlog, read from the database at each scrape (handlers/metrics.py):
        # per channel, its open conversations, those queued, and the longest wait (s).
        self.backlog: list[tuple[str, int, int, float]] = []
        self.worker_restarts = Counter(
            "gateway_worker_restarts",
            "Background workers restarted after an unexpected error",
            ["worker"],
            registry=r,
        )
        self.http = Counter(
            "gateway_http_requests", "HTTP requests by route template and status",
            ["route", "status"], registry=r,
        )  # fmt: skip
        self.http_seconds = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            registry=r,
        )

    def read_at_scrape(self, read: Callable[[], Iterable[Metric]]) -> None:
        """Add metrics computed from live state each time they are scraped."""
        self.registry.register(_Collector(read))


class _Collector(Collector):
    def __init__(self, read: Callable[[], Iterable[Metric]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        return self.read()


def counter(
    name: str, documentation: str, labels: list[str], rows: list[tuple[Any, ...]]
) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for *values, amount in rows:
        family.add_metric(values, amount)
    return family


def gauge(name: str, documentation: str, labels: list[str], rows: list[tuple[Any, ...]]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for *values, amount in rows:
        family.add_metric(values, amount)
    return family


def route_template(pattern: str) -> str:
    """A route's regex as a label: each group becomes ``{name}``, escapes and anchors go.

    ``/api/v1/messages/(?P<message_id>[^/]+)/`` → ``/api/v1/messages/{message_id}/``;
    one label per route, however many ids are requested.
    """
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
        elif char == "(":
            end, depth = i, 0
            while end < len(pattern):
                if pattern[end] == "\\":
                    end += 1
                elif pattern[end] == "(":
                    depth += 1
                elif pattern[end] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                end += 1
            group = pattern[i + 1 : end]
            name = group[3 : group.index(">")] if group.startswith("?P<") else "path"
            out.append("{" + name + "}")
            i = end + 1
            if i < len(pattern) and pattern[i] in "?*+":
                i += 1  # the group's quantifier belongs to the group
        elif char in "^$":
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
