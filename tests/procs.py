"""Test helper: the processes whose command line mentions a text (to find and clean up what a test started)."""
from __future__ import annotations

import os
from pathlib import Path


def pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids
