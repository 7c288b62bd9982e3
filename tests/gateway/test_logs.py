"""Logs: secrets scrubbed from every line, whatever logged them."""

from __future__ import annotations

import json
import logging
import signal
import urllib.request

from gateway.logs import MASK, Scrubber
from testkit.helpers import free_port, wait_until
from testkit.processes import Gateway, http_status

TOKEN = "987654321:AAH-secret-bot-token-for-log-tests-x"


def test_scrubber_masks_known_secrets_and_anything_shaped_like_a_bot_token() -> None:
    scrub = Scrubber()
    scrub.add("twilio-auth-token-1234", "short")
    scrub.add_uri_password("mongodb://gw:db-password-9876@mongo:27017/")
    line = (
        "GET https://api.telegram.org/bot123456789:AAFf-abcdefghijklmnopqrstuvwxyz012345/getMe "
        "auth=twilio-auth-token-1234 uri=mongodb://gw:db-password-9876@mongo short"
    )
    assert scrub(line) == (
        f"GET https://api.telegram.org/bot{MASK}/getMe auth={MASK} "
        f"uri=mongodb://gw:{MASK}@mongo short"
    )


def test_no_token_in_any_log_line_of_a_run(gateway: Gateway) -> None:
    config = {
        "data_dir": str(gateway.workdir / "data"),
        "server": {"port": gateway.port},
        "log": {"level": "DEBUG", "format": "json"},
        "channels": [
            {
                "name": "tg",
                "type": "telegram",
                "token": TOKEN,
                "mode": "polling",
                # Nothing listens there: getUpdates fails and is logged, again and again.
                "api_base": f"http://127.0.0.1:{free_port()}",
            }
        ],
    }
    gateway.config.write_text(json.dumps(config))
    process = gateway.start()
    # A client that puts the token in webhook URLs, as some gateways ask for.
    assert http_status(gateway.url(f"/webhooks/telegram/{TOKEN}/")) == 404  # no such channel
    assert http_status(gateway.url(f"/bot{TOKEN}/getUpdates")) == 404
    wait_until(lambda: "getUpdates failed" in gateway.log(), 20, "a logged poll failure")
    # A caller's request id is kept and echoed; one that could forge a log line is not.
    echoed = [_request_id_answered(gateway.url("/healthz"), given) for given in ("probe-42", "a b")]
    assert echoed[0] == "probe-42"
    assert len(echoed[1]) == 32
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    lines = gateway.log().splitlines()
    assert lines
    assert all(TOKEN not in line for line in lines)
    assert any(MASK in line for line in lines)
    # JSON logs: every line is one object.
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    assert all(isinstance(entry, dict) for entry in entries)
    [probe] = [e for e in entries if e.get("request_id") == "probe-42"]
    assert {k: probe[k] for k in ("method", "route", "status")} == {
        "method": "GET",
        "route": "/healthz",
        "status": 200,
    }
    assert isinstance(probe["duration_ms"], float)
    # A 404's path is never a label: the webhook's is its template, any other "unmatched".
    routes = {e["route"] for e in entries if e.get("status") == 404}
    assert routes == {"/webhooks/{channel_type}/{channel}/{suffix}", "unmatched"}
    logging.getLogger(__name__).debug("checked %d lines", len(lines))


def _request_id_answered(url: str, given: str) -> str:
    request = urllib.request.Request(url, headers={"X-Request-ID": given})  # noqa: S310 - local
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local URL
        return str(response.headers["X-Request-ID"])
