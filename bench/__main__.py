"""The gateway's speed and memory, against a bare Tornado handler measured in the same run.

    python -m bench [--quick]

Starts the embedded database (or uses MONGODB_URI), seeds messages for the list
queries, starts a bare Tornado JSON handler and a real `bot-gateway serve`, and
drives both with wrk on 127.0.0.1. Prints a table, then one JSON line with every
figure. --quick runs in under a minute with fewer requests and messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from bench import ingest, list_messages, outbound
from bench.harness import Api, ceiling, database, gateway, machine, workdir
from bench.load import LoadResult, cpu_seconds, drive, rss_mb
from bench.providers import fake_bot_api

DATABASE = "bench"
# name: (quick, full)
SIZES = {
    "warmup": (1_000, 5_000),
    "telegram": (6_000, 60_000),
    "twilio": (3_000, 30_000),
    "enqueue": (200, 2_000),
    "dispatch": (2_000, 10_000),  # a backlog across 1,000 contacts (200 in quick mode)
    "list_messages": (10_000, 200_000),
}
ROUNDS = {True: 2, False: 4}  # --quick: turns of Telegram vs the bare handler
REFERENCE = {  # the Django project on this machine class (issue 7)
    "telegram_rps": 15,
    "telegram_p99_ms": 1900,
    "twilio_rps": 99,
    "twilio_p99_ms": 270,
    "list_p50_ms": 51,
    "list_queries": 23,
    "rss_mb": 300,
}
TARGETS = {
    "cpu_ratio": 2.0,  # at most
    "ratio": 0.25,  # at least
    "ingest_p99_ms": 50,
    "enqueue_p99_ms": 20,
    "list_p50_ms": 10,
    "rss_mb_after": 120,
    "round_trips_per_message": 3,  # at most, the enqueue included
    "dispatch_ratio": 0.5,  # at least, of the same run's Telegram ingest
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests: under a minute")
    args = parser.parse_args()
    size = {name: pair[0 if args.quick else 1] for name, pair in SIZES.items()}
    started = time.monotonic()
    with workdir() as tmp, database(Path(tmp)) as (uri, label, db_pid):
        figures = run(uri, db_pid, Path(tmp), size, args.quick)
    figures.update(
        mode="quick" if args.quick else "full",
        database=label,
        machine=machine(),
        seconds=round(time.monotonic() - started),
    )
    report(figures)


def run(uri: str, db_pid: int | None, tmp: Path, size: dict[str, int], quick: bool) -> dict:
    f: dict[str, Any] = {}
    contacts = asyncio.run(list_messages.seed(uri, DATABASE, size["list_messages"]))
    with (
        ceiling() as (bare_port, bare_pid),
        fake_bot_api(ingest.TELEGRAM_TOKEN) as bot_api,
        gateway(uri, DATABASE, tmp, channels=ingest.channels_yaml(bot_api.base_url)) as (
            port,
            pid,
        ),
    ):
        bare_url, base = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{port}"
        f["rss_mb_idle"] = rss_mb(pid)
        api = Api(port)
        api.sign_up("bench", "bench password")  # available: new contacts are assigned
        depth_figures = list_messages.measure_all(
            api, uri, contacts[0], size["list_messages"], quick
        )
        f.update(_prefixed("list", depth_figures))

        # Telegram and the bare handler take turns, so a machine that slows down
        # for a while slows both: the ratios compare like with like.
        warmup, rounds = size["warmup"], ROUNDS[quick]
        per_round = size["telegram"] // rounds
        drive(bare_url, ingest.TELEGRAM_HEADERS, ingest.telegram_rows(warmup), tmp, pid=bare_pid)
        drive(base, ingest.TELEGRAM_HEADERS, ingest.telegram_rows(warmup), tmp, pid=pid)
        bare, telegram = [], []
        for n in range(rounds):
            rows = ingest.telegram_rows(per_round, first=1 + warmup + n * per_round)
            bare.append(drive(bare_url, ingest.TELEGRAM_HEADERS, rows, tmp, pid=bare_pid))
            rows = ingest.telegram_rows(per_round, first=1 + warmup + n * per_round)
            telegram.append(drive(base, ingest.TELEGRAM_HEADERS, rows, tmp, pid=pid))
        ceiling_run = combine(bare)
        f["ceiling_rps"] = round(ceiling_run.rps)
        f["ceiling_p99_ms"] = round(ceiling_run.p99_ms, 2)
        f["ceiling_cpu_us_per_request"] = round(ceiling_run.cpu_us_per_request)
        stored = ingest.stored_inbound(uri, DATABASE, "telegram") - warmup
        f.update(
            _prefixed("telegram", ingest.Ingest(combine(telegram), stored).figures(ceiling_run))
        )

        rows = list(ingest.twilio_rows(warmup + size["twilio"], base))
        drive(base, ingest.TWILIO_HEADERS, rows[:warmup], tmp, pid=pid)
        twilio = drive(base, ingest.TWILIO_HEADERS, rows[warmup:], tmp, pid=pid)
        stored = ingest.stored_inbound(uri, DATABASE, "whatsapp") - warmup
        f.update(_prefixed("twilio", ingest.Ingest(twilio, stored).figures(ceiling_run)))

        chats = telegram_contacts(uri)
        f.update(_prefixed("enqueue", outbound.enqueue_latency(api, chats, size["enqueue"])))
        outbound.wait_for_sends(bot_api, size["enqueue"], timeout=120)
        token = api.token or ""
        backlog_contacts = chats[: size["dispatch"] // 10]
        f.update(
            outbound.backlog_drain(
                port, token, pid, backlog_contacts, size["dispatch"], bot_api, tmp, db_pid
            )
        )
        f["dispatch_ratio"] = round(f["dispatch_per_second"] / f["telegram_rps"], 2)
        f["rss_mb_after"] = rss_mb(pid)
        f["gateway_cpu_seconds"] = round(cpu_seconds(pid), 1)
    if db_pid is not None:
        f["db_rss_mb_after"] = rss_mb(db_pid)
        f["db_cpu_seconds"] = round(cpu_seconds(db_pid), 1)
    return headline(f)


def combine(runs: list[LoadResult]) -> LoadResult:
    """Rounds as one run: totals for counts, time and CPU; the median round's latencies."""
    middle = sorted(runs, key=lambda r: r.p99_ms)[len(runs) // 2]
    return LoadResult(
        sent=sum(r.sent for r in runs),
        answered=sum(r.answered for r in runs),
        acked=sum(r.acked for r in runs),
        other_status=sum(r.other_status for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        seconds=sum(r.seconds for r in runs),
        p50_ms=middle.p50_ms,
        p99_ms=middle.p99_ms,
        max_ms=max(r.max_ms for r in runs),
        cpu_seconds=sum(r.cpu_seconds for r in runs),
    )


def telegram_contacts(uri: str) -> list[str]:
    with MongoClient(uri) as client:
        db = client[DATABASE]
        channel = ingest.channel_id(db, "telegram")
        return [c["_id"] for c in db.contacts.find({"channel_id": channel}, {"_id": 1})]


def _prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):  # list figures: {page_1: {p50_ms, ...}}
            for inner, figure in value.items():
                flat[f"{prefix}_{key}_{inner}"] = figure
        else:
            flat[f"{prefix}_{key}"] = value
    return flat


def headline(f: dict[str, Any]) -> dict[str, Any]:
    """The issue's named figures, from the Telegram run (the busier route)."""
    deep = next(k for k in f if k.startswith("list_page_at_") and k.endswith("_p50_ms"))
    return {
        "ingest_rps": f["telegram_rps"],
        "ingest_p99_ms": f["telegram_p99_ms"],
        "ceiling_rps": f["ceiling_rps"],
        "ratio": f["telegram_ratio"],
        "cpu_us_per_webhook": f["telegram_cpu_us_per_webhook"],
        "ceiling_cpu_us_per_request": f["ceiling_cpu_us_per_request"],
        "cpu_ratio": round(f["telegram_cpu_us_per_webhook"] / f["ceiling_cpu_us_per_request"], 2),
        "stored_equals_acked": f["telegram_stored_equals_acked"]
        and f["twilio_stored_equals_acked"],
        "enqueue_p99_ms": f["enqueue_p99_ms"],
        "list_p50_ms_first": f["list_page_1_p50_ms"],
        "list_p50_ms_deep": f[deep],
        "list_p50_ms_contact": f["list_contact_page_1_p50_ms"],
        "rss_mb_after": f["rss_mb_after"],
        **f,
    }


def report(f: dict[str, Any]) -> None:
    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    rows = [
        (
            "bare Tornado ceiling",
            f"{f['ceiling_rps']:,} req/s",
            f"p99 {f['ceiling_p99_ms']} ms",
            f"{f['ceiling_cpu_us_per_request']} us CPU/req",
            "",
        ),
        (
            "Telegram webhook ingest",
            f"{f['telegram_rps']:,} req/s",
            f"p99 {f['telegram_p99_ms']} ms",
            f"{f['telegram_cpu_us_per_webhook']} us CPU/req",
            f"ref {REFERENCE['telegram_rps']} req/s, p99 {REFERENCE['telegram_p99_ms']} ms",
        ),
        (
            "Twilio webhook ingest",
            f"{f['twilio_rps']:,} req/s",
            f"p99 {f['twilio_p99_ms']} ms",
            f"{f['twilio_cpu_us_per_webhook']} us CPU/req",
            f"ref {REFERENCE['twilio_rps']} req/s, p99 {REFERENCE['twilio_p99_ms']} ms",
        ),
        (
            "POST /api/v1/messages/",
            f"p50 {f['enqueue_p50_ms']} ms",
            f"p99 {f['enqueue_p99_ms']} ms",
            "",
            f"burst {f['enqueue_burst_rps']:,} req/s",
        ),
        (
            "dispatcher to fake Bot API",
            f"{f['dispatch_per_second']:,} msg/s",
            f"{f['round_trips_per_message']} db trips/msg",
            f"{f['dispatch_ratio']}x ingest",
            "rate limits off, backlog",
        ),
        (
            "list page 1",
            f"p50 {f['list_p50_ms_first']} ms",
            f"p99 {f['list_page_1_p99_ms']} ms",
            f"{f['list_page_1_queries_per_request']} queries",
            f"ref p50 {REFERENCE['list_p50_ms']} ms, {REFERENCE['list_queries']} queries",
        ),
        ("list deep cursor page", f"p50 {f['list_p50_ms_deep']} ms", "", "", ""),
        ("list one contact", f"p50 {f['list_p50_ms_contact']} ms", "", "", ""),
        (
            "gateway RSS",
            f"{f['rss_mb_idle']} MB idle",
            f"{f['rss_mb_after']} MB after",
            f"db {f.get('db_rss_mb_after', '-')} MB",
            f"ref ~{REFERENCE['rss_mb']} MB in all",
        ),
    ]
    print(f"\nbot-gateway bench ({f['mode']}), {f['database']}, {f['machine']}, {f['seconds']} s")
    for row in rows:
        print(f"  {row[0]:<28}{row[1]:>16}{row[2]:>18}{row[3]:>20}   {row[4]}")
    checks = [
        (
            "gateway CPU per webhook <= 2.0x bare",
            f["cpu_ratio"] <= TARGETS["cpu_ratio"],
            f"{f['cpu_ratio']}x",
        ),
        ("ingest >= 0.25x bare ceiling", f["ratio"] >= TARGETS["ratio"], f"{f['ratio']}x"),
        (
            "ingest p99 <= 50 ms",
            f["ingest_p99_ms"] <= TARGETS["ingest_p99_ms"],
            f"{f['ingest_p99_ms']} ms",
        ),
        ("stored == acknowledged", f["stored_equals_acked"], str(f["stored_equals_acked"])),
        (
            "enqueue p99 <= 20 ms",
            f["enqueue_p99_ms"] <= TARGETS["enqueue_p99_ms"],
            f"{f['enqueue_p99_ms']} ms",
        ),
        (
            "list p50 <= 10 ms at any depth",
            max(f["list_p50_ms_first"], f["list_p50_ms_deep"], f["list_p50_ms_contact"])
            <= TARGETS["list_p50_ms"],
            f"{max(f['list_p50_ms_first'], f['list_p50_ms_deep'], f['list_p50_ms_contact'])} ms",
        ),
        (
            "dispatch <= 3 db round trips per message",
            f["round_trips_per_message"] <= TARGETS["round_trips_per_message"],
            f"{f['round_trips_per_message']}",
        ),
        (
            "dispatch >= 0.5x Telegram ingest",
            f["dispatch_ratio"] >= TARGETS["dispatch_ratio"],
            f"{f['dispatch_ratio']}x",
        ),
        (
            "gateway RSS after <= 120 MB",
            f["rss_mb_after"] <= TARGETS["rss_mb_after"],
            f"{f['rss_mb_after']} MB",
        ),
    ]
    print("targets:")
    for name, ok, value in checks:
        print(f"  {verdict(ok):<7}{name:<40}{value}")
    print(json.dumps(f))


if __name__ == "__main__":
    main()
