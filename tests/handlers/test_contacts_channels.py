"""Contacts and channels: lists, filters, and no secret ever in an answer."""

from __future__ import annotations

from storage.database import Storage
from testkit.helpers import Client, seen


async def test_contacts_list_filters_and_read(api: Client, storage: Storage) -> None:
    telegram = await storage.channels.upsert("tg", "telegram", "polling", {})
    whatsapp = await storage.channels.upsert("wa", "whatsapp", "webhook", {})
    ze = await seen(storage, telegram.id, "1", name="José Silva", username="ze")
    await seen(storage, telegram.id, "2", name="Maria", username="mari")
    await seen(storage, whatsapp.id, "+5511999", name="Carla", username="")

    status, page = await api.fetch("GET", "/api/v1/contacts/")
    assert status == 200
    assert [c["name"] for c in page["results"]] == ["Carla", "Maria", "José Silva"]
    assert page["next"] is None

    async def names(query: str) -> list[str]:
        status, page = await api.fetch("GET", f"/api/v1/contacts/?{query}")
        assert status == 200, page
        return [c["name"] for c in page["results"]]

    assert await names(f"channel_id={telegram.id}") == ["Maria", "José Silva"]
    assert await names("q=silva") == ["José Silva"]
    assert await names("q=MAR") == ["Maria"]  # name or username, any case
    assert await names("q=.*") == []  # the query is text, not a pattern
    assert await names("page_size=2") == ["Carla", "Maria"]

    status, contact = await api.fetch("GET", f"/api/v1/contacts/{ze.id}/")
    assert status == 200
    assert (contact["external_id"], contact["username"], contact["channel_id"]) == (
        "1",
        "ze",
        telegram.id,
    )
    assert (await api.fetch("GET", "/api/v1/contacts/nope/"))[0] == 404


async def test_a_contacts_attributes_are_set_a_few_at_a_time_and_kept(
    api: Client, storage: Storage
) -> None:
    channel = await storage.channels.upsert("tg", "telegram", "polling", {})
    ze = await seen(storage, channel.id, "1", name="José Silva", username="ze")
    path = f"/api/v1/contacts/{ze.id}/"
    assert (await api.fetch("GET", path))[1]["attributes"] == {}
    set_two = {"attributes": {"plan": "gold", "order": "A-1042"}}
    status, contact = await api.fetch("PATCH", path, json_body=set_two)
    assert (status, contact["attributes"]) == (200, {"plan": "gold", "order": "A-1042"})
    status, contact = await api.fetch(
        "PATCH", path, json_body={"attributes": {"order": None, "city": "Recife"}}
    )
    assert (status, contact["attributes"]) == (200, {"plan": "gold", "city": "Recife"})
    await seen(storage, channel.id, "1", name="José S.", username="ze")  # writes again
    status, contact = await api.fetch("GET", path)
    assert (contact["name"], contact["attributes"]) == (
        "José S.",
        {"plan": "gold", "city": "Recife"},
    )

    many = {"attributes": {f"k{n}": "v" for n in range(19)}}
    refused = {
        "too many": (many, "a contact keeps at most 20"),
        "a bad name": ({"attributes": {"Plan": "x"}}, "an attribute's name: 1 to 32"),
        "too long": ({"attributes": {"note": "x" * 201}}, "attributes"),
        "nothing": ({"attributes": {}}, "name at least one attribute"),
        "not an object": ({"attributes": ["plan"]}, "attributes"),
    }
    for label, (body, says) in refused.items():
        status, error = await api.fetch("PATCH", path, json_body=body)
        assert (status, says in error["error"]["message"]) == (400, True), (label, error)
    assert (await api.fetch("GET", path))[1]["attributes"] == {"plan": "gold", "city": "Recife"}
    status, _ = await api.fetch("PATCH", "/api/v1/contacts/nope/", json_body=set_two)
    assert status == 404


async def test_channels_show_their_webhook_path_and_never_a_secret(
    api: Client, storage: Storage
) -> None:
    secrets = {"token": "123456:SECRET-BOT-TOKEN", "webhook_secret": "s3cr3t-hook"}
    polling = await storage.channels.upsert("support", "telegram", "polling", secrets)
    hooked = await storage.channels.upsert("sales", "whatsapp", "webhook", secrets)

    status, page = await api.fetch("GET", "/api/v1/channels/")
    assert status == 200
    by_name = {c["name"]: c for c in page["results"]}
    shown = {"id", "name", "type", "mode", "webhook_path", "max_text_length", "files", "bot_id",
             "created_at"}  # fmt: skip
    assert set(by_name["sales"]) == shown
    # What it sends as files: Twilio's limits and types (none for a channel without).
    files = by_name["sales"]["files"]
    assert files["max_bytes"]["image"] == 5 * 1024 * 1024
    assert "application/pdf" in files["types"]
    assert by_name["support"]["files"]["types"] is None  # Telegram: any type
    assert by_name["sales"]["webhook_path"] == "/webhooks/whatsapp/sales/"
    # What a reply box counts down from: Twilio's Body limit, Telegram's text limit.
    assert (by_name["sales"]["max_text_length"], by_name["support"]["max_text_length"]) == (
        1600,
        4096,
    )
    assert by_name["support"]["webhook_path"] is None
    status, one = await api.fetch("GET", f"/api/v1/channels/{polling.id}/")
    assert (status, one["mode"]) == (200, "polling")
    for body in (page, one, (await api.fetch("GET", f"/api/v1/channels/{hooked.id}/"))[1]):
        assert "SECRET" not in str(body)
        assert "s3cr3t" not in str(body)
    assert (await api.fetch("GET", "/api/v1/channels/nope/"))[0] == 404
