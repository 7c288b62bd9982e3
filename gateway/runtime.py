"""The running gateway without its HTTP layer: the services handlers use, and the
runtime that opens them from config and closes them in order."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.api_tokens import ApiTokens
from gateway.assignment import Assigner
from gateway.attachments import OutboundFiles
from gateway.auth import Authenticator
from gateway.bot_lane import BotLane
from gateway.bus import AssignmentsMade, Bus, ConversationsWaiting, StatusesChanged
from gateway.channel_inbox import ChannelInbox
from gateway.channels import ChannelSet
from gateway.config import Config
from gateway.conversation_updates import ConversationUpdates
from gateway.conversations import Conversations
from gateway.database import open_storage, prepare
from gateway.events import EventHub, EventLog
from gateway.faq import FaqResponder, make_cache
from gateway.faqbook import FaqBook
from gateway.inbound import InboundWriter
from gateway.leases import ChannelWork
from gateway.logs import scrubber
from gateway.medialinks import MediaLinks
from gateway.messages import Sender
from gateway.metrics import Metrics, counter, gauge
from gateway.notes import Notes
from gateway.outbound import Dispatcher
from gateway.replies import SavedReplies
from gateway.subscription_work import PresentEvent, SubscriptionWork
from gateway.tokens import load_or_create_secret
from gateway.workers import Supervisor
from storage.database import Storage

log = logging.getLogger("gateway.runtime")


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
    """Everything a handler may use, passed to each handler as one object. Built by
    :func:`build_services`; :class:`Runtime` fills ``channels`` and starts the work."""

    config: Config
    storage: Storage
    auth: Authenticator
    metrics: Metrics
    faq: FaqResponder  # answers inbound questions
    faqs: FaqBook  # writes FAQs
    replies: SavedReplies  # the team's saved replies
    notes: Notes  # private notes in threads
    channels: ChannelSet
    supervisor: Supervisor
    dispatcher: Dispatcher  # sends the outbox of the channels whose lease we hold
    inbound: InboundWriter
    inbox: ChannelInbox  # what channels hand in
    sender: Sender  # agents' sends
    events: EventHub  # agents' live streams read it
    updates: ConversationUpdates  # what messages change in conversations, and their events
    assigner: Assigner
    bots: BotLane  # channels whose bot answers first
    conversations: Conversations
    links: MediaLinks  # the expiring links providers fetch uploads from
    inflight: InflightRequests = field(default_factory=InflightRequests)
    work: ChannelWork | None = None  # set while the runtime runs
    subscriptions: SubscriptionWork | None = None  # likewise, where webhooks go out


def build_services(config: Config, storage: Storage) -> Services:
    """The services on ``storage``, no channel built and no work started: enough for
    the REST API. :class:`Runtime` adds the rest."""
    secret = _secret(config)
    faq = FaqResponder(storage, make_cache(config.cache), config.faq, config.cache.faq_ttl_seconds)
    metrics = Metrics()
    supervisor = Supervisor(lambda worker: metrics.worker_restarts.labels(worker).inc())
    links = MediaLinks(secret, config.server.public_url, config.media.link_seconds)
    files = OutboundFiles(storage.uploads, links)
    bus = Bus()
    dispatcher = Dispatcher(storage, config.delivery, metrics, supervisor, files, bus)
    channels = ChannelSet()
    hub = _event_hub(config, storage)
    updates = ConversationUpdates(storage, EventLog(storage.events, hub), dispatcher.queued, bus)
    assigner = Assigner(storage, updates, config.assignment)
    # Who hears what (gateway/bus.py): every subscription of the process is here.
    bus.subscribe(StatusesChanged, lambda event: updates.changed(event.messages))
    bus.subscribe(ConversationsWaiting, lambda _: assigner.nudge())
    bus.subscribe(AssignmentsMade, lambda event: assigner.assigned(event.conversations))
    bots = BotLane(storage, updates, assigner, config.bots)
    inbound = InboundWriter(storage, updates, assigner.propose, bot_of=bots.bot_of)
    services = Services(
        config=config,
        storage=storage,
        auth=_authenticator(config, storage, secret),
        metrics=metrics,
        faq=faq,
        faqs=FaqBook(storage.faqs, faq),
        replies=SavedReplies(storage.replies),
        notes=Notes(storage.notes, storage.conversations, storage.agents, updates),
        channels=channels,
        supervisor=supervisor,
        dispatcher=dispatcher,
        inbound=inbound,
        inbox=ChannelInbox(storage, inbound, faq, metrics, updates.queued, bus),
        sender=Sender(
            storage,
            known_contact=inbound.known_contact,
            channels=channels,
            queued=updates.queued,
            public_url=config.server.public_url,
            upload_limits=config.media,
            before_send=bots.before_send,
        ),
        bots=bots,
        events=hub,
        updates=updates,
        assigner=assigner,
        conversations=Conversations(storage, updates, assigner, bots),
        links=links,
    )
    metrics.read_at_scrape(lambda: _live_metrics(services))
    return services


def _authenticator(config: Config, storage: Storage, secret: str) -> Authenticator:
    tokens = ApiTokens(storage.api_tokens)
    return Authenticator(
        config.auth, secret, storage.agents, storage.revocations, storage.sign_in_failures, tokens
    )


def _secret(config: Config) -> str:
    """The gateway's signing secret; it and every secret of the config are kept out of
    the log (gateway/logs.py)."""
    secret = load_or_create_secret(config.auth.jwt_secret, config.data_dir)
    scrubber.add(secret, config.metrics.token)
    scrubber.add_uri_password(config.storage.uri)
    scrubber.add_uri_password(config.cache.url)
    return secret


def _event_hub(config: Config, storage: Storage) -> EventHub:
    shared = not storage.outbox.sole_writer  # other gateways may write to the database
    return EventHub(
        storage.events,
        settle_ms=config.events.settle_ms if shared else 0,
        poll_seconds=0.25 if shared else 1.0,
        limits=config.events,
    )


def _live_metrics(services: Services) -> Any:
    """The series read at each scrape from the running parts."""
    stats = services.faq.stats
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
    yield counter(
        "gateway_database_commands",
        "Commands sent to the database (its round trips), by command",
        ["command"],
        sorted(services.storage.commands.by_name.items()),
    )
    families: dict[str, tuple[str, str, list[tuple[str, float]]]] = {}
    for channel in services.channels:
        for metric in channel.metrics():
            _, _, rows = families.setdefault(metric.name, (metric.kind, metric.help, []))
            rows.append((channel.name, metric.value))
    for name, (kind, help_text, rows) in sorted(families.items()):
        yield (counter if kind == "counter" else gauge)(name, help_text, ["channel"], rows)
    names = {c.id: c.name for c in services.channels}
    paused = [(names.get(cid, cid), left, n) for cid, left, n in services.dispatcher.paused()]
    yield gauge(
        "gateway_channel_paused_seconds",
        "Seconds left of a provider's flood wait (429 retry_after) on the channel",
        ["channel"],
        [(name, left) for name, left, _ in paused],
    )
    yield counter(
        "gateway_flood_waits",
        "Flood waits (429) a provider imposed on the channel",
        ["channel"],
        [(name, n) for name, _, n in paused],
    )
    yield gauge(
        "gateway_expiry_pending_seconds",
        "Key time a sweep of expired documents still has to go (embedded database), by "
        "collection and field",
        ["collection"],
        sorted(services.storage.expiry.pending.items()),
    )
    backlog = services.metrics.backlog
    for index, (name, help_text) in enumerate(BACKLOG, start=1):
        yield gauge(name, help_text, ["channel"], [(row[0], row[index]) for row in backlog])
    if services.work is not None:
        held = services.work.held
        yield gauge(
            "gateway_channel_lease_held",
            "1 if this gateway works the channel (polls it, sends its outbox)",
            ["channel"],
            [(c.name, 1 if c.id in held else 0) for c in services.channels],
        )


BACKLOG = (  # the figures of Metrics.backlog, in its order
    ("gateway_conversations_open", "Open conversations, by channel"),
    ("gateway_conversations_waiting", "Open conversations no agent holds (the queue)"),
    (
        "gateway_conversation_longest_wait_seconds",
        "Since the contact of the conversation waiting longest in the queue last wrote",
    ),
)


@dataclass
class Runtime:
    """The running gateway: :meth:`open` starts it, :meth:`close` stops what it
    started, in reverse order. ``services`` is what the handlers get."""

    services: Services
    owns_storage: bool  # opened from the config here, so closed here too
    # How the API shows an event (handlers/events.py), which subscriptions' webhooks
    # carry; without it no webhook goes out from this runtime.
    present_event: PresentEvent | None = None

    @classmethod
    async def open(
        cls,
        config: Config,
        storage: Storage | None = None,
        present_event: PresentEvent | None = None,
    ) -> Runtime:
        """Storage (from the config unless given, starting the embedded server if it
        is configured), the channels, and the work of those whose lease we hold:
        their channels' and, with ``present_event``, their subscriptions'."""
        owns_storage = storage is None
        if storage is None:
            storage = open_storage(config)
        try:
            if owns_storage:
                await prepare(storage, config)
            runtime = cls(build_services(config, storage), owns_storage, present_event)
            await runtime._start()
        except BaseException:
            if owns_storage:
                await storage.close()
            raise
        return runtime

    async def _start(self) -> None:
        services, config, storage = self.services, self.services.config, self.services.storage
        services.channels.extend(await ChannelSet.open(config, storage))
        dispatcher = services.dispatcher
        alone = storage.outbox.sole_writer  # the embedded server's data dir admits one gateway
        services.work = ChannelWork(
            storage,
            services.channels,
            dispatcher,
            services.supervisor,
            services.inbox.sink_for,
            lease_seconds=config.cluster.lease_seconds,
            exclusive=alone,
        )
        dispatcher.start(alone=alone)
        services.work.start()
        if self.present_event is not None:
            services.subscriptions = SubscriptionWork(
                storage,
                services.updates.events,  # the event log, and its hub
                services.supervisor,
                self.present_event,
                config,
                exclusive=alone,
                owner=dispatcher.owner,
            )
            services.subscriptions.start()
        services.supervisor.start("event log", services.events.run)
        services.supervisor.start("assignment", services.assigner.run)
        services.supervisor.start("bot lane", services.bots.run)
        if not self.owns_storage:
            return  # the caller's storage: its upkeep is the caller's
        embedded = config.storage.embedded
        if storage.embedded is not None:
            services.supervisor.start(
                "embedded database",
                lambda: storage.keep_embedded_running(embedded.start_timeout_seconds),
            )
        if not storage.server_expires:
            services.supervisor.start(
                "message expiry", lambda: storage.sweep_forever(embedded.ttl_sweep_seconds)
            )

    async def close(self) -> None:
        """Stop polling, let the sends under way finish, hand the leases back, stop the
        rest, and close the storage if it was opened here."""
        services = self.services
        services.events.close()  # agents' streams end: nothing keeps shutdown waiting
        if services.work is not None:
            await services.work.stop()
        if services.subscriptions is not None:
            await services.subscriptions.stop()
        await services.dispatcher.stop(services.config.server.shutdown_grace_seconds / 2)
        await services.updates.drain(1.0)  # the updates of the last sends
        if services.work is not None:
            await services.work.release()
        if services.subscriptions is not None:
            await services.subscriptions.release()
        await services.supervisor.stop_all()
        await services.channels.close()
        await services.faq.close()
        if self.owns_storage:
            await services.storage.close()
