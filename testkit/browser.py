"""Debian's Chromium for the browser tests and benchmarks (.ci/run installs it; GitHub's
runners come with Chrome): where it is, and the flags that keep it quiet here."""

from __future__ import annotations

import shutil

CHROMIUM = next(
    filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
)
# As root (CI) Chromium needs --no-sandbox; the rest keep it off this machine's closed
# network (it would try Google's hosts at every start).
QUIET = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Every host but this machine resolves to nothing: a page must not need one.
LOOPBACK_ONLY = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
