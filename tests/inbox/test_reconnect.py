"""The inbox across a gateway restart and a dropped network: it reconnects with the
last event it saw and shows what it missed, once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from testkit.processes import stop
from tests.inbox.conftest import needs_chromium, open_page, serve, sign_in

pytestmark = needs_chromium


def test_a_restart_and_a_dropped_network_miss_nothing_and_repeat_nothing(
    browser: Any, tmp_path: Path
) -> None:
    served = serve(tmp_path)
    context, watched = open_page(browser)
    page = watched.page
    try:
        sign_in(page, served.base)
        served.inbound("restart-1", "Before the restart", name="Rui Restart")
        page.locator("#conversations li", has_text="Rui Restart").get_by_role("button").click()
        messages = page.locator("#messages li.message")
        expect(messages).to_have_count(1)

        assert served.gateway.process is not None
        assert stop(served.gateway.process) == 0
        expect(page.get_by_role("status").filter(has_text="Offline")).to_be_visible()
        context.set_offline(True)  # the page's network drops too, while the gateway is back
        served.gateway.start()
        served.inbound("restart-1", "While you were away", name="Rui Restart")
        context.set_offline(False)

        expect(page.locator("#banner")).to_be_hidden()
        expect(messages.filter(has_text="While you were away")).to_have_count(1)
        resumed = [url for url in watched.requests if "last_event_id=" in url]
        assert resumed, "the stream reconnected without the last event it saw"
        served.inbound("restart-1", "And after", name="Rui Restart")
        expect(messages.filter(has_text="And after")).to_have_count(1)
        expect(messages).to_have_count(3)  # nothing shown twice
        texts = messages.locator(".text").all_text_contents()
        assert texts == ["Before the restart", "While you were away", "And after"]
        # Failed connections while it was down are the only errors.
        assert [e for e in watched.errors if "net::ERR_" not in e] == []
        assert watched.foreign(served.base) == []
    finally:
        context.close()
        served.close()
