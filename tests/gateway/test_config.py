"""config.yaml parsing: defaults, environment interpolation and one-line errors."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from channels.registry import CHANNEL_TYPES
from gateway.config import Config, ConfigError, build_section, load_config, parse_config
from testkit.processes import BOT_GATEWAY

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def test_repository_config_with_empty_environment_equals_the_coded_defaults() -> None:
    config = load_config(REPO_CONFIG, environ={})
    assert dataclasses.replace(config, channels=[]) == Config()
    # One channel of each type, each listing its type's settings at their defaults.
    assert [(c.name, c.type) for c in config.channels] == [(kind, kind) for kind in CHANNEL_TYPES]
    for declared in config.channels:
        settings = CHANNEL_TYPES[declared.type].Settings
        expected = dataclasses.asdict(settings())
        assert dataclasses.asdict(build_section(settings, declared.settings, "")) == expected


def test_environment_values_are_interpolated_and_typed() -> None:
    config = load_config(
        REPO_CONFIG,
        environ={
            "GATEWAY_PORT": "9001",
            "MONGODB_URI": "mongodb://db.internal:27017",
            "MESSAGE_RETENTION_DAYS": "7",
            "LOG_FORMAT": "json",
            "PUBLIC_URL": "https://gw.example.com",
        },
    )
    assert config.server.port == 9001
    assert config.storage.uri == "mongodb://db.internal:27017"
    assert not config.storage.is_embedded
    assert config.storage.message_retention_seconds == 7 * 86400
    assert config.log.format == "json"
    assert config.server.public_url == "https://gw.example.com"


def test_empty_environment_value_falls_back_to_the_default() -> None:
    config = parse_config({"server": {"port": "${P:-8100}"}}, {"P": ""})
    assert config.server.port == 8100


def test_required_variable_names_key_and_variable() -> None:
    with pytest.raises(ConfigError, match=r"^storage\.uri: environment variable MONGO_X is"):
        parse_config({"storage": {"uri": "${MONGO_X}"}}, {})


def test_interpolation_inside_a_longer_string() -> None:
    config = parse_config({"server": {"public_url": "https://${HOST}/gw"}}, {"HOST": "a.b"})
    assert config.server.public_url == "https://a.b/gw"


def test_an_environment_value_is_never_parsed_as_yaml() -> None:
    config = parse_config({"storage": {"database": "${DB}"}}, {"DB": "x"})
    assert config.storage.database == "x"
    with pytest.raises(ConfigError, match=r"^storage\.database:"):
        parse_config({"storage": {"database": "${DB}"}}, {"DB": "{a: 1}"})


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.server.port = 1  # type: ignore[misc]


def test_command_line_overrides_replace_nested_values() -> None:
    # As argparse hands them over: --data-dir is a str, --port an int.
    config = Config().with_overrides(server__port=9100, data_dir="/x", server__host=None)
    assert config.server.port == 9100
    assert config.server.host == "127.0.0.1"
    assert config.data_dir == Path("/x")
    with pytest.raises(ConfigError, match=r"^server\.port: must be between 0 and 65535$"):
        Config().with_overrides(server__port=70000)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"sever": {}},
            r"^sever: unknown key \(known: assignment, auth, bots, cache, channels, cluster, "
            r"data_dir, delivery, events, faq, log, media, metrics, server, storage, "
            r"subscriptions\)",
        ),
        ({"server": {"prot": 1}}, r"^server\.prot: unknown key"),
        ({"server": {"port": "abc"}}, r"^server\.port: expected an integer, got 'abc'"),
        ({"server": {"port": "${P}"}}, r"^server\.port: environment variable P is required"),
        ({"server": {"port": True}}, r"^server\.port: expected a number"),
        ({"server": {"port": 70000}}, r"^server\.port: must be between 0 and 65535"),
        ({"server": []}, r"^server: expected a mapping"),
        ({"server": {"public_url": "gw.example.com"}}, r"^server\.public_url: must start"),
        ({"storage": {"uri": "postgres://x"}}, r"^storage\.uri: must be 'embedded' or a mongodb"),
        ({"storage": {"message_retention_days": 0}}, r"^storage\.message_retention_days:"),
        ({"storage": {"embedded": {"cache_size": "lots"}}}, r"^storage\.embedded\.cache_size:"),
        ({"storage": {"embedded": {"ttl": 1}}}, r"^storage\.embedded\.ttl: unknown key"),
        ({"log": {"level": "LOUD"}}, r"^log\.level: must be one of DEBUG, INFO, WARNING, ERROR"),
        ({"log": {"format": 3}}, r"^log\.format: must be one of text, json, got 3"),
        ({"data_dir": ""}, r"^data_dir: expected a path"),
        ({"auth": {"jwt_secret": "short"}}, r"^auth\.jwt_secret: must be at least 32"),
        ({"auth": {"open_registration": "yes"}}, r"^auth\.open_registration: expected true or"),
        ({"server": {"max_body_bytes": 10}}, r"^server\.max_body_bytes: must be at least"),
        ({"channels": {"name": "x"}}, r"^channels: expected a list"),
        ({"channels": [{"type": "mock"}]}, r"^channels\[0\]: missing name"),
        ({"channels": [{"name": "Bad Name", "type": "mock"}]}, r"^channels\[0\]\.name: use"),
        (
            {"channels": [{"name": "a", "type": "mock"}, {"name": "a", "type": "mock"}]},
            r"^channels: the name 'a' is used twice",
        ),
        ({"delivery": {"max_attempts": 0}}, r"^delivery\.max_attempts: must be at least 1"),
        ({"cache": {"backend": "redis"}}, r"^cache\.url: the redis backend needs a redis://"),
        ({"cache": {"backend": "memcached"}}, r"^cache\.backend: must be one of memory, redis"),
    ],
)
def test_invalid_values_name_the_key(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, {})


def test_bad_yaml_names_the_file_and_line(config_file) -> None:
    path = config_file("server:\n  port: [1,\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: invalid YAML at line 3"):
        load_config(path, environ={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_config_path_from_environment_variable(config_file, monkeypatch) -> None:
    path = config_file("server:\n  port: 8123\n")
    monkeypatch.setenv("GATEWAY_CONFIG", str(path))
    assert load_config().server.port == 8123


def test_cli_reports_an_invalid_file_in_one_line_with_exit_code_2(config_file) -> None:
    path = config_file("server:\n  port: many\n")
    result = subprocess.run(
        [BOT_GATEWAY, "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "bot-gateway: config error: server.port: expected an integer, got 'many'"
    ]


def test_a_channel_types_client_is_imported_only_when_such_a_channel_is_built() -> None:
    # aiogram's import alone takes seconds and makes a process of 165 MB; twilio's
    # brings aiohttp. A gateway without those channels loads neither.
    code = (
        "import sys, bot_gateway.server, gateway.channels, channels.registry\n"
        "from channels.telegram import TelegramSettings\n"
        "from channels.whatsapp import WhatsAppSettings\n"
        "TelegramSettings(token=''), WhatsAppSettings()\n"
        "print(sorted(m for m in ('aiogram', 'twilio', 'aiohttp') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stderr


# -- layering: packaged defaults, a file over them, GATEWAY__ variables, files ------


def test_with_no_file_anywhere_the_packaged_defaults_apply(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./config.yaml here
    monkeypatch.delenv("GATEWAY_CONFIG", raising=False)
    assert load_config(environ={}) == load_config(REPO_CONFIG, environ={})


def test_a_file_needs_only_what_it_changes(config_file) -> None:
    config = load_config(config_file("server:\n  port: 9001\n"), environ={})
    defaults = load_config(REPO_CONFIG, environ={})
    assert config.server.port == 9001
    assert config.server.host == defaults.server.host  # the rest of its section stays
    assert config.channels == defaults.channels
    assert config.delivery == defaults.delivery


def test_a_files_channels_replace_the_default_ones(config_file) -> None:
    config = load_config(config_file("channels:\n  - {name: only, type: mock}\n"), environ={})
    assert [(c.name, c.type) for c in config.channels] == [("only", "mock")]


def test_any_key_can_be_set_from_the_environment(config_file, tmp_path) -> None:
    secret = tmp_path / "jwt"
    secret.write_text("from-a-docker-secret-" + "s" * 20 + "\n")
    config = load_config(
        config_file("channels:\n  - {name: tg-2, type: telegram, token: x}\n"),
        environ={
            "GATEWAY__DELIVERY__CONCURRENCY": "7",
            "GATEWAY__SERVER__TRUSTED_PROXIES": "10.0.0.0/8",
            "GATEWAY__DATA_DIR": str(tmp_path / "state"),
            "GATEWAY__CHANNELS__TG_2__MESSAGES_PER_SECOND": "20",
            "GATEWAY__AUTH__JWT_SECRET_FILE": str(secret),
            "GATEWAY__LOG__LEVEL": "DEBUG",
        },
    )
    assert config.delivery.concurrency == 7
    assert config.server.trusted_proxies == "10.0.0.0/8"
    assert config.data_dir == tmp_path / "state"
    assert config.channels[0].settings["messages_per_second"] == "20"
    assert config.auth.jwt_secret == "from-a-docker-secret-" + "s" * 20
    assert config.log.level == "DEBUG"


def test_an_environment_value_is_never_expanded(config_file) -> None:
    config = load_config(config_file("{}"), environ={"GATEWAY__METRICS__TOKEN": "${HOME}"})
    assert config.metrics.token == "${HOME}"


def test_a_variables_file_form_stands_in_for_it(config_file, tmp_path) -> None:
    token = tmp_path / "token"
    token.write_text("123:from-file\n")
    config = load_config(REPO_CONFIG, environ={"TELEGRAM_BOT_TOKEN_FILE": str(token)})
    [telegram] = [c for c in config.channels if c.type == "telegram"]
    assert telegram.settings["token"] == "123:from-file"
    # The variable itself wins over its file.
    config = load_config(
        REPO_CONFIG,
        environ={"TELEGRAM_BOT_TOKEN": "123:direct", "TELEGRAM_BOT_TOKEN_FILE": str(token)},
    )
    [telegram] = [c for c in config.channels if c.type == "telegram"]
    assert telegram.settings["token"] == "123:direct"


NO_FILE = "/nonexistent/jwt"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GATEWAY__SERVER__PROT": "1"}, r"^server\.prot: unknown key"),
        ({"GATEWAY__DELIVERY__CONCURRENCY": "lots"}, r"^delivery\.concurrency: expected an int"),
        ({"GATEWAY__CHANNELS__NOPE__TOKEN": "x"}, r"^GATEWAY__CHANNELS__NOPE__TOKEN: no channel"),
        ({"GATEWAY__CHANNELS": "x"}, r"^GATEWAY__CHANNELS: channels cannot be set"),
        ({"GATEWAY__AUTH__JWT_SECRET_FILE": NO_FILE}, r"^GATEWAY__AUTH__JWT_SECRET_FILE: cannot"),
        ({"JWT_SECRET_FILE": NO_FILE}, r"^JWT_SECRET_FILE: cannot read /nonexistent/jwt"),
        ({"GATEWAY__SERVER____PORT": "1"}, r"^GATEWAY__SERVER____PORT: expected GATEWAY__<"),
    ],
)
def test_a_bad_environment_value_names_its_variable_or_key(environ, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(REPO_CONFIG, environ=environ)


def test_config_show_masks_every_secret(tmp_path) -> None:
    secrets = {
        "JWT_SECRET": "jwt-secret-value-" + "j" * 20,
        "TELEGRAM_BOT_TOKEN": "123456:telegram-token-value-abcdefghijklmnop",
        "TELEGRAM_WEBHOOK_SECRET": "telegram-hook-secret-value",
        "TWILIO_AUTH_TOKEN": "twilio-auth-token-value",
        "MOCK_WEBHOOK_SECRET": "mock-secret-value",
        "METRICS_TOKEN": "metrics-token-value",
        "MONGODB_URI": "mongodb://gw:db-password-value@db:27017/?replicaSet=rs0",
        "REDIS_URL": "redis://:redis-password-value@cache:6379/0",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY")}
    env.update(secrets, CACHE_BACKEND="redis")
    shown = subprocess.run(
        [BOT_GATEWAY, "config", "show"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    for name, value in secrets.items():
        secret = value.split("@")[0].rsplit(":", 1)[-1] if "://" in value else value
        assert secret not in shown.stdout, name
    effective = yaml.safe_load(shown.stdout)
    assert effective["auth"]["jwt_secret"] == "***"
    assert effective["metrics"]["token"] == "***"
    assert effective["storage"]["uri"] == "mongodb://gw:***@db:27017/?replicaSet=rs0"
    assert effective["cache"]["url"] == "redis://:***@cache:6379/0"
    by_name = {c["name"]: c for c in effective["channels"]}
    assert by_name["telegram"]["token"] == by_name["telegram"]["webhook_secret"] == "***"
    assert by_name["whatsapp"]["auth_token"] == by_name["mock"]["secret"] == "***"
    # What is not secret is shown as it is.
    assert effective["server"]["port"] == 8000
    assert by_name["telegram"]["mode"] == "polling"
    # Which channels will run, and why not: the defaults with only a Telegram token.
    runs = {name: channel["runs"] for name, channel in by_name.items()}
    assert runs == {
        "mock": "yes",
        "telegram": "yes",
        "whatsapp": "no: account_sid, from_number not set",
        "whatsapp_cloud": "no: access_token, phone_number_id, app_secret, verify_token not set",
    }
