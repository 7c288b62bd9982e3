"""What arrives over the wire, read safely: JSON bodies with bounded work, a
Content-Type's essence, secrets compared in constant time. Used by the channels and
the API alike; imports nothing of ours."""

from __future__ import annotations

import hmac
import json
from typing import Any

# What no provider or client sends: refused before anything is stored.
MAX_JSON_DEPTH = 32
# Values in one JSON body: far more than any provider's webhook or API call holds.
MAX_JSON_VALUES = 10_000


def essence(content_type: str) -> str:
    """A Content-Type header's ``type/subtype``, lower case, without its parameters."""
    return content_type.split(";", 1)[0].strip().lower()


def load_json(body: bytes) -> Any:
    """Parse a JSON body that is safe to handle and store: at most ``MAX_JSON_VALUES``
    values, nested at most ``MAX_JSON_DEPTH`` levels, every string with a UTF-8 form.
    ValueError names the problem, and the field where there is one.

    The work is bounded before parsing: a body's commas and colons bound how many
    values it holds (strings' own only add to the count), so a megabyte of ``[1,1,...``
    is refused after one pass over its bytes, not after building half a million objects.
    """
    if body.count(b",") + body.count(b":") >= MAX_JSON_VALUES:
        raise ValueError(f"more than {MAX_JSON_VALUES} values (or separators in strings)")
    try:
        data = json.loads(body)
    except RecursionError:  # thousands of levels: refused before our own walk
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed JSON: {exc}") from None
    # A lone surrogate comes only from a \u escape, the bytes ED A0-BF, or a UTF-16 or
    # UTF-32 body (a NUL in its first bytes); too deep needs more brackets than levels.
    # Most bodies have neither and skip the walk.
    may_hold_surrogates = b"\\u" in body or b"\xed" in body or b"\x00" in body[:4]
    may_be_deep = body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH
    if may_hold_surrogates or may_be_deep:
        problem = json_problem(data)
        if problem is not None:
            raise ValueError(problem)
    return data


def json_problem(data: Any) -> str | None:
    """What makes parsed JSON unsafe (too deep, a string with no UTF-8 form), or None."""
    if _json_safe(data):  # the common case, without building a path per value
        return None
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:  # no recursion: the depth is what is being checked
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                return f"{path or 'body'}: nested deeper than {MAX_JSON_DEPTH} levels"
            pairs = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in pairs:
                if not storable(key):
                    return f"{path or 'body'}: a key is not valid Unicode text"
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif not storable(value):
            return f"{path or 'body'}: not valid Unicode text (a lone surrogate?)"
    return None


def _json_safe(data: Any) -> bool:
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and not storable(value):
                return False
        elif isinstance(value, dict | list):
            if depth >= MAX_JSON_DEPTH:
                return False
            if isinstance(value, dict):
                if not all(key.isascii() or storable(key) for key in value):
                    return False
                value = value.values()
            stack.extend((item, depth + 1) for item in value)
    return True


def storable(value: Any) -> bool:
    """Whether every string in ``value`` (nested in dicts and lists) has a UTF-8 form."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(storable(k) and storable(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(storable(v) for v in value)
    return True


def secrets_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison, so timing does not reveal the secret."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
