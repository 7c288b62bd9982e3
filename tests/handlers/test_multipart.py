"""The in-place multipart reader: what a browser and curl send, and what it refuses."""

from __future__ import annotations

import pytest

from handlers.messages import clean_file_name
from handlers.multipart import MAX_PARTS, parse_form
from testkit.helpers import multipart

TYPE = "multipart/form-data; boundary=XyZ"


def test_fields_and_a_file_come_back_exactly() -> None:
    body, content_type = multipart(
        {"contact_id": "c1", "content": "olá\r\n--not a boundary"},
        [("file", "naïve.pdf", b"%PDF\r\n--XyZ-- inside\r\n", "application/pdf")],
    )
    fields, [file] = parse_form(bytearray(body), content_type)
    assert fields == {"contact_id": [b"c1"], "content": ["olá\r\n--not a boundary".encode()]}
    assert (file.name, file.file_name, file.content_type) == (
        "file",
        "naïve.pdf",
        "application/pdf",
    )
    assert file.data == b"%PDF\r\n--XyZ-- inside\r\n"


def test_a_preamble_and_rfc_2231_names_are_read() -> None:
    body = (
        b"ignored preamble\r\n--XyZ\r\n"
        b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf\r\n"
        b"Content-Type: application/pdf\r\n\r\n%PDF\r\n--XyZ--\r\n"
    )
    _, [file] = parse_form(body, TYPE)
    assert (file.file_name, file.data) == ("résumé.pdf", b"%PDF")


def _part(head: bytes, value: bytes = b"x") -> bytes:
    return b"--XyZ\r\n" + head + b"\r\n\r\n" + value + b"\r\n"


NAMED = b'Content-Disposition: form-data; name="a"'
END = b"--XyZ--"


MALFORMED = [
    ("no boundary parameter", b"--XyZ--\r\n", "multipart/form-data", "boundary"),
    ("no boundary in the body", b"hello", TYPE, "does not start"),
    ("cut in its headers", _part(NAMED)[:-4], TYPE, "headers are missing"),
    ("no final boundary", _part(NAMED), TYPE, "cut short"),
    ("a header with no colon", _part(b"Content-Disposition form-data") + b"--XyZ--", TYPE, "colon"),
    ("not form-data", _part(NAMED.replace(b"form-data", b"attachment")) + END, TYPE, "not form"),
    ("no name", _part(b"Content-Disposition: form-data") + b"--XyZ--", TYPE, "no name"),
    ("headers not UTF-8", _part(NAMED[:-2] + b'\xff"') + END, TYPE, "UTF-8"),
    ("too many parts", _part(NAMED) * (MAX_PARTS + 1) + END, TYPE, "parts"),
    ("garbage after a boundary", b"--XyZ!!", TYPE, "malformed"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "body", "content_type", "said"), MALFORMED,
                         ids=[c[0] for c in MALFORMED])  # fmt: skip
def test_a_malformed_form_is_refused_with_the_reason(label, body, content_type, said) -> None:
    with pytest.raises(ValueError, match=said):
        parse_form(body, content_type)


@pytest.mark.parametrize(("given", "kept"), [
    ("C:\\fakepath\\photo.jpg", "photo.jpg"),
    ("../../etc/passwd", "passwd"),
    ("tab\there\x00.pdf", "tabhere.pdf"),
    ("", "file"),
    ("x" * 300 + ".pdf", "x" * 255),
])  # fmt: skip
def test_an_uploads_name_is_its_last_printable_segment(given: str, kept: str) -> None:
    assert clean_file_name(given) == kept
