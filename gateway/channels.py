"""The configured channels, built from config and kept in the ``channels`` collection."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from channels.base import Channel, ChannelContext
from channels.media import MediaRules
from channels.registry import CHANNEL_TYPES
from gateway.config import Config, ConfigError, build_section
from gateway.logs import scrubber
from storage.database import Storage

log = logging.getLogger("gateway.channels")


class ChannelSet:
    """The running channels, found by id or by configured name."""

    def __init__(
        self, channels: list[Channel] | None = None, off: dict[str, str] | None = None
    ) -> None:
        self._by_id = {c.id: c for c in channels or []}
        self._by_name = {c.name: c for c in channels or []}
        self.off = off or {}  # declared channels that do not run: name → why

    def extend(self, other: ChannelSet) -> None:
        """Add the channels of ``other`` (the runtime's, once they are built)."""
        for channel in other:
            self._by_id[channel.id] = channel
            self._by_name[channel.name] = channel

    def __iter__(self) -> Any:
        return iter(self._by_id.values())

    def get(self, channel_id: str) -> Channel | None:
        return self._by_id.get(channel_id)

    def max_text(self, channel_id: str) -> int:
        """The longest text a send through the channel may carry."""
        channel = self._by_id.get(channel_id)
        return channel.max_text if channel is not None else Channel.max_text

    def reply_window(self, channel_id: str) -> timedelta | None:
        """How long after a contact's last message free-form text may reach them."""
        channel = self._by_id.get(channel_id)
        return channel.reply_window if channel is not None else None

    def sends_templates(self, channel_id: str) -> bool:
        channel = self._by_id.get(channel_id)
        return channel is not None and channel.sends_templates

    def media(self, channel_id: str) -> MediaRules | None:
        """The files a send through the channel may carry; None: none."""
        channel = self._by_id.get(channel_id)
        return channel.media if channel is not None else None

    def find(self, type_: str, ref: str) -> Channel | None:
        """The channel of ``type_`` whose name or id is ``ref``."""
        channel = self._by_name.get(ref) or self._by_id.get(ref)
        return channel if channel is not None and channel.type == type_ else None

    @classmethod
    async def open(cls, config: Config, storage: Storage) -> ChannelSet:
        """Validate each configured channel, record it, and build it.

        A channel whose required secrets are not set is skipped with one log line,
        so the default config runs with only the mock channel.
        """
        channels, off = [], {}
        for declared, kind, settings, why in declared_channels(config):
            if why:
                log.info("channel %r (%s) is off: %s", declared.name, declared.type, why)
                off[declared.name] = why
                continue
            shown = {k: v for k, v in dataclasses.asdict(settings).items() if k not in kind.secrets}
            record = await storage.channels.upsert(
                declared.name, declared.type, kind.mode_of(settings), shown
            )
            channel = kind(record, settings, _context(config))
            channel.faq_auto_reply = declared.faq_auto_reply and config.faq.auto_reply
            channels.append(channel)
            log.info("channel %r (%s, %s) is on", declared.name, declared.type, record.mode)
        return cls(channels, off)

    async def close(self) -> None:
        for channel in self:
            try:
                await channel.close()
            except Exception:
                log.exception("channel %r did not close cleanly", channel.name)


def _context(config: Config) -> ChannelContext:
    server = config.server
    return ChannelContext(server.public_url, server.loopback_only, config.delivery.concurrency)


def declared_channels(config: Config) -> Iterator[tuple[Any, Any, Any, str]]:
    """Each configured channel with its type, its settings, and why it will not run
    ("" if it will): disabled, a required secret not set, or its type's own reason.
    :class:`ConfigError` for an unknown type or a bad setting."""
    for index, declared in enumerate(config.channels):
        prefix = f"channels[{index}]."
        kind = CHANNEL_TYPES.get(declared.type)
        if kind is None:
            known = ", ".join(sorted(CHANNEL_TYPES))
            raise ConfigError(f"{prefix}type: unknown channel type {declared.type!r} ({known})")
        settings: Any = build_section(kind.Settings, declared.settings, prefix)
        scrubber.add(*(str(getattr(settings, name)) for name in kind.secrets))
        missing = [name for name in kind.required if not getattr(settings, name)]
        why = (
            "disabled"
            if not declared.enabled
            else f"{', '.join(missing)} not set"
            if missing
            else kind.off_because(settings, _context(config))
        )
        yield declared, kind, settings, why or ""
