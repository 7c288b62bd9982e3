"""``bot-gateway config show``: the effective configuration, every secret masked.

A secret is a value a channel type declares as one, a key named like one (token,
secret, password), or the password inside a database or Redis URI.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from gateway.config import Config
from gateway.logs import MASK

_SECRET_KEY = re.compile(r"(secret|token|password|passphrase|private_key)$", re.IGNORECASE)
_URI_KEYS = {"uri", "url"}


def effective(
    config: Config, secrets_of: dict[str, tuple[str, ...]], off: dict[str, str]
) -> dict[str, Any]:
    """The config as the file format spells it, with secrets masked; ``secrets_of``
    names each channel type's secret settings, ``off`` why a channel will not run."""
    shown = _plain(dataclasses.replace(config, channels=[]))
    shown["channels"] = [
        _masked(
            {
                "name": c.name,
                "type": c.type,
                "enabled": c.enabled,
                "runs": f"no: {off[c.name]}" if c.name in off else "yes",
                "faq_auto_reply": c.faq_auto_reply,
                **c.settings,
            },
            set(secrets_of.get(c.type, ())),
        )
        for c in config.channels
    ]
    masked: dict[str, Any] = _masked(shown, set())
    return masked


def render(config: Config, secrets_of: dict[str, tuple[str, ...]], off: dict[str, str]) -> str:
    shown = effective(config, secrets_of, off)
    return yaml.safe_dump(shown, sort_keys=False, allow_unicode=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str):
        return str(value)  # not the loader's str subclass, which YAML cannot dump
    return value


def _masked(section: Any, declared: set[str]) -> Any:
    if not isinstance(section, dict):
        return section
    out: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out[key] = _masked(value, set())
        elif key in declared or _SECRET_KEY.search(key):
            out[key] = MASK if value else value  # empty stays visible: "not set"
        elif key in _URI_KEYS and isinstance(value, str):
            out[key] = _without_password(value)
        else:
            out[key] = _plain(value)
    return out


def _without_password(uri: str) -> str:
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return MASK  # not a URI we can read: it might hold anything
    if not password:
        return uri
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
