"""The outbound dispatcher: queued messages leave through their channel, once, in order.

The guarantees, and what keeps them:

- **One sender per channel.** A gateway sends a channel's messages only while it
  holds the channel's lease (gateway/leases.py), so pacing per bot and per chat is
  exact even with several gateways on one database.
- **Cost does not grow with what waits.** The holder keeps the channel's unsent
  messages in memory, one queue per contact, and a heap of each contact's oldest
  unsent message by due time. Only that message is ever a candidate; finding the
  next one is a heap pop. The database is read when the lease is taken, and then
  once a second for what other gateways queued.
- **Claims mean what they say.** A message is claimed (queued → sending, with a
  token and a deadline) only when its send can start: its pacing slot has come
  and a concurrency slot is free. Only the token finishes the claim. A send is cut
  at half the claim, so no claim runs out under a live send; one that another
  process left behind is put back once its deadline passes, never one of ours.
- **In order per contact.** A contact's next message is claimed only once the
  outcome of the one before it is durable, across retries and restarts.
- **Failures.** Transient ones are retried with exponential backoff and jitter;
  permanent ones end ``failed`` at once; a flood wait (429) pauses the channel for
  as long as the provider says and is not an attempt.
- **Few round trips.** Claims are made for every message whose slot has come in
  one write, and outcomes are group-committed, those of one claim that ended alike
  in one update: about two writes per message, fewer under load. On the embedded
  server, whose data dir admits one gateway, claims stay in memory (storage/outbox.py)
  and a send costs only its outcome's share of a write.

"Exactly once", precisely: Telegram and Twilio take no idempotency key, so if a
gateway dies after the provider accepted a message and before its outcome was
recorded, the next holder sends it again. Nothing else sends a message twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta

import pymongo
from pymongo.errors import PyMongoError

from channels.base import Channel, ProviderError, SendError, Throttled
from common.backoff import Backoff
from gateway.attachments import OutboundFiles
from gateway.bus import Bus, StatusesChanged
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.config import DeliveryConfig
from gateway.group_commit import GroupCommit, settle
from gateway.lane import BACKGROUND_TIMEOUT_SECONDS, Lane, Slots
from gateway.logs import scrubber
from gateway.metrics import Metrics
from gateway.pacing import Pacing
from gateway.workers import Supervisor, detached_task
from storage.database import Storage
from storage.errors import is_unavailable
from storage.models import Message
from storage.outbox import Claim, Outcome, Unsent
from storage.records import key_floor, millis, new_id, utcnow

log = logging.getLogger("gateway.outbound")

DISCOVER_SECONDS = 1.0  # how soon a message another gateway queued is seen
# Discovery reads the queued messages created this recently, so one whose insert
# finished late (or on a machine whose clock is a little behind) is still found.
DISCOVER_MARGIN_MS = 30_000
# Outcomes per write. The embedded server holds every other request while it writes;
# 32 messages take it about 60 ms (measured in the bench's backlog drain).
OUTCOMES_PER_WRITE = 32
ERROR_CHARS = 500


class OutcomeWriter:
    """Records outcomes in groups: those that end while one group is written go in the next.

    An outcome is retried until it is durable while the database is unreachable:
    dropping it would send its message again.
    """

    def __init__(self, storage: Storage, bus: Bus) -> None:
        self.storage = storage
        self.outbox = storage.outbox
        self.bus = bus  # told of the messages each write moved (StatusesChanged)
        self._moved: list[str] = []  # ids whose outcome is recorded, not yet announced
        self._announcer: asyncio.Task[None] | None = None
        self._writes = GroupCommit(self._write, "outcome writer", OUTCOMES_PER_WRITE)

    async def record(self, outcome: Outcome) -> None:
        done = asyncio.get_running_loop().create_future()
        self._writes.add([(outcome, done)])
        await done

    async def drain(self, within: float) -> None:
        """Wait (at shutdown) for what is queued to be written, and announced."""
        deadline = time.monotonic() + within
        await self._writes.drain(within)
        if self._announcer is not None and not self._announcer.done():
            with contextlib.suppress(TimeoutError):
                left = max(0.1, deadline - time.monotonic())
                await asyncio.wait_for(asyncio.shield(self._announcer), left)

    async def _write(self, batch: list[tuple[Outcome, asyncio.Future[None]]]) -> None:
        """Record ``batch``, retried while the database is unreachable."""
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                with pymongo.timeout(BACKGROUND_TIMEOUT_SECONDS):
                    await self.outbox.finish([outcome for outcome, _ in batch])
                break
            except Exception as exc:
                if not is_unavailable(exc):
                    log.exception("%d send outcomes could not be recorded", len(batch))
                    settle((done for _, done in batch), exc)
                    return
                wait = backoff.next()
                log.warning("%d send outcomes not recorded yet (%s); again in %.1f s",
                            len(batch), type(exc).__name__, wait)  # fmt: skip
                await asyncio.sleep(wait)
        settle((done for _, done in batch), None)
        # A retry leaves a message queued: no change of status to announce.
        self._moved += [o.message_id for o, _ in batch if o.status != "queued"]
        if self._moved and (self._announcer is None or self._announcer.done()):
            self._announcer = detached_task(self._announce_all(), "outcome events")

    async def _announce_all(self) -> None:
        """Tell of what the writes moved, off the writes' path: what piles up meanwhile
        goes in one announcement."""
        while self._moved:
            ids, self._moved = self._moved, []
            try:
                with pymongo.timeout(BACKGROUND_TIMEOUT_SECONDS):
                    moved = await self.storage.messages.get_many(ids)
                    await self.bus.publish(StatusesChanged(moved))
            except Exception as exc:  # the outcomes are recorded; their events are not
                log.warning("events of %d send outcomes not written (%s)", len(ids),
                            type(exc).__name__)  # fmt: skip


class Dispatcher:
    """Sends the outboxes of the channels this gateway holds, one :class:`Lane` each."""

    def __init__(
        self,
        storage: Storage,
        config: DeliveryConfig,
        metrics: Metrics,
        supervisor: Supervisor,
        files: OutboundFiles,
        bus: Bus,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.files = files
        self.config = config
        self.metrics = metrics
        self.supervisor = supervisor
        self.owner = new_id()  # names this process in the claims it makes
        self.lanes: dict[str, Lane] = {}
        self.live: set[str] = set()  # ids claimed here whose outcome is not durable yet
        self.slots = Slots(config.concurrency)  # shared by the lanes
        self.outcomes = OutcomeWriter(storage, bus)
        # A message's retries: doubling from backoff_seconds, jittered by up to a quarter.
        self.retries = Backoff(config.backoff_seconds, config.max_backoff_seconds, jitter=0.25)
        self._pacings: dict[str, Pacing] = {}  # by channel id; outlives a lane
        self._sends: set[asyncio.Task[None]] = set()
        self._discovering: asyncio.Future[None] | None = None

    def pacing(self, channel: Channel) -> Pacing:
        if channel.id not in self._pacings:
            self._pacings[channel.id] = Pacing(*channel.pacing(), clock=self.clock)
        return self._pacings[channel.id]

    def lane(self, channel: Channel) -> Lane:
        """A lane for ``channel``'s outbox, whose sends this dispatcher runs."""
        outbox, claim_seconds = self.storage.outbox, self.config.stale_sending_seconds
        return Lane(channel, outbox, self.pacing(channel), self, claim_seconds, self.clock)

    def paused(self) -> list[tuple[str, float, int]]:
        """(channel id, seconds of flood wait left, flood waits so far) for metrics."""
        return [(cid, p.paused_for(), p.flood_waits) for cid, p in self._pacings.items()]

    def start(self, *, alone: bool) -> None:
        """Start sending; unless ``alone`` on the database (then every message is
        queued here), also look for messages other gateways queue."""
        if not alone:
            self.supervisor.start("outbox discovery", self._discover_forever)

    def hold(self, channel: Channel) -> None:
        """This gateway now holds ``channel``: send its outbox."""
        lane = self.lane(channel)
        self.lanes[channel.id] = lane
        self.supervisor.start(f"outbox {channel.name}", lane.run)

    async def drop(self, channel: Channel) -> None:
        """Another gateway holds ``channel`` now (or we stop): claim nothing more for it."""
        if self.lanes.pop(channel.id, None) is not None:
            await self.supervisor.stop(f"outbox {channel.name}")

    def queued(self, messages: list[Message]) -> None:
        """Messages just queued here: the lane of their channel takes them at once."""
        for message in messages:
            lane = self.lanes.get(message.channel_id)
            if lane is not None:
                lane.add(Unsent.queued(message))

    async def stop(self, grace: float) -> None:
        """Claim nothing more; let sends under way finish within ``grace`` seconds."""
        await self.supervisor.stop("outbox discovery")
        if self._discovering is not None:  # a read it was doing ends first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._discovering), grace)
        for lane in list(self.lanes.values()):
            await self.drop(lane.channel)
        deadline = time.monotonic() + grace
        if self._sends:
            _, unfinished = await asyncio.wait(self._sends, timeout=grace)
            for task in unfinished:  # left "sending": put back once the claim expires
                task.cancel()
            if unfinished:
                log.warning("%d sends did not finish before shutdown", len(unfinished))
        await self.outcomes.drain(max(0.1, deadline - time.monotonic()))

    async def _discover_forever(self) -> None:
        while True:
            await asyncio.sleep(DISCOVER_SECONDS)
            # Never cancelled mid-read: pymongo leaves a connection it was opening to
            # the collector when cancelled (an unclosed socket); stop() waits instead.
            self._discovering = asyncio.ensure_future(self._discover_once())
            await asyncio.shield(self._discovering)

    async def _discover_once(self) -> None:
        floor = key_floor(millis(utcnow()) - DISCOVER_MARGIN_MS)
        for lane in list(self.lanes.values()):
            try:
                with pymongo.timeout(BACKGROUND_TIMEOUT_SECONDS):
                    await lane.discover(floor)
            except PyMongoError as exc:
                log.warning("outbox discovery: database error (%s)", type(exc).__name__)

    # -- one send ---------------------------------------------------------------------

    def launch(self, channel: Channel, message: Unsent, attempts: int, token: str) -> None:
        self.live.add(message.id)
        task = detached_task(self._deliver(channel, message, attempts, token), f"send {message.id}")
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _deliver(self, channel: Channel, message: Unsent, attempts: int, token: str) -> None:
        try:
            outcome, attempts, retry_in = await self._attempt(channel, message, attempts, token)
        finally:
            self.pacing(channel).finished(message.to, self.clock.monotonic())
            self.slots.give()
            for each in self.lanes.values():
                each.wake()  # a slot is free
        try:
            await self.outcomes.record(outcome)
        except Exception:  # logged by the writer
            lane = self.lanes.get(channel.id)
            if lane is not None:
                expires = self.clock.now() + timedelta(seconds=self.config.stale_sending_seconds)
                lane.abandon(message.id, Claim(token, self.owner, expires))
            return
        finally:
            self.live.discard(message.id)
        lane = self.lanes.get(channel.id)
        if lane is not None:
            lane.settle(outcome, attempts, retry_in)

    async def _attempt(
        self, channel: Channel, message: Unsent, attempts: int, token: str
    ) -> tuple[Outcome, int, float]:
        """Send once; returns the outcome, the counted attempts and when to retry."""
        started = self.clock.monotonic()
        try:
            # Cut well inside the claim, so the claim never expires under a live send.
            async with asyncio.timeout(self.config.stale_sending_seconds / 2):
                if message.template is not None:
                    external_id = await channel.send_template(
                        message.to, message.template, message.id
                    )
                elif message.media is not None:
                    attachment = await self.files.attachment(message.media)
                    caption = message.media.get("caption") or ""
                    external_id = await channel.send_media(
                        message.to, attachment, caption, message.id
                    )
                else:
                    external_id = await channel.send(message.to, message.content, message.id)
        except SendError as exc:
            return self._failed(channel, message, attempts, token, exc)
        except TimeoutError:
            failure = ProviderError("the provider did not answer in time")
            return self._failed(channel, message, attempts, token, failure)
        except Exception as exc:  # a bug or an unexpected client error: retry, loudly
            log.exception("message %s: unexpected error from channel %r", message.id, channel.name)
            failure = ProviderError(type(exc).__name__)
            return self._failed(channel, message, attempts, token, failure)
        elapsed = self.clock.monotonic() - started
        self.metrics.send_seconds.labels(channel.name).observe(elapsed)
        self.metrics.outbound.labels(channel.name, "sent").inc()
        log.info("message %s sent through %r in %.0f ms", message.id, channel.name, 1000 * elapsed)
        return Outcome(message.id, token, "sent", external_id=external_id), attempts + 1, 0.0

    def _failed(
        self, channel: Channel, message: Unsent, attempts: int, token: str, exc: SendError
    ) -> tuple[Outcome, int, float]:
        # Stored and shown to agents: no secret a provider's client quoted may stay in it.
        reason = scrubber(exc.describe()).encode("utf-8", "replace").decode()[:ERROR_CHARS]
        if isinstance(exc, Throttled):  # the provider asks us to wait: not an attempt
            delay = exc.retry_after if exc.retry_after is not None else self.config.backoff_seconds
            self.pacing(channel).pause(delay)
            log.warning("channel %r: flood wait of %.1f s (message %s waits)",
                        channel.name, delay, message.id)  # fmt: skip
            return self._retry(message, token, reason, delay, False), attempts, delay
        attempts += 1
        if not exc.retryable or attempts >= self.config.max_attempts:
            self.metrics.outbound.labels(channel.name, "failed").inc()
            log.warning("message %s failed after %d attempts: %s", message.id, attempts, reason)
            return Outcome(message.id, token, "failed", error=reason), attempts, 0.0
        delay = self.retries.delay(attempts)
        log.info("message %s: attempt %d failed (%s); retry in %.1f s",
                 message.id, attempts, reason, delay)  # fmt: skip
        return self._retry(message, token, reason, delay, True), attempts, delay

    def _retry(
        self, message: Unsent, token: str, reason: str, delay: float, counted: bool
    ) -> Outcome:
        at = self.clock.now() + timedelta(seconds=delay)
        return Outcome(message.id, token, "queued", error=reason, next_attempt_at=at,
                       counted=counted)  # fmt: skip
