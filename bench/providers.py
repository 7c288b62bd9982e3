"""The fake Bot API the dispatcher sends to, served from a thread of the bench."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from testkit.fakes.telegram import FakeBotAPI


@contextlib.contextmanager
def fake_bot_api(token: str) -> Iterator[FakeBotAPI]:
    """A FakeBotAPI on 127.0.0.1 with its own event loop, while the bench drives wrk."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake Bot API", daemon=True)
    thread.start()
    fake = asyncio.run_coroutine_threadsafe(FakeBotAPI(token=token).start(), loop).result()
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
