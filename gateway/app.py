"""Building the gateway from config, without listening: the CLI and tests share it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import tornado.web

from gateway.auth import Authenticator
from gateway.channels import ChannelSet
from gateway.config import Config
from gateway.faq import FaqResponder, make_cache
from gateway.inbound import InboundWriter, receive
from gateway.logs import scrubber
from gateway.metrics import Metrics, counter, gauge
from gateway.outbound import Dispatcher
from gateway.tokens import load_or_create_secret
from handlers import (
    agents,
    auth,
    channels,
    contacts,
    docs,
    faqs,
    health,
    messages,
    metrics,
    webhooks,
)
from handlers.base import BaseHandler, NotFoundHandler, check_handler_auth
from storage.database import Storage

log = logging.getLogger("gateway.app")
access_log = logging.getLogger("gateway.access")

API_ROUTES: list[tuple[str, type]] = [
    *health.routes,
    *metrics.routes,
    *auth.routes,
    *agents.routes,
    *contacts.routes,
    *channels.routes,
    *messages.routes,
    *faqs.routes,
    *webhooks.routes,
]


class InflightRequests:
    """Counts requests being handled, so shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


@dataclass
class Services:
    """Everything a handler may use, passed to each handler as one object."""

    config: Config
    storage: Storage
    auth: Authenticator
    faq: FaqResponder
    metrics: Metrics
    channels: ChannelSet = field(default_factory=ChannelSet)
    dispatcher: Dispatcher | None = None
    inflight: InflightRequests = field(default_factory=InflightRequests)
    inbound: InboundWriter = field(init=False)

    def __post_init__(self) -> None:
        self.inbound = InboundWriter(self.storage)
        self.metrics.read_at_scrape(self._live_metrics)

    def _live_metrics(self) -> Any:
        stats = self.faq.stats
        yield counter(
            "gateway_faq_cache_lookups",
            "FAQ lookups by result",
            ["result"],
            [
                ("hit", stats.hits),
                ("miss", stats.misses),
                ("error", stats.errors),
                ("no_faq", stats.no_faq),
            ],
        )
        polling = [c for c in self.channels if hasattr(c, "poll_errors")]
        yield counter(
            "gateway_telegram_poll_errors",
            "Failed getUpdates calls",
            ["channel"],
            [(c.name, c.poll_errors) for c in polling],  # type: ignore[attr-defined]
        )
        yield gauge(
            "gateway_telegram_poll_lag_seconds",
            "Age of the newest update when its batch was stored",
            ["channel"],
            [(c.name, c.poll_lag_seconds) for c in polling],  # type: ignore[attr-defined]
        )

    def outbox_changed(self) -> None:
        """A message was queued: the dispatcher looks now instead of at its next poll."""
        if self.dispatcher is not None:
            self.dispatcher.notify()

    async def receive(self, channel: Any, items: Any) -> Any:
        """Store what a channel received, answering FAQs; see gateway.inbound."""
        result = await receive(self.inbound, channel, items, self.faq, self.outbox_changed)
        inbound = self.metrics.inbound
        inbound.labels(channel.name, "stored").inc(result.stored)
        inbound.labels(channel.name, "duplicate").inc(result.duplicates)
        return result


def build_services(config: Config, storage: Storage) -> Services:
    """The API's services, without channels or delivery (enough for the REST API)."""
    secret = load_or_create_secret(config.auth.jwt_secret, config.data_dir)
    scrubber.add(secret, config.metrics.token)
    scrubber.add_uri_password(config.storage.uri)
    scrubber.add_uri_password(config.cache.url)
    authenticator = Authenticator(config.auth, secret, storage.agents, storage.revocations)
    faq = FaqResponder(storage, make_cache(config.cache), config.faq, config.cache.faq_ttl_seconds)
    return Services(config=config, storage=storage, auth=authenticator, faq=faq, metrics=Metrics())


async def start_services(config: Config, storage: Storage) -> Services:
    """Everything on an open storage: channels, their pollers, the dispatcher."""
    services = build_services(config, storage)
    services.channels = await ChannelSet.open(config, storage)
    services.dispatcher = Dispatcher(storage, services.channels, config.delivery, services.metrics)

    def sink_for(channel: Any) -> Any:
        async def sink(items: Any) -> None:
            await services.receive(channel, items)

        return sink

    await services.channels.start(sink_for)
    services.dispatcher.start()
    return services


async def stop_services(services: Services) -> None:
    """Stop pollers, then let the dispatcher finish or leave the sends it holds."""
    await services.channels.stop()
    if services.dispatcher is not None:
        await services.dispatcher.stop(services.config.server.shutdown_grace_seconds / 2)
    await services.faq.close()


async def open_services(config: Config) -> Services:
    """Open storage (starting the embedded server if configured), then everything else."""
    storage = Storage.open(config.storage, config.data_dir)
    try:
        await storage.ensure_indexes(config.storage.message_retention_seconds)
        services = await start_services(config, storage)
    except BaseException:
        await storage.close()
        raise
    storage.start_ttl_sweeper(config.storage.embedded.ttl_sweep_seconds)
    return services


async def close_services(services: Services) -> None:
    await stop_services(services)
    await services.storage.close()


def make_app(services: Services) -> tornado.web.Application:
    """The Tornado application; refuses to build if a route could skip auth."""

    def mount(pattern: str, handler: type, options: dict[str, Any] | None = None) -> Any:
        check_handler_auth(handler)
        kwargs = dict(options or {})
        if issubclass(handler, BaseHandler):
            kwargs["services"] = services
        return (pattern, handler, kwargs)

    handlers = [mount(*route) for route in API_ROUTES]
    handlers += [mount(*route) for route in docs.routes_for(API_ROUTES)]
    handlers.append(mount(r".*", NotFoundHandler))

    def log_request(handler: tornado.web.RequestHandler) -> None:
        services.metrics.http.labels(type(handler).__name__, str(handler.get_status())).inc()
        _log_request(handler)

    return tornado.web.Application(handlers, log_function=log_request, xsrf_cookies=False)


def _log_request(handler: tornado.web.RequestHandler) -> None:
    """One line per request; its level follows the status."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if handler.request.path in ("/healthz", "/readyz") and status < 400:
        level = logging.DEBUG  # probes every few seconds would drown the log
    access_log.log(
        level,
        "%s %s %d %.1fms",
        handler.request.method,
        handler.request.path,
        status,
        1000.0 * handler.request.request_time(),
    )
