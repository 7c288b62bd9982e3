"""The load generator: wrk, driving prepared requests that are each sent once.

Every request is prepared up front (a Telegram update with its own update_id, a
Twilio form with its own MessageSid and signature), so a run can count exactly
what was acknowledged and compare it with what was stored.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("load.lua")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Row:
    path: str
    headers: tuple[str, ...]  # values, in the order of the run's header names
    body: str


@dataclass(frozen=True)
class LoadResult:
    sent: int
    answered: int
    acked: int  # 2xx
    other_status: int
    socket_errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_seconds: float  # of the process under load, from /proc

    @property
    def rps(self) -> float:
        return self.answered / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.answered * 1e6


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench needs wrk: apt-get install wrk (Debian/Ubuntu)")
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid``, as the kernel counts it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def drive(
    base_url: str,
    header_names: Sequence[str],
    rows: Iterable[Row],
    workdir: Path,
    *,
    pid: int,
    connections: int = 16,
    threads: int = 2,
) -> LoadResult:
    """Send every row once over ``connections`` keep-alive connections."""
    rows_file = workdir / "rows.tsv"
    with rows_file.open("w") as out:
        for row in rows:
            fields = (row.path, *row.headers, row.body)
            assert not any("\t" in f or "\n" in f for f in fields), "rows are tab-separated"
            out.write("\t".join(fields) + "\n")
    env = {**os.environ, "BENCH_ROWS": str(rows_file), "BENCH_THREADS": str(threads)}
    command = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        "-d600s",  # a bound only: the script stops once every row is answered
        "--timeout",
        "30s",
        "-s",
        str(SCRIPT),
        base_url,
        "--",
        *header_names,
    ]
    before = cpu_seconds(pid)
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as wrk:
        assert wrk.stdout is not None
        finished = 0
        for line in wrk.stdout:
            if line.strip() == "thread done":
                finished += 1
                if finished == threads:
                    wrk.send_signal(signal.SIGINT)  # ends its sleep; it prints and exits
            elif line.startswith("{"):
                figures = json.loads(line)
    used = cpu_seconds(pid) - before
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk exited {wrk.returncode}")
    return LoadResult(
        sent=figures["sent"],
        answered=figures["answered"],
        acked=figures["acked"],
        other_status=figures["other_status"],
        socket_errors=figures["socket_errors"],
        seconds=figures["duration_us"] / 1e6,
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        max_ms=figures["max_us"] / 1000,
        cpu_seconds=used,
    )
