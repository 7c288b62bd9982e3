"""The one place that configures logging: text or JSON lines, with secrets scrubbed.

Every line passes through :class:`Scrubber`: the secrets the gateway knows (bot
tokens, auth tokens, webhook secrets, passwords in URIs) and anything shaped like a
Telegram bot token are replaced by ``***`` in messages and tracebacks alike.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

# https://core.telegram.org/bots/api#authorizing-your-bot: <digits>:<35 characters>
_BOT_TOKEN = re.compile(r"(?<![0-9])[0-9]{5,}:[A-Za-z0-9_-]{30,}")
MASK = "***"


class Scrubber:
    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *secrets: str) -> None:
        """Never log these; short values are ignored (they would mask ordinary words)."""
        self._secrets.update(s for s in secrets if s and len(s) >= 8)

    def add_uri_password(self, uri: str) -> None:
        try:
            password = urlsplit(uri).password
        except ValueError:
            return
        if password:
            self.add(password)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return _BOT_TOKEN.sub(MASK, text)


scrubber = Scrubber()

# Requests are logged once, by handlers.app's log_function; the libraries' chatter
# (the driver's every command, the HTTP clients) only from WARNING up.
CHATTY_LIBRARIES = ("pymongo", "aiogram", "twilio")


class _ScrubbingFormatter(logging.Formatter):
    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return scrubber(self.inner.format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)  # logged with extra={"fields": {...}}
        if isinstance(fields, dict):
            entry.update({k: v for k, v in fields.items() if k not in entry})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(_ScrubbingFormatter(inner))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in CHATTY_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
