"""The list cursor: a signed key and nothing else (handlers/pagination.py)."""

from __future__ import annotations

import json

import pytest

from gateway.errors import ValidationError
from handlers.pagination import _b64, _mac, decode_cursor, encode_cursor
from storage.lists import Position
from storage.records import new_id

SECRET = b"k" * 32


def test_a_cursor_round_trips_its_key_and_carries_nothing_else() -> None:
    position = Position(new_id())
    cursor = encode_cursor(position, SECRET)
    assert decode_cursor(cursor, SECRET) == position
    assert len(cursor) < 80


def test_a_cursor_given_out_before_the_upgrade_still_reads() -> None:
    key = new_id()
    payload = _b64(json.dumps([key, 1234.5]).encode())  # it carried a density then
    assert decode_cursor(f"{payload}.{_mac(SECRET, payload)}", SECRET) == Position(key)


@pytest.mark.parametrize(
    "forge",
    [
        lambda payload, mac: f"{payload}.{mac[:-2]}AA",  # another MAC
        lambda payload, mac: payload,  # none
        lambda payload, mac: f"{_b64(json.dumps([new_id()]).encode())}.{mac}",  # another key
        lambda payload, mac: f"{payload}.{_mac(b'other', payload)}",  # another secret
    ],
)
def test_a_cursor_this_api_did_not_give_out_is_refused(forge) -> None:  # type: ignore[no-untyped-def]
    cursor = encode_cursor(Position(new_id()), SECRET)
    payload, _, mac = cursor.partition(".")
    with pytest.raises(ValidationError):
        decode_cursor(forge(payload, mac), SECRET)


@pytest.mark.parametrize("shape", [{}, [], 7, "x", [7], [None, 1.0], {"0": "k"}])
def test_a_signed_payload_of_another_shape_is_refused(shape: object) -> None:
    payload = _b64(json.dumps(shape).encode())
    with pytest.raises(ValidationError):
        decode_cursor(f"{payload}.{_mac(SECRET, payload)}", SECRET)
