"""Debian's Chromium under Playwright, for the browser tests and the console's screenshots.

`playwright install` is never used: its download host is not reachable. Without Chromium the browser
tests skip saying why, except under CI, where they must run and fail instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying hosts this machine cannot reach.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


def chromium_executable() -> str | None:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium")


EXECUTABLE = chromium_executable()
MISSING = (
    "Chromium is not installed (make install installs Debian's chromium when it can): "
    f"no {CHROMIUM} and no chromium on PATH; as root: apt-get update && apt-get install -y chromium"
)
