"""An agent works the inbox in Chromium: every step goes through the page, and what the
page shows is checked against what the gateway stored."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from testkit.fakes.telegram import TOKEN
from testkit.helpers import wait_until
from testkit.processes import call
from tests.inbox.conftest import PASSWORD, Served, Watched, needs_chromium, open_page, sign_in

pytestmark = needs_chromium


def row(page: Any, name: str) -> Any:
    return page.locator("#conversations li", has_text=name)


def bubble(page: Any, text: str) -> Any:
    return page.locator("#messages li.message", has_text=text)


def talk(tab: Watched, served: Served, contact: str, text: str, name: str, **how: str) -> Any:
    """Signed in as ana, with the thread of a contact who just wrote ``text`` open."""
    page = tab.page
    sign_in(page, served.base)
    served.inbound(contact, text, name=name, **how)
    row(page, name).get_by_role("button").click()
    expect(bubble(page, text)).to_be_visible()
    return page


def stored_tokens(page: Any) -> dict[str, str]:
    return dict(json.loads(page.evaluate("sessionStorage.getItem('bot-gateway.tokens')")))


def outbound(served: Served, contact_name: str) -> list[dict[str, Any]]:
    """What the gateway stored as sent to the contact, oldest first."""
    page = served.api("ana", "GET", "/api/v1/messages/?direction=out&page_size=100")
    mine = [m for m in page["results"] if m["contact"]["name"] == contact_name]
    return list(reversed(mine))


def test_the_page_is_served_with_a_strict_policy(served: Served) -> None:
    with urllib.request.urlopen(served.base + "/inbox/") as response:  # noqa: S310 - local
        headers = response.headers
        html = response.read().decode()
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert '<script type="module" src="app.js">' in html
    assets = Path(__file__).parents[2] / "handlers" / "static" / "inbox"
    assert sum(f.stat().st_size for f in assets.iterdir()) < 150_000  # loads at once
    with urllib.request.urlopen(served.base + "/inbox/app.js") as response:  # noqa: S310
        assert response.headers["Content-Type"].startswith("text/javascript")


def test_an_agent_signs_in_sees_a_message_arrive_live_and_replies(
    served: Served, tab: Watched
) -> None:
    page = tab.page
    sign_in(page, served.base)
    served.inbound("live-1", "Hello, is my order on its way?", name="Marta Live")
    expect(row(page, "Marta Live")).to_be_visible()
    row(page, "Marta Live").get_by_role("button").click()
    expect(bubble(page, "is my order on its way")).to_be_visible()
    loads = page.evaluate("performance.getEntriesByType('navigation').length")

    # The open thread and the list take the next message from the event stream.
    sent_at = time.monotonic()
    served.inbound("live-1", "It was due yesterday", name="Marta Live")
    expect(bubble(page, "due yesterday")).to_be_visible()
    expect(row(page, "Marta Live")).to_contain_text("due yesterday")
    print(f"inbound to the open thread: {time.monotonic() - sent_at:.3f} s")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == loads

    box = page.get_by_label("Reply")
    box.fill("It left the warehouse today.")
    expect(page.locator("#reply-left")).to_have_text(f"{4096 - 28} characters left")
    box.press("Enter")
    expect(box).to_have_value("")
    mine = bubble(page, "left the warehouse")
    expect(mine.locator(".status")).to_have_attribute("data-status", "sent")
    assert [m["content"] for m in outbound(served, "Marta Live")] == [
        "It left the warehouse today."
    ]
    # Opened, so read: no badge, and the gateway agrees.
    expect(row(page, "Marta Live").locator(".badge")).to_have_count(0)
    conversation = served.api("ana", "GET", "/api/v1/conversations/?assignee=me&q=marta")
    assert conversation["results"][0]["unread"] == 0


def test_a_failed_send_shows_the_reason(served: Served, tab: Watched) -> None:
    page = talk(tab, served, "broken-1", "Anyone?", "Fabio Failed", channel="broken")
    page.get_by_label("Reply").fill("This one will not go.")
    page.get_by_label("Reply").press("Enter")
    status = bubble(page, "will not go").locator(".status")
    expect(status).to_have_attribute("data-status", "failed")
    expect(status).to_have_attribute("title", "mock channel: configured to fail this send")


def test_a_double_click_on_send_sends_once(served: Served, tab: Watched) -> None:
    page = talk(tab, served, "double-1", "Can you call me?", "Dora Double")
    page.get_by_label("Reply").fill("Calling you in five minutes.")
    page.get_by_role("button", name="Send", exact=True).dblclick()
    expect(bubble(page, "Calling you").locator(".status")).to_have_attribute("data-status", "sent")
    expect(bubble(page, "Calling you")).to_have_count(1)
    assert len(outbound(served, "Dora Double")) == 1


def test_a_retry_after_a_network_error_reuses_the_idempotency_key(
    served: Served, tab: Watched
) -> None:
    page = talk(tab, served, "retry-1", "Still there?", "Rita Retry")
    keys: list[str] = []

    def lose_the_answer(route: Any) -> None:
        keys.append(route.request.headers["idempotency-key"])
        route.fetch()  # the gateway takes the message; its answer never arrives
        route.abort()

    page.route("**/api/v1/messages/", lose_the_answer, times=1)
    page.get_by_label("Reply").fill("Yes, one moment.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#reply-error")).to_contain_text("cannot be reached")
    expect(page.get_by_label("Reply")).to_have_value("Yes, one moment.")
    with page.expect_response(lambda r: r.url.endswith("/api/v1/messages/")) as answer:
        page.get_by_role("button", name="Send", exact=True).click()
    assert answer.value.request.headers["idempotency-key"] == keys[0]
    assert answer.value.headers.get("idempotent-replayed") == "true"
    expect(bubble(page, "one moment")).to_have_count(1)
    assert len(outbound(served, "Rita Retry")) == 1
    tab.errors[:] = [e for e in tab.errors if "ERR_FAILED" not in e]  # the lost answer


def test_contact_supplied_markup_renders_as_text(served: Served, tab: Watched) -> None:
    page = tab.page
    sign_in(page, served.base)
    name = "<img src=x onerror=alert(1)>"
    text = "<script>alert(2)</script><b>bold?</b>"
    served.inbound("xss-1", text, name=name)
    expect(row(page, name)).to_be_visible()
    expect(row(page, name).locator(".row-name")).to_have_text(name)
    row(page, name).get_by_role("button").click()
    expect(page.locator("#thread-name")).to_have_text(name)
    expect(bubble(page, "bold?").locator(".text")).to_have_text(text)
    assert page.locator("#app img, #app script, #app b").count() == 0
    assert tab.dialogs == []


def test_a_transferred_conversation_leaves_mine(served: Served, tab: Watched) -> None:
    page = talk(tab, served, "transfer-1", "I need billing", "Tomas Transfer")
    page.get_by_label("Transfer to").select_option(label="bruno")
    page.get_by_role("button", name="Transfer", exact=True).click()
    expect(row(page, "Tomas Transfer")).to_have_count(0)  # Mine is the open tab
    listed = served.api("bruno", "GET", "/api/v1/conversations/?assignee=me&q=tomas")
    assert [c["contact"]["name"] for c in listed["results"]] == ["Tomas Transfer"]
    page.get_by_role("tab", name="All").click()
    expect(row(page, "Tomas Transfer")).to_be_visible()


def test_resolving_moves_a_conversation_to_resolved(served: Served, tab: Watched) -> None:
    page = talk(tab, served, "resolve-1", "Thanks, all good", "Rosa Resolve")
    page.get_by_role("button", name="Resolve", exact=True).click()
    expect(row(page, "Rosa Resolve")).to_have_count(0)
    page.get_by_role("tab", name="Resolved").click()
    expect(row(page, "Rosa Resolve")).to_be_visible()
    page.get_by_role("button", name="Reopen", exact=True).click()
    expect(row(page, "Rosa Resolve")).to_have_count(0)


def test_a_bots_conversation_shows_under_bot_with_its_replies_and_hand_off(
    served: Served, tab: Watched
) -> None:
    scopes = ["read", "send", "conversations"]
    bot = served.api("ana", "POST", "/api/v1/tokens/", {"name": "Helper", "role": "bot",
                                                        "scopes": scopes})  # fmt: skip
    channels = served.api("ana", "GET", "/api/v1/channels/?page_size=100")["results"]
    botline = next(c for c in channels if c["name"] == "botline")
    served.api("ana", "PATCH", f"/api/v1/channels/{botline['id']}/", {"bot_id": bot["id"]})
    page = tab.page
    sign_in(page, served.base)
    served.inbound("bot-1", "Do you ship abroad?", name="Bea Bot", channel="botline")
    page.get_by_role("tab", name="Bot").click()
    row(page, "Bea Bot").get_by_role("button").click()
    expect(page.locator("#thread-channel")).to_contain_text("the bot answers")
    held = served.api("ana", "GET", "/api/v1/conversations/?status=bot&q=bea")["results"]
    [conversation] = held
    reply = {"contact_id": conversation["contact"]["id"], "content": "We ship to 40 countries."}
    assert call(served.base, "POST", "/api/v1/messages/", reply, token=bot["token"])[0] == 201
    expect(bubble(page, "We ship to 40 countries.")).to_contain_text("Bot")
    handoff = f"/api/v1/conversations/{conversation['id']}/handoff/"
    reason = {"reason": "asks about customs fees"}
    assert call(served.base, "POST", handoff, reason, token=bot["token"])[0] == 200
    expect(page.locator("#thread-channel")).to_contain_text("from the bot: asks about customs")
    expect(row(page, "Bea Bot")).to_have_count(0)  # no longer the bot's
    page.get_by_role("tab", name="Mine").click()  # bruno is away: it is ana's
    expect(row(page, "Bea Bot")).to_be_visible()


def test_an_admin_sees_agents_tokens_and_subscriptions_with_their_health(
    served: Served, tab: Watched
) -> None:
    served.api("ana", "POST", "/api/v1/tokens/", {"name": "Reporting", "role": "integration",
                                                 "scopes": ["read"]})  # fmt: skip
    hook = {"url": "https://crm.example.com/hooks/<b>gateway</b>", "events": ["message.created"]}
    made = served.api("ana", "POST", "/api/v1/subscriptions/", hook)
    served.api("ana", "PATCH", f"/api/v1/subscriptions/{made['id']}/", {"paused": True})
    page = tab.page
    sign_in(page, served.base)
    page.get_by_role("button", name="Admin").click()
    dialog = page.get_by_role("dialog", name="Administration")
    expect(dialog).to_be_visible()
    agents = dialog.locator("#admin-agents")
    expect(agents.locator("tr", has_text="bruno")).to_contain_text("Away")
    expect(agents.locator("tr", has_text="ana")).to_contain_text("admin")
    expect(dialog.locator("#admin-tokens tr", has_text="Reporting")).to_contain_text("read")
    row = dialog.locator("#admin-subscriptions tr", has_text="crm.example.com")
    expect(row).to_contain_text("<b>gateway</b>")  # markup in a URL stays text
    expect(row).to_contain_text("Paused")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


def test_a_sign_in_ended_elsewhere_shows_the_form_by_itself_and_keeps_the_reply(
    served: Served, tab: Watched
) -> None:
    page = talk(tab, served, "expiry-1", "Hello?", "Eva Expiry")
    page.get_by_label("Reply").fill("Half a thought")
    tokens = stored_tokens(page)
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    reset = served.gateway.run("reset-password", "--username", "ana", "--password-stdin",
                               input=PASSWORD + "\n")  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    # The gateway sees it within events.recheck_seconds (2 s) and tells the page, which
    # shows the form by itself, with no offline banner left over it.
    expect(page.locator("#signin")).to_be_visible(timeout=10_000)
    expect(page.locator("#banner")).to_be_hidden()
    assert call(served.base, "GET", "/api/v1/agents/me/", token=tokens["access"])[0] == 401
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#app")).to_be_visible()
    expect(page.get_by_label("Reply")).to_have_value("Half a thought")
    tab.errors[:] = [e for e in tab.errors if "401" not in e]  # the refused calls


def test_the_list_and_the_thread_say_who_did_what_in_each_texts_direction(
    served: Served, tab: Watched
) -> None:
    faq = {"question": "Do you ship abroad?", "answer": "Yes, to forty countries."}
    served.api("ana", "POST", "/api/v1/faqs/", faq)
    arabic = "مرحبا، طلبي لم يصل بعد"  # "Hello, my order has not arrived yet"
    page = talk(tab, served, "rtl-1", arabic, "سارة")
    preview = row(page, "سارة").locator(".row-preview bdi")
    expect(preview).to_have_text(arabic)  # whole: no first word lost
    right_to_left = "node => node.matches(':dir(rtl)')"  # dir=auto, read from the text
    assert preview.evaluate(right_to_left)
    assert bubble(page, arabic).locator(".text").evaluate(right_to_left)
    page.get_by_label("Reply").fill("We are looking into it.")
    page.get_by_label("Reply").press("Enter")
    expect(bubble(page, "looking into it").locator(".sender")).to_have_text("ana")
    expect(row(page, "سارة").locator(".row-preview")).to_have_text("You: We are looking into it.")

    served.inbound("faq-1", "Do you ship abroad?", name="Otto Overseas")
    expect(row(page, "Otto Overseas").locator(".row-preview")).to_have_text(
        "Auto-reply: Yes, to forty countries."
    )
    # Given to bruno: under All, the row says who holds it; Mine no longer lists it.
    [otto] = [c for c in served.api("ana", "GET", "/api/v1/conversations/")["results"]
              if c["contact"]["name"] == "Otto Overseas"]  # fmt: skip
    served.api("ana", "PATCH", f"/api/v1/conversations/{otto['id']}/",
               {"assignee_id": served.agents["bruno"]})  # fmt: skip
    expect(row(page, "Otto Overseas")).to_have_count(0)
    page.get_by_role("tab", name="All").click()
    expect(row(page, "Otto Overseas").locator(".row-holder")).to_have_text("bruno")
    expect(row(page, "سارة").locator(".row-holder")).to_have_count(0)  # mine: nothing to say
    assert tab.errors == []


def test_a_saved_reply_or_an_faq_answer_goes_in_the_box_with_slash(
    served: Served, tab: Watched
) -> None:
    served.api("ana", "POST", "/api/v1/replies/",
               {"shortcut": "refund", "text": "Hi {{contact.name}}, {{agent.name}} here: "
                                              "your refund is on its way."})  # fmt: skip
    returns = {"question": "How do returns work?", "answer": "Send it back within 30 days."}
    served.api("ana", "POST", "/api/v1/faqs/", returns)
    page = talk(tab, served, "slash-1", "Where is my money?", "Rui Refund")
    box = page.get_by_label("Reply")
    box.press_sequentially("/ref")
    picker = page.get_by_role("listbox", name="Saved replies and FAQ answers")
    expect(picker.get_by_role("option")).to_have_count(1)
    expect(picker.get_by_role("option").first).to_contain_text("/refund")
    box.press("Enter")  # chooses; sends nothing
    expect(box).to_have_value("Hi Rui Refund, ana here: your refund is on its way.")
    expect(picker).to_be_hidden()
    expect(page.locator("#messages li.message.outbound")).to_have_count(0)

    box.fill("")
    box.press_sequentially("/retu")  # a word of an FAQ's question
    expect(picker.get_by_role("option").first).to_contain_text("FAQ: How do returns work?")
    picker.get_by_role("option").first.click()
    expect(box).to_have_value("Send it back within 30 days.")
    box.press("Enter")  # now it sends
    expect(bubble(page, "within 30 days").locator(".status")).to_have_attribute(
        "data-status", "sent"
    )
    box.press_sequentially("/nothing-like-it")
    expect(picker).to_be_hidden()
    box.press("Escape")
    assert tab.errors == []


# The browser's Notification, recorded, with the permission given; and a tab that is
# hidden until the test says otherwise.
NOTIFICATIONS = """
window.__notifications = [];
window.__hidden = true;
window.Notification = class {
  constructor(title, options) { window.__notifications.push({ title, body: options.body }); }
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
};
Object.defineProperty(document, "visibilityState", {
  get: () => (window.__hidden ? "hidden" : "visible"),
});
"""


def test_the_tab_title_counts_what_i_have_not_read_and_a_notification_says_who_wrote(
    served: Served, tab: Watched
) -> None:
    page = tab.page
    page.add_init_script(NOTIFICATIONS)
    sign_in(page, served.base)
    page.get_by_label("Notify me").check()
    expect(page.get_by_label("Notify me")).to_be_checked()
    # What other tests left unread in ana's open conversations, as the gateway says it,
    # and the title once the page has read the same (not the title before it has).
    mine = served.api("ana", "GET", "/api/v1/conversations/?assignee=me&status=open&page_size=100")
    before = sum(c["unread"] for c in mine["results"])
    expect(page).to_have_title(
        f"({before}) Inbox · bot-gateway" if before else "Inbox · bot-gateway"
    )

    served.inbound("title-1", "Are you there?", name="Tina Title")
    expect(page).to_have_title(f"({before + 1}) Inbox · bot-gateway")
    served.inbound("title-1", "Hello??", name="Tina Title")
    expect(page).to_have_title(f"({before + 2}) Inbox · bot-gateway")
    told = page.evaluate("window.__notifications")
    assert told == [{"title": "Tina Title", "body": "Are you there?"},
                    {"title": "Tina Title", "body": "Hello??"}]  # fmt: skip

    page.evaluate("window.__hidden = false")  # back at the tab: opening it reads it
    row(page, "Tina Title").get_by_role("button").click()
    expect(page).to_have_title(
        f"({before}) Inbox · bot-gateway" if before else "Inbox · bot-gateway"
    )
    assert tab.errors == []


def test_labels_are_given_in_the_thread_and_narrow_the_list(served: Served, tab: Watched) -> None:
    page = talk(tab, served, "label-1", "My order is late", "Lara Label")
    served.inbound("label-2", "Just saying hi", name="Nico Nolabel")
    expect(row(page, "Nico Nolabel")).to_be_visible()
    labels = page.get_by_label("Labels")
    labels.fill("Late delivery, vip")
    labels.press("Enter")
    expect(row(page, "Lara Label").locator(".row-labels")).to_have_text("late delivery · vip")
    expect(labels).to_have_value("late delivery, vip")
    choose = page.get_by_label("Label", exact=True)
    expect(choose.locator("option", has_text="late delivery")).to_have_count(1)
    choose.select_option("late delivery")
    expect(row(page, "Lara Label")).to_be_visible()
    expect(row(page, "Nico Nolabel")).to_have_count(0)
    choose.select_option("")
    expect(row(page, "Nico Nolabel")).to_be_visible()
    assert tab.errors == []


def test_the_contact_panel_shows_who_it_is_and_keeps_attributes(
    served: Served, tab: Watched
) -> None:
    page = talk(tab, served, "panel-1", "Hello from Recife", "Paula Panel")
    page.get_by_role("button", name="Contact").click()
    panel = page.get_by_role("region", name="Contact details")
    expect(panel).to_be_visible()
    expect(panel.locator("dd").nth(1)).to_have_text("panel-1")  # the provider id
    page.get_by_label("Attribute", exact=True).fill("plan")
    page.get_by_label("Value").fill("gold")
    page.get_by_role("button", name="Set").click()
    expect(panel.locator(".attributes li")).to_have_text(["plangoldRemove"])
    page.get_by_role("button", name="Contact").click()  # closed, opened: read again
    page.get_by_role("button", name="Contact").click()
    expect(panel.locator(".attributes li")).to_have_count(1)
    [contact] = [c for c in served.api("ana", "GET", "/api/v1/contacts/")["results"]
                 if c["external_id"] == "panel-1"]  # fmt: skip
    assert contact["attributes"] == {"plan": "gold"}
    page.get_by_role("button", name="Remove plan").click()
    expect(panel.locator(".attributes li")).to_have_count(0)
    assert tab.errors == []


def test_a_private_note_stays_in_the_thread_and_tells_the_colleague_it_names(
    browser: Any, served: Served, tab: Watched
) -> None:
    context, bruno = open_page(browser)
    try:
        bruno.page.add_init_script(NOTIFICATIONS)
        sign_in(bruno.page, served.base, "bruno")
        bruno.page.get_by_label("Notify me").check()
        page = talk(tab, served, "note-1", "Can I change my address?", "Nora Note")
        sent_before = len(served.api("ana", "GET", "/api/v1/messages/?direction=out")["results"])
        page.get_by_label("Private note").check()
        box = page.get_by_label("Reply")
        box.fill("@bruno she moved last week, see the ticket")
        box.press("Enter")
        note = page.locator("#messages li.message.note")
        expect(note).to_contain_text("she moved last week")
        expect(note).to_contain_text("Private note")
        expect(note.locator(".sender")).to_have_text("ana")
        expect(box).to_have_value("")
        told_bruno = lambda: len(bruno.page.evaluate("window.__notifications")) == 1  # noqa: E731
        wait_until(told_bruno, 10, "bruno to be told")
        told = bruno.page.evaluate("window.__notifications")
        assert told == [{"title": "ana mentioned you",
                         "body": "@bruno she moved last week, see the ticket"}]  # fmt: skip
        # Nothing went to the contact; the conversation's unread and preview are as before.
        after = served.api("ana", "GET", "/api/v1/messages/?direction=out")["results"]
        assert len(after) == sent_before
        page.reload()
        row(page, "Nora Note").get_by_role("button").click()
        expect(page.locator("#messages li.message.note")).to_have_count(1)  # read back
        assert tab.errors == []
        assert bruno.errors == []
    finally:
        context.close()


def test_a_colleague_reading_a_conversation_leaves_my_unread_count_alone(
    browser: Any, served: Served, tab: Watched
) -> None:
    page = tab.page
    sign_in(page, served.base)
    served.inbound("unread-1", "First question", name="Ursula Unread")
    served.inbound("unread-1", "Second question", name="Ursula Unread")
    expect(row(page, "Ursula Unread").locator(".badge")).to_have_text("2")
    context, bruno = open_page(browser)
    try:
        sign_in(bruno.page, served.base, "bruno")
        bruno.page.get_by_role("tab", name="All").click()
        row(bruno.page, "Ursula Unread").get_by_role("button").click()  # bruno reads it
        expect(bubble(bruno.page, "Second question")).to_be_visible()
        expect(row(bruno.page, "Ursula Unread").locator(".badge")).to_have_count(0)

        def read_by_bruno() -> bool:
            found = served.api("ana", "GET", "/api/v1/conversations/?q=ursula")["results"]
            return served.agents["bruno"] in found[0]["read_by"]

        wait_until(read_by_bruno, 10, "bruno's reading to be stored")
        expect(row(page, "Ursula Unread").locator(".badge")).to_have_text("2")  # still mine
        page.reload()  # and as the gateway tells it afresh
        expect(row(page, "Ursula Unread").locator(".badge")).to_have_text("2")
        assert bruno.errors == []
    finally:
        context.close()
    assert tab.errors == []


def test_given_back_to_the_queue_it_waits_there_and_goes_to_someone_else(
    served: Served, tab: Watched
) -> None:
    page = talk(tab, served, "queue-1", "Anyone?", "Quentin Queue")
    page.get_by_label("Transfer to").select_option("queue")
    page.get_by_role("button", name="Transfer").click()
    expect(row(page, "Quentin Queue")).to_have_count(0)  # out of Mine
    page.get_by_role("tab", name="Unassigned").click()
    expect(row(page, "Quentin Queue")).to_be_visible()  # ana alone is available: it waits
    served.api("bruno", "PATCH", "/api/v1/agents/me/", {"is_available": True})
    try:
        expect(row(page, "Quentin Queue")).to_have_count(0, timeout=15_000)  # offered to bruno
        [taken] = [
            c for c in served.api("ana", "GET", "/api/v1/conversations/?q=quentin")["results"]
        ]
        assert taken["assignee_id"] == served.agents["bruno"]
    finally:
        served.api("bruno", "PATCH", "/api/v1/agents/me/", {"is_available": False})
    assert tab.errors == []


def test_pending_has_its_own_tab_and_an_empty_list_says_so_in_the_middle(
    served: Served, tab: Watched
) -> None:
    page = talk(tab, served, "pend-1", "I'll send the photo tomorrow", "Penny Pending")
    page.get_by_role("button", name="Pending", exact=True).click()
    expect(row(page, "Penny Pending")).to_have_count(0)  # no longer among Mine's open
    pending = page.get_by_role("tab", name="Pending")
    expect(pending).to_have_text(re.compile(r"^Pending \(\d+\)$"))  # its count
    counts = served.api("ana", "GET", "/api/v1/conversations/counts/")
    expect(pending).to_have_text(f"Pending ({counts['pending']})")
    assert counts["pending"] >= 1
    pending.click()
    expect(row(page, "Penny Pending")).to_be_visible()
    page.get_by_label("Label", exact=True).select_option("")
    page.get_by_role("tab", name="Bot").click()  # nobody's bot holds anything here
    empty = page.locator("#list-empty")
    expect(empty).to_be_visible()
    box = empty.bounding_box()
    pane = page.locator("#list-pane").bounding_box()
    assert box is not None
    assert pane is not None
    middle = box["y"] + box["height"] / 2
    assert pane["y"] + pane["height"] * 0.25 < middle < pane["y"] + pane["height"] * 0.75
    assert tab.errors == []


def test_keyboard_and_a_narrow_screen(browser: Any, served: Served) -> None:
    context, watched = open_page(browser, viewport={"width": 360, "height": 740})
    page = watched.page
    try:
        sign_in(page, served.base)
        served.inbound("narrow-1", "Small screen here", name="Nina Narrow")
        expect(row(page, "Nina Narrow")).to_be_visible()
        expect(page.locator("#thread-pane")).to_be_hidden()
        row(page, "Nina Narrow").get_by_role("button").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#list-pane")).to_be_hidden()
        expect(bubble(page, "Small screen here")).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360  # nothing sticks out sideways
        page.get_by_role("button", name="Back to the conversations").click()
        expect(page.locator("#list-pane")).to_be_visible()
        assert watched.errors == []
    finally:
        context.close()


def test_signing_out_ends_the_sign_in_on_the_server(served: Served, tab: Watched) -> None:
    page = tab.page
    sign_in(page, served.base)
    tokens = stored_tokens(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#signin")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
    status, _ = call(served.base, "POST", "/auth/token/refresh/", {"refresh": tokens["refresh"]})
    assert status == 401


def test_the_inbox_path_and_unknown_assets(served: Served) -> None:
    assert call_status(served.base + "/inbox") == 200  # redirected to /inbox/
    assert call_status(served.base + "/inbox/nothing.js") == 404
    assert call_status(served.base + "/inbox/../config.yaml") == 403  # outside the assets


def call_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as response:  # noqa: S310 - local URL
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_access_token_is_refreshed_before_it_expires(served: Served, tab: Watched) -> None:
    page = tab.page
    page.clock.install()  # the page's timers, fast-forwarded below; the gateway's run on
    sign_in(page, served.base)
    first = stored_tokens(page)
    page.clock.fast_forward("14:30")  # 15-minute tokens, rotated a minute before they end
    wait_until(lambda: stored_tokens(page)["access"] != first["access"], 10, "a silent refresh")
    status, me = call(served.base, "GET", "/api/v1/agents/me/", token=stored_tokens(page)["access"])
    assert (status, me["username"]) == (200, "ana")
    page.get_by_role("tab", name="All").click()
    expect(page.get_by_role("tab", name="All")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#signin")).to_be_hidden()


def test_an_agent_sets_themselves_away_and_back(served: Served, tab: Watched) -> None:
    page = tab.page
    sign_in(page, served.base)
    available = page.get_by_label("Available")
    expect(available).to_be_checked()
    try:
        available.uncheck()
        wait_until(
            lambda: not served.api("ana", "GET", "/api/v1/agents/me/")["is_available"],
            10,
            "ana to be away",
        )
    finally:
        served.api("ana", "PATCH", "/api/v1/agents/me/", {"is_available": True})


def test_a_long_thread_scrolls_up_through_its_pages(served: Served, tab: Watched) -> None:
    page = tab.page
    for n in range(1, 46):
        served.inbound("pages-1", f"line {n:02}", name="Paula Pages")
    sign_in(page, served.base)
    row(page, "Paula Pages").get_by_role("button").click()
    texts = page.locator("#messages li.message .text")
    expect(texts.last).to_have_text("line 45")  # the newest page, at the bottom
    expect(texts).to_have_count(30)
    page.locator("#messages").evaluate("box => box.scrollTo(0, 0)")
    expect(texts).to_have_count(45)
    assert texts.all_text_contents() == [f"line {n:02}" for n in range(1, 46)]


# WCAG's relative luminance and contrast ratio, for every element that shows text.
LOW_CONTRAST = """() => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map((v) => {
    v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const background = (node) => {
    for (; node; node = node.parentElement) {
      const c = rgb(getComputedStyle(node).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const node of document.querySelectorAll("body *")) {
    const own = [...node.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !node.checkVisibility() || node.closest("button:disabled")) continue;
    const [a, b] = [lum(rgb(getComputedStyle(node).color)), lum(background(node))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) low.push(`${node.tagName}.${node.className}: ${ratio.toFixed(2)}`);
  }
  return low;
}"""

UNNAMED_CONTROLS = """() => [...document.querySelectorAll("button, input, select, textarea")]
  .filter((c) => c.checkVisibility() && !(c.labels?.length || c.getAttribute("aria-label")
                                         || c.textContent.trim()))
  .map((c) => c.outerHTML)"""


def test_unread_badges_auto_replies_contrast_and_the_readme_picture(
    served: Served, tab: Watched, tmp_path: Path
) -> None:
    page = tab.page
    served.api("ana", "POST", "/api/v1/faqs/", {
        "question": "What are your opening hours?",
        "answer": "We are open 9:00-18:00, Monday to Saturday.",
    })  # fmt: skip
    sign_in(page, served.base)
    served.inbound("shot-1", "Hi! My package arrived damaged.", name="Caio Costa")
    served.inbound("shot-1", "The box was open and wet.", name="Caio Costa")
    served.inbound("shot-2", "What are your opening hours?", name="Lia Lopes")
    expect(row(page, "Caio Costa").locator(".badge")).to_have_text("2")
    expect(page.locator("#conversations li").first).to_contain_text("Lia Lopes")  # newest first
    page.locator("#conversations button.row").first.focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#conversations button.row").nth(1)).to_be_focused()
    row(page, "Lia Lopes").get_by_role("button").click()
    auto = page.locator("#messages li.message.auto")
    expect(auto).to_contain_text("We are open 9:00-18:00")
    expect(auto).to_contain_text("Auto-reply")
    page.get_by_label("Reply").fill("And on holidays we open at 10:00.")
    page.get_by_label("Reply").press("Enter")
    expect(bubble(page, "holidays").locator(".status")).to_have_attribute("data-status", "sent")
    page.get_by_label("Reply").fill("Anything else I can help with?")

    assert page.evaluate(LOW_CONTRAST) == []
    assert page.evaluate(UNNAMED_CONTROLS) == []
    shot = tmp_path / "inbox.png"
    page.screenshot(path=str(shot))
    if os.environ.get("INBOX_SCREENSHOT"):  # the README's: INBOX_SCREENSHOT=docs/inbox.png
        shutil.copy(shot, os.environ["INBOX_SCREENSHOT"])


# A 1x1 PNG: the browser decodes it, so its natural width shows it arrived whole.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2d8b6e40000000049454e44ae426082"
)
INVOICE = b"%PDF-1.7\n" + b"total 42\n" * 200 + b"%%EOF"


def test_a_contacts_photo_shows_inline_and_a_document_downloads(
    served: Served, tab: Watched
) -> None:
    page = tab.page
    sign_in(page, served.base)

    def writes(fake: Any) -> None:
        fake.files["PIX"] = (PIXEL, "application/octet-stream")
        fake.files["INV"] = (INVOICE, "application/octet-stream")
        photo = [{"file_id": "PIX", "file_unique_id": "uPIX", "width": 1, "height": 1}]
        fake.user_writes(7001, None, first_name="Pia Photo", photo=photo, caption="the box")
        document = {"file_id": "INV", "file_unique_id": "uINV", "file_name": "invoice.pdf",
                    "mime_type": "application/pdf", "file_size": len(INVOICE)}  # fmt: skip
        fake.user_writes(7001, None, first_name="Pia Photo", document=document)

    served.telegram.call(writes)
    row(page, "Pia Photo").get_by_role("button").click()
    image = page.locator("#messages img.inline-image")
    expect(image).to_have_attribute("alt", "the box")
    page.wait_for_function(
        "() => document.querySelector('#messages img.inline-image')?.naturalWidth === 1"
    )
    assert image.get_attribute("src").startswith("blob:")
    button = page.get_by_role("button", name="Download invoice.pdf (2 KB)")
    with page.expect_download() as download:
        button.click()
    assert download.value.suggested_filename == "invoice.pdf"
    assert Path(download.value.path()).read_bytes() == INVOICE
    assert TOKEN not in " ".join(tab.requests)  # the page asked the gateway, never Telegram


def test_an_agent_attaches_a_photo_and_it_reaches_the_contact(served: Served, tab: Watched) -> None:
    page = tab.page
    sign_in(page, served.base)
    served.telegram.call(
        lambda fake: fake.user_writes(7002, "can I see it?", first_name="Teo Tele")
    )
    row(page, "Teo Tele").get_by_role("button").click()
    expect(bubble(page, "can I see it?")).to_be_visible()

    page.set_input_files("#attach-file", files=[
        {"name": "box.png", "mimeType": "image/png", "buffer": PIXEL},
    ])  # fmt: skip
    expect(page.locator("#attached")).to_contain_text("box.png")
    page.fill("#reply-text", "here it is")
    page.click("#send")
    expect(page.locator("#attached")).to_be_hidden()  # sent: the next reply starts empty
    image = bubble(page, "here it is").locator("img.inline-image")
    expect(image).to_have_attribute("alt", "here it is")  # the upload, shown from the gateway
    page.wait_for_function(
        "() => [...document.querySelectorAll('#messages img.inline-image')]"
        ".some((img) => img.alt === 'here it is' && img.naturalWidth === 1)"
    )

    def photo_sent() -> bool:
        sent = served.telegram.call(lambda fake: list(fake.files_sent))
        return any(f.chat_id == 7002 for f in sent)

    wait_until(photo_sent, 15, "the photo to reach the fake Bot API")
    [sent] = [
        f for f in served.telegram.call(lambda fake: list(fake.files_sent)) if f.chat_id == 7002
    ]
    assert (sent.method, sent.caption, sent.data) == ("sendPhoto", "here it is", PIXEL)
    [message] = outbound(served, "Teo Tele")
    assert message["media"][0]["file_name"] == "box.png"


def test_a_channel_without_files_offers_no_attach_and_a_file_can_be_removed(
    served: Served, tab: Watched
) -> None:
    page = talk(tab, served, "9100", "send a file?", "Mo Mock")
    attach = page.get_by_role("button", name="Attach")
    expect(attach).to_be_disabled()  # the mock channel sends no files (its files: null)
    expect(attach).to_have_attribute("title", "This channel sends no files")
    served.telegram.call(lambda fake: fake.user_writes(7003, "and me?", first_name="Tia Tele"))
    row(page, "Tia Tele").get_by_role("button").click()
    expect(attach).to_be_enabled()
    page.set_input_files("#attach-file", files=[
        {"name": "box.png", "mimeType": "image/png", "buffer": PIXEL},
    ])  # fmt: skip
    expect(page.locator("#attached")).to_contain_text("box.png")
    page.get_by_role("button", name="Remove the attached file").click()
    expect(page.locator("#attached")).to_be_hidden()
    expect(page.locator("#send")).to_be_disabled()  # nothing to send
    assert outbound(served, "Tia Tele") == []
