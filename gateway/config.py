"""Typed, frozen configuration: packaged defaults, a file laid over them, the environment.

``gateway/defaults.yaml`` holds every default and reads deployment values from the
environment with ``${VAR}`` (required) and ``${VAR:-default}``, either of which reads
the file ``$VAR_FILE`` names when VAR is unset (Docker secrets). An operator's file
(``--config``, ``$GATEWAY_CONFIG`` or ``./config.yaml``) is merged over the defaults,
then ``GATEWAY__<SECTION>__<KEY>`` variables over that. Interpolation happens on
parsed scalars, never on the raw text, so an environment value cannot inject YAML.
Any problem is a :class:`ConfigError` whose message names the key.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import yaml

from gateway.clients import Network, parse_networks

DEFAULT_CONFIG_PATH = Path("config.yaml")  # used when it exists and nothing else is named
CONFIG_ENV_VAR = "GATEWAY_CONFIG"
ENV_PREFIX = "GATEWAY__"  # GATEWAY__SERVER__PORT=9000 sets server.port
FILE_SUFFIX = "_FILE"  # ..._FILE=/run/secrets/x: the value is that file's content

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})
_ENV_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")

T = TypeVar("T")


class ConfigError(Exception):
    """A configuration problem, phrased as one line that names the key."""


class _FromEnv(str):
    """A string from the environment (``${...}`` or a GATEWAY__ variable); only these
    may be coerced to int/float/bool, and they are never interpolated again."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # Externally visible base URL (e.g. https://gw.example.com); webhook signatures
    # are computed over it when the gateway sits behind a proxy.
    public_url: str = ""
    shutdown_grace_seconds: float = 10.0
    # Larger request bodies get a JSON 413 before they are read.
    max_body_bytes: int = 1_048_576
    # Proxies whose X-Forwarded-For is believed (comma-separated addresses or CIDR
    # networks): the client's address for sign-in limits, /metrics and bootstrap.
    trusted_proxies: str = ""
    # Connections open at once (more are closed at once), how long one may stay idle
    # or take to send its headers, and how long a request body may take.
    max_connections: int = 1000
    # Of those, at most this many from one address (a trusted proxy is not capped).
    max_connections_per_client: int = 256
    idle_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    # Browser origins (https://inbox.example.com) allowed to call the API, comma-separated.
    cors_origins: str = ""

    @property
    def proxies(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    @property
    def cors(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    @property
    def loopback_only(self) -> bool:
        """Whether only this machine can reach the server: it listens on loopback and
        is published at no public URL (a proxy on this host would forward to it)."""
        return self.host in ("127.0.0.1", "::1", "localhost") and not self.public_url

    def __post_init__(self) -> None:
        try:
            self.proxies  # noqa: B018 - parsed once here so a bad entry fails at start
        except ValueError as exc:
            raise ConfigError(f"trusted_proxies: {exc}") from None
        _require(0 <= self.port <= 65535, "port: must be between 0 and 65535")
        _require(self.max_body_bytes >= 1024, "max_body_bytes: must be at least 1024")
        _require(self.shutdown_grace_seconds > 0, "shutdown_grace_seconds: must be positive")
        _require(self.max_connections >= 1, "max_connections: must be at least 1")
        _require(
            self.max_connections_per_client >= 1, "max_connections_per_client: must be at least 1"
        )
        _require(self.idle_timeout_seconds > 0, "idle_timeout_seconds: must be positive")
        _require(self.body_timeout_seconds > 0, "body_timeout_seconds: must be positive")
        _require(
            not self.public_url or self.public_url.startswith(("http://", "https://")),
            "public_url: must start with http:// or https://",
        )


@dataclass(frozen=True)
class EmbeddedConfig:
    # WiredTiger cache of the embedded server, e.g. 64M or 1G.
    cache_size: str = "64M"
    # How often the gateway deletes expired messages on the embedded server (mongod: 60 s).
    ttl_sweep_seconds: float = 60.0
    start_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        _require(
            re.fullmatch(r"[1-9][0-9]*[KMG]", self.cache_size) is not None,
            "cache_size: must look like 256M or 1G",
        )
        _require(self.ttl_sweep_seconds > 0, "ttl_sweep_seconds: must be positive")
        _require(self.start_timeout_seconds > 0, "start_timeout_seconds: must be positive")


@dataclass(frozen=True)
class StorageConfig:
    # "embedded" starts the bundled MongoDB-compatible server under <data_dir>/db;
    # a mongodb:// or mongodb+srv:// URI uses that server instead.
    uri: str = "embedded"
    database: str = "bot_gateway"
    message_retention_days: int = 30
    # How long a request waits for the database before it answers 503 (a webhook's
    # provider then retries): well inside Twilio's 15 s webhook timeout.
    timeout_seconds: float = 3.0
    # On MongoDB, how many members must have a write (journaled) before it counts
    # as done, and a webhook is answered: "majority" survives a primary's failover
    # (a write only the old primary had is rolled back); "1" is faster.
    write_concern: Literal["majority", "1"] = "majority"
    embedded: EmbeddedConfig = field(default_factory=EmbeddedConfig)

    def __post_init__(self) -> None:
        _require(
            self.uri == "embedded" or self.uri.startswith(("mongodb://", "mongodb+srv://")),
            "uri: must be 'embedded' or a mongodb:// or mongodb+srv:// URI",
        )
        _require(
            re.fullmatch(r"[A-Za-z0-9_-]{1,63}", self.database) is not None,
            "database: use letters, digits, '_' or '-' (at most 63)",
        )
        _require(self.message_retention_days >= 1, "message_retention_days: must be at least 1")
        _require(0 < self.timeout_seconds <= 60, "timeout_seconds: must be between 0 and 60")

    @property
    def is_embedded(self) -> bool:
        return self.uri == "embedded"

    @property
    def message_retention_seconds(self) -> int:
        return self.message_retention_days * 86400


@dataclass(frozen=True)
class LogConfig:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class AuthConfig:
    # HS256 key for agents' tokens. Empty: one is generated once and kept in
    # <data_dir>/jwt_secret (fine on one machine; replicas must share JWT_SECRET).
    jwt_secret: str = ""
    access_token_minutes: int = 15
    refresh_token_days: int = 7
    # Anyone may create an agent account. Off: only the first agent (bootstrap) or an
    # authenticated agent can.
    open_registration: bool = False
    # Failed logins allowed per username and per client address within the window.
    max_failed_logins: int = 5
    failed_login_window_seconds: int = 300
    # An address or a username past four times that takes turns: one attempt this often.
    slow_down_seconds: float = 1.0

    def __post_init__(self) -> None:
        _require(
            not self.jwt_secret or len(self.jwt_secret) >= 32,
            "jwt_secret: must be at least 32 characters (HS256 needs a 256-bit key)",
        )
        _require(self.access_token_minutes >= 1, "access_token_minutes: must be at least 1")
        _require(self.refresh_token_days >= 1, "refresh_token_days: must be at least 1")
        _require(self.max_failed_logins >= 1, "max_failed_logins: must be at least 1")
        _require(
            self.failed_login_window_seconds >= 1, "failed_login_window_seconds: must be positive"
        )
        _require(self.slow_down_seconds > 0, "slow_down_seconds: must be positive")


@dataclass(frozen=True)
class DeliveryConfig:
    """How the outbound dispatcher sends and retries."""

    # Attempts per message, the first included, before it ends failed: with the
    # backoff below, ten span about 17 minutes of a provider's outage.
    max_attempts: int = 10
    # The first retry waits this long; each next one twice as long, with jitter.
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0
    # Messages sent at the same time (to different contacts). A provider call takes
    # 100-300 ms, so 8 capped every channel together at 30-80 messages a second; 32
    # also lets a backlog's outcomes be recorded 32 to a write.
    concurrency: int = 32
    # How long a claim on a message lasts: a send is cut at half of it, and a claim a
    # stopped process left behind is put back in the queue once it runs out.
    stale_sending_seconds: float = 60.0

    def __post_init__(self) -> None:
        _require(self.max_attempts >= 1, "max_attempts: must be at least 1")
        _require(self.backoff_seconds > 0, "backoff_seconds: must be positive")
        _require(
            self.max_backoff_seconds >= self.backoff_seconds,
            "max_backoff_seconds: must be at least backoff_seconds",
        )
        _require(self.concurrency >= 1, "concurrency: must be at least 1")
        _require(self.stale_sending_seconds > 0, "stale_sending_seconds: must be positive")


@dataclass(frozen=True)
class EventsConfig:
    """The live event stream (``/api/v1/events/``)."""

    retention_hours: int = 48  # how far back a stream resumes with Last-Event-ID
    heartbeat_seconds: float = 15.0
    # On a database several gateways share, an event is streamed once it is this old,
    # so that one another gateway wrote a moment earlier is never overtaken.
    settle_ms: int = 1000
    # One agent's open streams (more are refused with 429), one sign-in's (a newer one
    # ends the oldest), entries a stream's client may fall behind before it is told to
    # resume, how often a stream checks its sign-in, and how long a stream told to end
    # may take to write its last lines before it is cut off.
    max_streams_per_agent: int = 20
    max_streams_per_sign_in: int = 5
    stream_queue_events: int = 1000
    recheck_seconds: float = 2.0
    write_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        for name in ("max_streams_per_agent", "max_streams_per_sign_in", "stream_queue_events"):
            _require(getattr(self, name) >= 1, f"{name}: must be at least 1")
        _require(self.recheck_seconds > 0, "recheck_seconds: must be positive")
        _require(self.write_timeout_seconds > 0, "write_timeout_seconds: must be positive")


@dataclass(frozen=True)
class AssignmentConfig:
    # An agent who goes away keeps their open conversations (else they return to the queue).
    keep_while_away: bool = False
    recheck_seconds: float = 1.0  # how often waiting conversations are offered again


@dataclass(frozen=True)
class ClusterConfig:
    """Several gateways on one database: who works which channel."""

    # A channel's lease: its holder polls it and sends its outbox, renewing every
    # third of this; another gateway takes over within it when the holder dies.
    lease_seconds: float = 15.0

    def __post_init__(self) -> None:
        _require(self.lease_seconds >= 1, "lease_seconds: must be at least 1")


@dataclass(frozen=True)
class SubscriptionsConfig:
    """Outbound webhooks to other systems (``/api/v1/subscriptions/``)."""

    # Targets on private, loopback or link-local addresses are refused unless this is
    # on: for a receiver on the developer's own machine.
    allow_private_targets: bool = False
    timeout_seconds: float = 10.0  # for the receiver's answer to one delivery
    # Between the tries of one event: doubling from the first, up to the max.
    retry_first_seconds: float = 5.0
    retry_max_seconds: float = 600.0

    def __post_init__(self) -> None:
        _require(self.timeout_seconds > 0, "timeout_seconds: must be positive")
        _require(self.retry_first_seconds > 0, "retry_first_seconds: must be positive")
        _require(
            self.retry_max_seconds >= self.retry_first_seconds,
            "retry_max_seconds: must be at least retry_first_seconds",
        )


@dataclass(frozen=True)
class BotsConfig:
    """Channels whose bot answers first (``PATCH /api/v1/channels/{id}/ {bot_id}``)."""

    # A conversation whose contact the bot has not answered within this goes to the
    # agents by itself, as does one whose bot fails to receive its events.
    reply_deadline_seconds: float = 60.0
    # A bot whose subscription (one created with its bot_id) has failed this long
    # cannot be hearing its contacts: what it holds goes to the agents.
    failing_subscription_seconds: float = 30.0
    recheck_seconds: float = 2.0  # how often that, and which channels have bots, is read

    def __post_init__(self) -> None:
        _require(self.reply_deadline_seconds > 0, "reply_deadline_seconds: must be positive")
        _require(
            self.failing_subscription_seconds >= 0,
            "failing_subscription_seconds: must not be negative",
        )
        _require(self.recheck_seconds > 0, "recheck_seconds: must be positive")


@dataclass(frozen=True)
class CacheConfig:
    # memory: per process. redis: shared by replicas (needs pip install redis).
    backend: Literal["memory", "redis"] = "memory"
    url: str = ""  # redis://host:6379/0
    faq_ttl_seconds: int = 60

    def __post_init__(self) -> None:
        _require(
            self.backend != "redis" or self.url.startswith(("redis://", "rediss://")),
            "url: the redis backend needs a redis:// URL",
        )
        _require(self.faq_ttl_seconds >= 1, "faq_ttl_seconds: must be at least 1")


@dataclass(frozen=True)
class FaqConfig:
    # Answer inbound questions that match an FAQ, on every channel that allows it.
    auto_reply: bool = True
    # The same FAQ goes to the same contact at most once in this window.
    repeat_window_seconds: int = 86400

    def __post_init__(self) -> None:
        _require(self.repeat_window_seconds >= 0, "repeat_window_seconds: must not be negative")


@dataclass(frozen=True)
class MediaConfig:
    # The largest file an agent may download or upload through the gateway (Telegram's
    # bots get at most 20 MB: https://core.telegram.org/bots/api#getfile). A channel
    # may take less (WhatsApp: 16 MB, images 5 MB).
    max_bytes: int = 20 * 1024 * 1024
    # How long the link a provider fetches an upload from works (Twilio's MediaUrl),
    # counted from each send attempt.
    link_seconds: int = 3600
    # Uploads: bytes one agent may upload in an hour (429 past it), and bytes stored
    # for all agents (uploads expire with their messages; 413 past it).
    upload_bytes_per_agent_hour: int = 200 * 1024 * 1024
    max_stored_upload_bytes: int = 2 * 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        _require(self.max_bytes >= 1, "max_bytes: must be at least 1")
        _require(self.upload_bytes_per_agent_hour >= 1, "upload_bytes_per_agent_hour: at least 1")
        _require(self.max_stored_upload_bytes >= 1, "max_stored_upload_bytes: at least 1")
        _require(self.link_seconds >= 60, "link_seconds: must be at least 60")


@dataclass(frozen=True)
class MetricsConfig:
    # Bearer token Prometheus sends to GET /metrics. Empty: only local clients
    # (127.0.0.1, ::1) may scrape.
    token: str = ""


@dataclass(frozen=True)
class ChannelConfig:
    """One bot or sender. Keys besides these are the channel type's settings."""

    name: str
    type: str
    enabled: bool = True
    faq_auto_reply: bool = True
    settings: dict[str, Any] = field(default_factory=dict, metadata={"rest": True})

    def __post_init__(self) -> None:
        _require(
            re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", self.name) is not None,
            "name: use lowercase letters, digits, '_' or '-' (at most 63)",
        )


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path("data")
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    subscriptions: SubscriptionsConfig = field(default_factory=SubscriptionsConfig)
    bots: BotsConfig = field(default_factory=BotsConfig)
    assignment: AssignmentConfig = field(default_factory=AssignmentConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    faq: FaqConfig = field(default_factory=FaqConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    channels: list[ChannelConfig] = field(default_factory=list)
    log: LogConfig = field(default_factory=LogConfig)

    def with_overrides(self, **changes: Any) -> Config:
        """Apply command-line overrides such as ``server__port=9000``."""
        config = self
        for dotted, value in changes.items():
            if value is None:
                continue
            *sections, name = dotted.split("__")
            config = _replace_path(config, sections, name, value, dotted.replace("__", "."))
        return config


def _replace_path(obj: Any, sections: list[str], name: str, value: Any, key: str) -> Any:
    if not sections:
        # Converted and checked like the file's values: --data-dir arrives as a str.
        converted = _convert(typing.get_type_hints(type(obj))[name], value, key, {})
        try:
            return dataclasses.replace(obj, **{name: converted})
        except ConfigError as exc:  # the section's own check names the key in it
            raise ConfigError(f"{key.removesuffix(name)}{exc}") from None
    head, *rest = sections
    inner = _replace_path(getattr(obj, head), rest, name, value, key)
    return dataclasses.replace(obj, **{head: inner})


def resolve_config_path(
    explicit: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """``--config`` wins, then ``$GATEWAY_CONFIG``, then ``./config.yaml`` if there is
    one; None: the packaged defaults alone."""
    if explicit:
        return Path(explicit)
    from_env = (os.environ if environ is None else environ).get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """The packaged defaults, the config file over them, then GATEWAY__ variables;
    interpolated and validated."""
    environ = os.environ if environ is None else environ
    defaults = resources.files("gateway").joinpath("defaults.yaml")
    raw = _read_yaml(defaults.read_text(encoding="utf-8"), "defaults.yaml")
    config_path = resolve_config_path(path, environ)
    if config_path is not None:
        try:
            text = config_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{config_path}: cannot read config file: {exc.strerror}") from None
        overlay = _read_yaml(text, str(config_path))
        if not isinstance(overlay, dict):
            raise ConfigError(f"{config_path}: expected a mapping of keys")
        raw = _merge(raw, overlay)
    return parse_config(_apply_environment(raw, environ), environ)


def _read_yaml(text: str, name: str) -> Any:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{name}: invalid YAML{where}: {problem}") from None
    return raw if raw is not None else {}


def _merge(base: Any, overlay: Any) -> Any:
    """Mappings merge key by key; anything else (a list of channels too) replaces."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return overlay


def _apply_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``GATEWAY__SECTION__KEY=value`` over the merged file; channels by name
    (``GATEWAY__CHANNELS__TELEGRAM__TOKEN``, ``-`` in a name spelled ``_``)."""
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX):
            continue
        path = variable[len(ENV_PREFIX) :].lower().split("__")
        value: str = environ[variable]
        if path[-1].endswith(FILE_SUFFIX.lower()):
            path[-1] = path[-1].removesuffix(FILE_SUFFIX.lower())
            value = _read_secret_file(value, variable)
        if not all(path):
            raise ConfigError(f"{variable}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        target: Any = raw
        for depth, part in enumerate(path[:-1]):
            if depth == 1 and path[0] == "channels":
                named = [c for c in target if isinstance(c, dict) and
                         str(c.get("name", "")).replace("-", "_") == part]  # fmt: skip
                if not named:
                    raise ConfigError(f"{variable}: no channel named {part!r}")
                target = named[0]
                continue
            if not isinstance(target, dict):
                raise ConfigError(f"{variable}: {'.'.join(path[:depth])} is not a section")
            target = target.setdefault(part, {})
        if not isinstance(target, dict) or (path == ["channels"]):
            raise ConfigError(f"{variable}: {'.'.join(path)} cannot be set from the environment")
        target[path[-1]] = _FromEnv(value)
    return raw


def _read_secret_file(path: str, variable: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror}") from None


def parse_config(raw: Any, environ: Mapping[str, str]) -> Config:
    """Build a :class:`Config` from already-parsed YAML data."""
    config = _build(Config, raw, "", environ)
    names = [channel.name for channel in config.channels]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"channels: the name {duplicates[0]!r} is used twice")
    return config


def build_section(cls: type[T], raw: Any, prefix: str) -> T:
    """Validate already-interpolated values against a settings dataclass."""
    return _build(cls, raw, prefix, {})


def _interpolate(value: str, key: str, environ: Mapping[str, str]) -> str:
    if isinstance(value, _FromEnv):
        return value  # a value from the environment is taken as it is, never expanded

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group("name"), match.group("default")
        found = environ.get(name)
        if found:
            return found
        secret_file = environ.get(name + FILE_SUFFIX)
        if secret_file:
            return _read_secret_file(secret_file, name + FILE_SUFFIX)
        if default is not None:
            return default
        raise ConfigError(f"{key}: environment variable {name} is required but not set")

    result = _ENV_REF.sub(substitute, value)
    return _FromEnv(result) if result != value else result


def _build(cls: type[T], raw: Any, prefix: str, environ: Mapping[str, str]) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping of keys")
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cast(Any, cls)) if f.init]
    rest = next((f.name for f in fields if f.metadata.get("rest")), None)
    known = {f.name for f in fields if f.name != rest}
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown and rest is None:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    values = {
        name: _convert(hints[name], value, f"{prefix}{name}", environ)
        for name, value in raw.items()
        if name in known
    }
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for name in required:
        if name not in raw:
            raise ConfigError(f"{prefix.rstrip('.') or 'config'}: missing {name}")
    if rest is not None:
        values[rest] = {str(k): _interpolate_any(raw[k], f"{prefix}{k}", environ) for k in unknown}
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def _interpolate_any(value: Any, key: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _interpolate(value, key, environ)
    if isinstance(value, list):
        return [_interpolate_any(v, f"{key}[{i}]", environ) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _interpolate_any(v, f"{key}.{k}", environ) for k, v in value.items()}
    return value


def _convert(kind: Any, value: Any, key: str, environ: Mapping[str, str]) -> Any:
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return _build(kind, value if value is not None else {}, f"{key}.", environ)
    if typing.get_origin(kind) is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list")
        (item,) = typing.get_args(kind)
        return [_convert(item, v, f"{key}[{i}]", environ) for i, v in enumerate(value)]
    if isinstance(value, str):
        value = _interpolate(value, key, environ)
    origin = typing.get_origin(kind)
    if origin is Literal:
        allowed = typing.get_args(kind)
        if value not in allowed:
            raise ConfigError(
                f"{key}: must be one of {', '.join(map(str, allowed))}, got {value!r}"
            )
        return str(value)
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"{key}: union types are not supported in config")
    if kind is bool:
        return _to_bool(value, key)
    if kind in (int, float):
        return _to_number(kind, value, key)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__}")
        return str(value)
    if kind is Path:
        if isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{key}: expected a path")
        return Path(value)
    raise TypeError(f"{key}: unsupported config type {kind!r}")


def _to_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, _FromEnv) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _to_number(kind: type[int] | type[float], value: Any, key: str) -> int | float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, int) or (kind is float and isinstance(value, float)):
        return kind(value)
    if isinstance(value, _FromEnv):
        try:
            return kind(value)
        except ValueError:
            pass
    noun = "an integer" if kind is int else "a number"
    raise ConfigError(f"{key}: expected {noun}, got {value!r}")
