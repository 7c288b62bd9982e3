"""Property: no JSON body, form or webhook, however odd, gets a 5xx from `bot-gateway serve`.

Hypothesis writes arbitrary JSON (lone surrogates, NaN, huge integers, deep
nesting, wrong types) and arbitrary form data, both as free values and shaped
like each route's own fields, so it reaches the schemas and parsers behind the
first checks. Webhooks carry their real secrets and signatures.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, sign
from testkit.helpers import free_port, wait_until
from testkit.processes import STARTUP_SECONDS, http_status, launch, stop

PUBLIC_URL = "https://gw.example.com"
MOCK_SECRET = "properties-mock-secret"
TELEGRAM_SECRET = "properties-telegram-secret"
EXAMPLES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Running:
    base: str
    tokens: dict[str, str]
    ids: dict[str, str]

    def call(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(  # noqa: S310 - a local URL
            self.base + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code


def _post_json(base: str, path: str, body: dict, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310
        base + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{path}: {exc.code} {exc.read()[:300]!r}") from None


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    workdir = tmp_path_factory.mktemp("properties")
    port = free_port()
    dead = f"http://127.0.0.1:{free_port()}"  # sends fail and are retried: not our concern
    config = {
        "data_dir": str(workdir / "data"),
        "server": {"port": port, "public_url": PUBLIC_URL},
        "auth": {"jwt_secret": "properties-secret-" + "p" * 32, "max_failed_logins": 10_000},
        "channels": [
            {"name": "mock", "type": "mock", "secret": MOCK_SECRET},
            {"name": "tg", "type": "telegram", "token": "123456:" + "T" * 35,
             "mode": "webhook", "webhook_secret": TELEGRAM_SECRET, "api_base": dead},
            {"name": "wa", "type": "whatsapp", "account_sid": ACCOUNT_SID,
             "auth_token": AUTH_TOKEN, "from_number": FROM, "api_base": dead},
        ],
    }  # fmt: skip
    (workdir / "config.yaml").write_text(json.dumps(config))
    process = launch("serve", "--config", str(workdir / "config.yaml"), log=workdir / "gateway.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_status(base + "/healthz") == 200, STARTUP_SECONDS, "/healthz")
        tokens, ids = {}, {}
        for name in ("ana", "bob"):
            ids[name] = _post_json(
                base, "/api/v1/agents/", {"username": name, "password": "correct horse"},
                tokens.get("ana", ""),
            )["id"]  # fmt: skip
            pair = _post_json(base, "/auth/token/", {"username": name, "password": "correct horse"})
            tokens[name] = pair["access"]
        faq = {"question": "Horário?", "answer": "9h-18h"}
        ids["faq"] = _post_json(base, "/api/v1/faqs/", faq, tokens["ana"])["id"]
        yield Running(base, tokens, ids)
    finally:
        stop(process, 30)
    text = (workdir / "gateway.log").read_text()
    assert "Traceback" not in text
    assert " ERROR " not in text


# Every code point, lone surrogates included (json.dumps writes them as \ud800).
TEXT = st.text(st.characters(codec=None, categories=None), max_size=30)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | TEXT
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=16,
)  # fmt: skip


def shaped(*fields: str) -> st.SearchStrategy[Any]:
    """Objects with some of the route's own fields, holding anything."""
    return st.fixed_dictionaries({}, optional={name: VALUES for name in fields})


def bodies(*fields: str) -> st.SearchStrategy[bytes]:
    free = VALUES | shaped(*fields)
    deep = st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n)
    return st.one_of(free.map(lambda v: json.dumps(v).encode()), deep.map(str.encode))


JSON_ROUTES = [
    ("POST", "/auth/token/", "", bodies("username", "password")),
    ("POST", "/auth/token/refresh/", "", bodies("refresh")),
    ("POST", "/api/v1/agents/", "ana", bodies("username", "password", "display_name")),
    ("PATCH", "/api/v1/agents/{bob}/", "bob", bodies("display_name", "is_available")),
    ("POST", "/api/v1/messages/", "ana", bodies("contact_id", "content")),
    ("POST", "/api/v1/faqs/", "ana", bodies("question", "alternatives", "answer", "enabled")),
    ("PATCH", "/api/v1/faqs/{faq}/", "ana", bodies("question", "alternatives", "answer")),
    ("POST", "/auth/logout/", "", bodies("refresh")),
]


@pytest.mark.parametrize(
    ("method", "path", "agent", "strategy"),
    JSON_ROUTES,
    ids=[f"{m} {p}" for m, p, *_ in JSON_ROUTES],
)
def test_no_json_body_gets_a_5xx(gateway: Running, method, path, agent, strategy) -> None:
    headers = {"Content-Type": "application/json"}
    if agent:
        headers["Authorization"] = f"Bearer {gateway.tokens[agent]}"
    target = path.format(**gateway.ids)

    @EXAMPLES
    @given(body=strategy)
    def check(body: bytes) -> None:
        assert gateway.call(method, target, body, headers) < 500

    check()


MESSAGE_FIELDS = ("message_id", "date", "chat", "from", "text", "caption", "photo", "sticker",
                  "voice", "location", "contact", "video", "document", "poll")  # fmt: skip
UPDATES = st.one_of(
    VALUES,
    st.fixed_dictionaries(
        {"update_id": st.integers(min_value=-(2**40), max_value=2**40) | VALUES},
        optional={
            "message": shaped(*MESSAGE_FIELDS)
            | st.fixed_dictionaries(
                {"message_id": st.integers(), "chat": st.fixed_dictionaries({"id": st.integers()})},
                optional={name: VALUES for name in MESSAGE_FIELDS[3:]},
            ),
            "edited_message": shaped(*MESSAGE_FIELDS),
        },
    ),
)


@EXAMPLES
@given(body=st.one_of(UPDATES.map(lambda v: json.dumps(v).encode()), st.binary(max_size=200)))
def test_no_telegram_update_gets_a_5xx(gateway: Running, body: bytes) -> None:
    headers = {
        "Content-Type": "application/json",
        "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
    }
    assert gateway.call("POST", "/webhooks/telegram/tg/", body, headers) < 500


@EXAMPLES
@given(body=bodies("contact_id", "message", "name", "username", "message_id"))
def test_no_mock_webhook_gets_a_5xx(gateway: Running, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "X-Mock-Secret": MOCK_SECRET}
    assert gateway.call("POST", "/webhooks/mock/mock/", body, headers) < 500


TWILIO_FIELDS = ["MessageSid", "AccountSid", "From", "To", "Body", "ProfileName", "NumMedia",
                 "MediaUrl0", "MediaContentType0", "Latitude", "Longitude", "MessageStatus",
                 "ErrorCode", "ErrorMessage"]  # fmt: skip
# Form values as Twilio would send them: any text that has a UTF-8 form.
FORM_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
FORMS = st.dictionaries(st.sampled_from(TWILIO_FIELDS) | FORM_TEXT, FORM_TEXT, max_size=10)


@EXAMPLES
@given(form=FORMS, suffix=st.sampled_from(["", "status/?message_id=m1"]))
def test_no_signed_twilio_form_gets_a_5xx(gateway: Running, form: dict, suffix: str) -> None:
    path = "/webhooks/whatsapp/wa/" + suffix
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": sign(PUBLIC_URL + path, form),
    }
    assert gateway.call("POST", path, urlencode(form).encode(), headers) < 500


@EXAMPLES
@given(raw=st.binary(max_size=300))
def test_no_raw_form_body_gets_a_5xx(gateway: Running, raw: bytes) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}
    assert gateway.call("POST", "/webhooks/whatsapp/wa/", raw, headers) < 500
