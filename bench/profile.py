"""Where an inbound webhook's CPU goes, in the gateway and in the embedded database.

    python -m bench.profile [--messages N] [--rounds R] [--top K] [--rate HZ] [--database]

Starts the embedded database (or uses MONGODB_URI), a bare Tornado JSON handler and
a real `bot-gateway serve` with a Telegram channel in webhook mode, signs one agent
in and holds one event stream open (as an inbox does), warms both up, then sends N
distinct Telegram webhooks through wrk (16 connections) to each. While the gateway's
load runs, py-spy samples it (``--rate`` per second, without pausing it).

Each round starts everything afresh; figures are the rounds' medians with their
min-max, and the profile is the last round's. Prints, against the targets of the
hot-path issue:
- the gateway's CPU per webhook, and its ratio to the bare handler's in this run
  (target: at most 3 x);
- the database's CPU per stored message (target: at most 1,500 us);
- ingest against the bare ceiling (at least 0.10 x) and its p99 (at most 100 ms),
  and whether every acknowledged webhook was stored;
- the top K functions by inclusive samples (their share of all samples in which
  the function was on the stack), and by self samples;
- with ``--database``, where the embedded database's own CPU goes (it is a Python
  program too): its top K functions by inclusive and by self samples. A second
  sampler takes CPU from the two under test, so the figures of such a run are not
  compared with those of a run without it.

Needs wrk (apt-get install wrk) and py-spy (pip install py-spy).
"""

from __future__ import annotations

import argparse
import json
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import threading
from collections import Counter
from pathlib import Path

from bench import ingest
from bench.harness import Api, database, machine, workdir
from bench.load import LoadResult, cpu_seconds, drive

DATABASE = "bench_profile"
TARGETS = {"cpu_ratio": 3.0, "db_us_per_message": 1500.0, "ratio": 0.10, "p99_ms": 100.0}
# "name (path/to/file.py:123)" as py-spy's raw format writes a frame
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
_OURS = ("bot_gateway/", "gateway/", "handlers/", "channels/", "storage/")


def _stream(port: int, token: str, events: queue.Queue[str]) -> socket.socket:
    """An agent's event stream, read in a thread: each event's type."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET /api/v1/events/ HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n".encode())

    def read() -> None:
        with sock.makefile("rb") as stream:
            for line in stream:
                if line.startswith(b"event: "):
                    events.put(line[7:].strip().decode())

    threading.Thread(target=read, daemon=True, name="event stream").start()
    return sock


def _frame(raw: str) -> str:
    """A frame without its line number, and with the path cut to the package."""
    match = _FRAME.match(raw)
    if match is None:
        return raw
    path = match["file"]
    for package in _OURS:
        at = path.rfind("/" + package)
        if at >= 0:
            path = path[at + 1 :]
            break
    else:
        path = path.rsplit("site-packages/", 1)[-1].rsplit("/lib/python3", 1)[-1]
    return f"{match['name']} ({path})"


def top_functions(
    raw: str, top: int, ours: tuple[str, ...] = _OURS
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """All samples, the ``top`` functions of ``ours`` (path prefixes) by inclusive
    samples (the event loop's own frames hold every sample and say nothing), and any
    ``top`` by self samples, from py-spy's raw output (one ``frame;frame;... count``
    line per distinct stack)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        n = int(count)
        total += n
        for name in set(frames):  # once per stack, however deep it recurses
            inclusive[name] += n
        own[frames[-1]] += n
    mine = [(name, n) for name, n in inclusive.most_common() if _is_ours(name, ours)]
    return total, mine[:top], own.most_common(top)


def _is_ours(frame: str, ours: tuple[str, ...]) -> bool:
    return frame.rpartition(" (")[2].startswith(ours)


def _profiled(pid: int, rate: int, output: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("bench.profile needs py-spy: pip install py-spy")
    command = [spy, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking"]
    command += ["--format", "raw", "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run(messages: int, top: int, rate: int, database_too: bool = False) -> dict:
    with workdir() as tmp_name, database(Path(tmp_name)) as (uri, label, db_pid):
        tmp = Path(tmp_name)
        with ingest.sides(uri, DATABASE, tmp) as running:
            bare_url, bare_pid, base, pid = (
                running.bare_url,
                running.bare_pid,
                running.base,
                running.pid,
            )
            api = Api(running.port)
            api.sign_up("bench", "bench password")  # one agent online: conversations assigned
            assert api.token
            events: queue.Queue[str] = queue.Queue()
            stream = _stream(running.port, api.token, events)
            warmup = max(500, messages // 10)
            headers = ingest.TELEGRAM_HEADERS
            drive(bare_url, headers, ingest.telegram_rows(warmup), tmp, pid=bare_pid)
            drive(base, headers, ingest.telegram_rows(warmup), tmp, pid=pid)
            rows = list(ingest.telegram_rows(messages, first=warmup + 1))
            bare = drive(bare_url, headers, rows, tmp, pid=bare_pid)
            db_before = cpu_seconds(db_pid) if db_pid is not None else 0.0
            output, db_output = tmp / "profile.txt", tmp / "db-profile.txt"
            spies = [_profiled(pid, rate, output)]
            if database_too and db_pid is not None:
                spies.append(_profiled(db_pid, rate, db_output))
            try:
                load = drive(base, headers, rows, tmp, pid=pid)
            finally:
                for spy in spies:
                    spy.send_signal(signal.SIGINT)
                failure = b"".join(spy.communicate(timeout=60)[1] for spy in spies)
            db_used = cpu_seconds(db_pid) - db_before if db_pid is not None else None
            stored = ingest.stored_inbound(uri, DATABASE, "telegram") - warmup
            stream.close()
            if not output.exists():
                raise SystemExit(f"py-spy wrote no profile: {failure.decode(errors='replace')}")
            profiles = {"gateway": top_functions(output.read_text(), top)}
            if db_output.exists():
                profiles["database"] = top_functions(db_output.read_text(), top, ("secantus",))
    return _figures(label, bare, load, stored, db_used, profiles, events.qsize())


def _figures(
    label: str,
    bare: LoadResult,
    load: LoadResult,
    stored: int,
    db_used: float | None,
    profiles: dict[str, tuple[int, list[tuple[str, int]], list[tuple[str, int]]]],
    events: int,
) -> dict:
    shares = {}
    for whose, (total, inclusive, own) in profiles.items():
        shares[whose] = {
            "samples": total,
            "inclusive": [(name, round(100 * n / max(total, 1), 1)) for name, n in inclusive],
            "self": [(name, round(100 * n / max(total, 1), 1)) for name, n in own],
        }
    return {
        "database": label,
        "machine": machine(),
        "bare_cpu_us": round(bare.cpu_us_per_request),
        "gateway_cpu_us": round(load.cpu_us_per_request),
        "cpu_ratio": round(load.cpu_us_per_request / bare.cpu_us_per_request, 2),
        "db_us_per_message": round(db_used / max(stored, 1) * 1e6) if db_used else None,
        "bare_rps": round(bare.rps),
        "rps": round(load.rps),
        "ratio": round(load.rps / bare.rps, 3),
        "p99_ms": round(load.p99_ms, 1),
        "stored_equals_acked": stored == load.acked == load.sent,
        "events_streamed": events,
        "profiles": shares,
    }


def report(figures: dict) -> None:
    print(f"{figures['database']}, {figures['machine']}")
    for key, target in TARGETS.items():
        value = figures[key]
        if value is None:
            continue
        kept = value <= target if key != "ratio" else value >= target
        bound = "at least" if key == "ratio" else "at most"
        low, high = figures.get(f"{key}_spread", [value, value])
        shown = f"{value:>8} ({low}-{high})"
        print(f"{key:>20}: {shown:<22} target {bound} {target}  {'ok' if kept else 'MISSED'}")
    for key in ("bare_cpu_us", "gateway_cpu_us", "bare_rps", "rps", "stored_equals_acked"):
        print(f"{key:>20}: {figures[key]!s:>8}")
    for process, profile in figures["profiles"].items():
        for title in ("inclusive", "self"):
            whose = "its own, inclusive" if title == "inclusive" else "any, self"
            print(f"\n{process}: top functions, {whose} ({profile['samples']} samples):")
            for name, share in profile[title]:
                print(f"  {share:5.1f} %  {name}")
    print(json.dumps({k: v for k, v in figures.items() if k != "profiles"}))


def medians(rounds: list[dict]) -> dict:
    """The last round, with each number the rounds' median and a flag all of theirs."""
    figures = dict(rounds[-1])
    for key, value in rounds[-1].items():
        values = [r[key] for r in rounds]
        if isinstance(value, bool):
            figures[key] = all(values)
        elif isinstance(value, int | float):
            figures[key] = statistics.median(values)
            figures[f"{key}_spread"] = [min(values), max(values)]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000, help="webhooks per side")
    parser.add_argument("--rounds", type=int, default=3, help="runs; figures are medians")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument(
        "--database", action="store_true", help="sample the embedded database's CPU too"
    )
    args = parser.parse_args()
    rounds = []
    for n in range(args.rounds):
        rounds.append(run(args.messages, args.top, args.rate, args.database))
        print(f"round {n + 1} of {args.rounds}: cpu_ratio {rounds[-1]['cpu_ratio']}", flush=True)
    report(medians(rounds))


if __name__ == "__main__":
    main()
