"""The gateway's memory at rest, by which channel types are on.

    python -m bench.footprint

Starts the embedded database (or uses MONGODB_URI) and a real `bot-gateway serve`
twice: with the mock and WhatsApp channels only, then with Telegram too. Prints the
resident memory of the gateway (and the database) once `/readyz` answers and the
process has been idle for a moment, against the targets: at most 80 MB without
Telegram, and at most aiogram's own import cost plus 40 MB with it. Takes ~20 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench import ingest
from bench.harness import database, gateway, machine, workdir
from bench.load import rss_mb

DATABASE = "bench_footprint"
IDLE_SECONDS = 3.0  # start-up work (indexes, leases, the first sweep) is over by then
TARGET_MB = 80.0  # mock and WhatsApp on
TELEGRAM_MARGIN_MB = 40.0  # over what importing aiogram alone costs
TELEGRAM_CLIENT = "aiogram, aiogram.client.session.aiohttp"  # what the channel imports

MOCK = {"name": "mock", "type": "mock", "secret": "bench-mock-secret"}
WHATSAPP = {
    "name": "whatsapp",
    "type": "whatsapp",
    "account_sid": ingest.TWILIO_SID,
    "auth_token": ingest.TWILIO_TOKEN,
    "from_number": ingest.TWILIO_FROM,
    "api_base": "http://127.0.0.1:9",
}
# In webhook mode without a public URL it makes no call: only its client is built.
TELEGRAM = {"name": "telegram", "type": "telegram", "token": ingest.TELEGRAM_TOKEN,
            "mode": "webhook", "webhook_secret": ingest.TELEGRAM_SECRET}  # fmt: skip


def main() -> None:
    figures: dict[str, float | str] = {"machine": machine()}
    with workdir() as tmp, database(Path(tmp)) as (uri, label, db_pid):
        figures["database"] = label
        for name, channels in (("without_telegram", [MOCK, WHATSAPP]),
                               ("with_telegram", [MOCK, WHATSAPP, TELEGRAM])):  # fmt: skip
            with gateway(uri, DATABASE, Path(tmp), channels=json.dumps(channels)) as (port, pid):
                _until_ready(port)
                time.sleep(IDLE_SECONDS)  # at rest: what it holds, not what it is doing
                figures[f"rss_mb_{name}"] = rss_mb(pid)
                if db_pid is not None:
                    figures[f"db_rss_mb_{name}"] = rss_mb(db_pid)
    figures["aiogram_import_mb"] = import_cost(TELEGRAM_CLIENT)
    figures["python_mb"] = import_cost("")
    report(figures)


def _until_ready(port: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not become ready")
        time.sleep(0.1)


def import_cost(modules: str) -> float:
    """Resident memory of a fresh Python that imported ``modules`` (nothing: bare)."""
    # VmRSS, not ru_maxrss: a child keeps the peak its forked parent had before exec.
    code = (f"import {modules}\n" if modules else "") + (
        "from pathlib import Path\n"
        "print(next(l.split()[1] for l in Path('/proc/self/status').read_text().splitlines()"
        " if l.startswith('VmRSS:')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    return round(int(out.stdout) / 1024, 1)


def report(f: dict[str, float | str]) -> None:
    without, with_telegram = float(f["rss_mb_without_telegram"]), float(f["rss_mb_with_telegram"])
    telegram_target = float(f["aiogram_import_mb"]) + TELEGRAM_MARGIN_MB
    rows = [
        ("gateway, mock + WhatsApp", f"{without} MB", f"<= {TARGET_MB:g} MB",
         without <= TARGET_MB),
        ("gateway, + Telegram", f"{with_telegram} MB",
         f"<= aiogram's {f['aiogram_import_mb']} MB + {TELEGRAM_MARGIN_MB:g}",
         with_telegram <= telegram_target),
    ]  # fmt: skip
    print(f"{f['machine']}, {f['database']}; bare Python {f['python_mb']} MB")
    for name, figure, target, met in rows:
        print(f"  {name:<28} {figure:>10}   target {target:<30} {'met' if met else 'MISSED'}")
    for key in ("db_rss_mb_without_telegram", "db_rss_mb_with_telegram"):
        if key in f:
            print(f"  {'database, ' + key.split('_', 3)[3].replace('_', ' '):<28} {f[key]:>7} MB")
    print(json.dumps(f))


if __name__ == "__main__":
    main()
