"""The ``bot-gateway`` command line: parse arguments and run one command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from gateway import logs
from gateway.agents import create_agent, normalize_username, update_agent
from gateway.config import Config, ConfigError, build_section, load_config, resolve_config_path
from gateway.database import open_storage, prepare
from gateway.errors import GatewayError
from storage.errors import StorageUnavailable
from storage.models import Role

EXIT_CONFIG = 2


def _add_account_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """create-agent and reset-password: they work whether or not serve is running."""
    agent = commands.add_parser(
        "create-agent",
        parents=[common],
        help="create an agent account (works while serve is running)",
    )
    agent.add_argument("--username", required=True)
    agent.add_argument("--display-name", default="")
    agent.add_argument(
        "--role",
        choices=[r.value for r in Role],
        help="admin or agent (default: admin for the first agent, agent after)",
    )
    agent.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    reset = commands.add_parser(
        "reset-password",
        parents=[common],
        help="set an agent's password and end its sign-ins (works while serve is running)",
    )
    reset.add_argument("--username", required=True)
    reset.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bot-gateway",
        description="Self-hosted Telegram and WhatsApp gateway for teams of agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="config file (default: $GATEWAY_CONFIG or ./config.yaml)"
    )
    common.add_argument("--data-dir", metavar="DIR", help="local state directory (default: ./data)")

    run = commands.add_parser("serve", parents=[common], help="run the gateway")
    run.add_argument("--host", help="address to listen on (default: 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default: 8000)")

    _add_account_commands(commands, common)

    config = commands.add_parser("config", help="look at the configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="show")
    config_commands.add_parser(
        "show",
        parents=[common],
        help="print the effective configuration (defaults, file, environment), secrets masked",
    )

    hook = commands.add_parser(
        "set-webhook",
        parents=[common],
        help="register webhooks at PUBLIC_URL (Telegram channels in webhook mode)",
    )
    hook.add_argument("--channel", help="only this channel (by name)")
    unhook = commands.add_parser(
        "delete-webhook",
        parents=[common],
        help="tell Telegram to stop calling the webhook, so that polling can start",
    )
    unhook.add_argument("--channel", help="only this channel (by name)")
    doctor = commands.add_parser(
        "doctor",
        parents=[common],
        help="check the installation: config, disk, database, each channel at its provider, "
        "PUBLIC_URL; exits 1 if anything is wrong",
    )
    doctor.add_argument("--json", action="store_true", help="one JSON document instead")
    _add_backup_commands(commands, common)
    return parser


def _add_backup_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    backup = commands.add_parser(
        "backup",
        parents=[common],
        help="write every collection (uploads included) to one archive, as of one moment, "
        "while the gateway serves",
    )
    backup.add_argument("--out", required=True, metavar="FILE", help="the archive to write")
    backup.add_argument(
        "--with-secrets",
        action="store_true",
        help="include the data dir's JWT secret, so that sign-ins survive a restore",
    )
    restore = commands.add_parser(
        "restore",
        parents=[common],
        help="write a backup into an empty database (stop the gateway first)",
    )
    restore.add_argument("--from", required=True, dest="source", metavar="FILE")
    restore.add_argument(
        "--replace", action="store_true", help="delete what the database holds first"
    )


def _version() -> str:
    try:
        return version("bot-gateway")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    return config.with_overrides(
        data_dir=args.data_dir,
        server__host=getattr(args, "host", None),
        server__port=getattr(args, "port", None),
    )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise GatewayError(
            "no terminal to ask for the password on: pipe it in with --password-stdin"
        )
    try:
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Password (again): ")
    except EOFError:  # Ctrl-D at the prompt
        raise GatewayError("no password given; nothing changed") from None
    if again != password:
        raise GatewayError("the passwords do not match")
    return password


async def _create_agent(
    config: Config, username: str, password: str, display_name: str, role: str | None
) -> None:
    # attach: if a gateway is running on this data dir, use its database.
    storage = open_storage(config, attach=True)
    try:
        await prepare(storage, config)
        # The first agent made here is the installation's admin, unless told otherwise.
        first = not await storage.agents.ever_existed()
        given = Role(role) if role else Role.ADMIN if first else Role.AGENT
        agent = await create_agent(storage.agents, username, password, display_name, role=given)
    finally:
        await storage.close()
    print(f"created {agent.role.value} {agent.username} ({agent.id})")


async def _reset_password(config: Config, username: str, password: str) -> None:
    storage = open_storage(config, attach=True)
    try:
        await prepare(storage, config)
        name = normalize_username(username)
        agent = await storage.agents.get_by_username(name)
        if agent is None:
            raise GatewayError(f"no agent named {name!r}")
        await update_agent(storage.agents, agent.id, {"password": password})
    finally:
        await storage.close()
    print(f"password of {agent.username} changed; its earlier sign-ins have ended")


def _webhook_channels(config: Config, only: str | None, *, register: bool) -> set[str]:
    """The names of the configured channels the command acts on: of a type that
    registers its own webhook, named ``only`` if given, and to register, in webhook
    mode. Said from the config alone, before any database or provider client starts."""
    from channels.registry import CHANNEL_TYPES

    names = set()
    for index, declared in enumerate(config.channels):
        kind = CHANNEL_TYPES.get(declared.type)
        if kind is None or not kind.registers_webhooks or only not in (None, declared.name):
            continue
        settings: Any = build_section(kind.Settings, declared.settings, f"channels[{index}].")
        if not register or kind.mode_of(settings) == "webhook":
            names.add(declared.name)
    if not names:
        named = f" named {only}" if only else ""
        how = " in webhook mode: set TELEGRAM_MODE=webhook (channels[].mode)" if register else ""
        raise GatewayError(f"no telegram channel{named}{how}")
    return names


async def _webhooks(config: Config, only: str | None, *, register: bool) -> None:
    """Register (or delete) the webhook of each channel that registers its own:
    to register, those in webhook mode, at PUBLIC_URL; to delete, any."""
    from gateway.channels import ChannelSet  # the channel clients load only when needed

    names = _webhook_channels(config, only, register=register)
    if register and not config.server.public_url:
        raise GatewayError("set PUBLIC_URL (server.public_url) to the gateway's public address")
    storage = open_storage(config, attach=True)
    try:
        await prepare(storage, config)
        channels = await ChannelSet.open(config, storage)
        try:
            chosen = [c for c in channels if c.name in names]
            if not chosen:  # each is off: disabled, or its token is not set
                why = "; ".join(f"{n}: {channels.off.get(n, 'off')}" for n in sorted(names))
                raise GatewayError(f"channel {why} (TELEGRAM_BOT_TOKEN is the default "
                                   "telegram channel's token)")  # fmt: skip
            for channel in chosen:
                try:
                    await (channel.register_webhook() if register else channel.delete_webhook())
                except Exception as exc:  # the provider's answer, or none: say which
                    reason = getattr(exc, "message", "") or type(exc).__name__
                    raise GatewayError(f"{channel.type} channel {channel.name}: {reason}") from exc
                done = f"set to {channel.webhook_url()}" if register else "deleted"
                print(f"{channel.type} channel {channel.name}: webhook {done}")
        finally:
            await channels.close()
    finally:
        await storage.close()


def _doctor(config: Config, args: argparse.Namespace) -> int:
    from gateway.doctor import examine  # the channel clients load only when needed

    source = str(resolve_config_path(args.config) or "the packaged defaults")
    checks = asyncio.run(examine(config, f"read from {source}"))
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [c.shown() for c in checks]}))
    else:
        print("\n".join(check.line() for check in checks))
    return 0 if all(check.ok for check in checks) else 1


async def _backup(config: Config, out: str, with_secrets: bool) -> None:
    from gateway.backup import back_up

    storage = open_storage(config, attach=True)  # a running gateway's, if there is one
    try:
        data_dir = config.data_dir if with_secrets else None
        manifest = await back_up(storage, Path(out), data_dir=data_dir, gateway_version=_version())
    finally:
        await storage.close()
    secrets = " and the JWT secret" if manifest.secrets else ""
    print(f"backed up {manifest.documents} documents of {len(manifest.collections)} "
          f"collections{secrets} to {out} (as of one moment: {manifest.consistency})")  # fmt: skip


async def _restore(config: Config, source: str, replace: bool) -> None:
    from gateway.backup import read_archive, restore
    from storage.backup import NotEmpty

    manifest = read_archive(Path(source))  # all of it checked before anything is written
    storage = open_storage(config)  # the data dir's own: no gateway may be running on it
    try:
        try:
            restored = await restore(storage, Path(source), manifest,
                                     data_dir=config.data_dir, replace=replace)  # fmt: skip
        except NotEmpty as exc:
            raise GatewayError(
                f"the database holds data ({exc}); restore into an empty one, or pass "
                "--replace to delete it first"
            ) from None
        await prepare(storage, config)  # its indexes, and the schema brought up to date
    finally:
        await storage.close()
    kept = (
        "sign-ins made before the backup still work"
        if restored.secrets and not config.auth.jwt_secret
        else "sign-ins made before the backup have ended: agents sign in again"
    )
    print(f"restored {manifest.documents} documents of {len(manifest.collections)} "
          f"collections from {source}, taken {manifest.created_at}; {kept}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _load(args)
    except ConfigError as exc:
        print(f"bot-gateway: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # The doctor's report is its output; what it starts to look need not be logged.
    level = "WARNING" if args.command == "doctor" else config.log.level
    logs.configure(level, config.log.format)
    try:
        if args.command == "serve":
            from bot_gateway.server import serve  # the channel clients load only to serve

            asyncio.run(serve(config))
        elif args.command == "create-agent":
            password = _read_password(args.password_stdin)
            asyncio.run(
                _create_agent(config, args.username, password, args.display_name, args.role)
            )
        elif args.command == "reset-password":
            password = _read_password(args.password_stdin)
            asyncio.run(_reset_password(config, args.username, password))
        elif args.command == "config":
            from channels.registry import CHANNEL_TYPES
            from gateway.channels import declared_channels
            from gateway.showconfig import render

            off = {d.name: why for d, _, _, why in declared_channels(config) if why}
            secrets = {t: c.secrets for t, c in CHANNEL_TYPES.items()}
            print(render(config, secrets, off), end="")
        elif args.command in ("set-webhook", "delete-webhook"):
            register = args.command == "set-webhook"
            asyncio.run(_webhooks(config, args.channel, register=register))
        elif args.command == "doctor":
            return _doctor(config, args)
        elif args.command == "backup":
            asyncio.run(_backup(config, args.out, args.with_secrets))
        elif args.command == "restore":
            asyncio.run(_restore(config, args.source, args.replace))
    except ConfigError as exc:  # found once channels are built
        print(f"bot-gateway: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (StorageUnavailable, GatewayError) as exc:
        print(f"bot-gateway: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
