"""What the gateway asks the database, by shape: nothing the embedded server answers
by walking a whole collection. It walks the hinted index whole for a ``find`` with a
``hint`` (80 ms at 6,000 messages), and the collection for ``findAndModify`` (400 ms
at 50,000), so neither appears on the paths that run per message. (A sign-in's failure count,
one small document a user, may.)"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from storage.database import Storage
from storage.models import conversation_id
from testkit.fakes.twilio import ACCOUNT_SID
from testkit.helpers import CommandCounter
from tests.channels.conftest import MOCK, Gateway
from tests.channels.test_whatsapp import PATH, inbound, signed, whatsapp


@pytest.fixture
def storage(counted_storage: Storage) -> Storage:
    return counted_storage  # the gateway's storage, every command it sends counted


async def test_a_conversation_and_its_replies_news_hint_nothing_and_find_and_modify_nothing(
    gateway, twilio_api, commands: CommandCounter
) -> None:
    gw: Gateway = await gateway(whatsapp(twilio_api), MOCK)
    form = inbound()
    assert (await gw.post(PATH, urlencode(form), signed(form)))[0] == 200
    [received] = await gw.messages()
    sent = await gw.send(received["contact_id"], "hi")
    sid = (await gw.final(sent["id"]))["external_id"]
    news = {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
    path = f"{PATH}status/?message_id={sent['id']}"
    assert (await gw.post(path, urlencode(news), signed(news, path)))[0] == 200
    assert (await gw.stored(sent["id"])).status.value == "delivered"
    conversation = conversation_id(received["contact_id"])
    for change in ({"status": "resolved"}, {"assignee_id": None}):
        answer = await gw.agent.fetch(
            "PATCH", f"/api/v1/conversations/{conversation}/", json_body=change
        )
        assert answer[0] == 200, answer
    assert (await gw.agent.fetch("POST", f"/api/v1/conversations/{conversation}/read/"))[0] == 200
    assert ("update", "messages") in commands.commands  # it counted what happened
    assert commands.hinted == []
    per_message = {"messages", "conversations", "contacts", "events", "agents"}
    assert [c for c in commands.commands if c[0] == "findAndModify" and c[1] in per_message] == []
