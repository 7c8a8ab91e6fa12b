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


class OwnRayProcess:
    """A command (e.g. `dr4sr tune`) in its own session whose Ray lives in its own temp folder (never the
    machine's /tmp/ray, where other Ray jobs may run); its leftovers are killed by that folder's name."""

    def __init__(self, cmd: list[str], env: dict | None = None):
        import subprocess
        import tempfile

        self.temp = tempfile.mkdtemp(prefix="dr4sr-rt-", dir="/tmp")  # short: Ray's sockets live there
        env = {k: v for k, v in (env or os.environ).items() if not k.startswith("RAY_")}
        env.update(RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=self.temp)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)

    def wait_for(self, condition, timeout: float = 600) -> None:
        import time

        import pytest

        deadline = time.time() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"the command ended first ({self.proc.returncode}): {self.proc.communicate()}")
            if time.time() > deadline:
                pytest.fail("timed out waiting for the command")
            time.sleep(0.2)

    def finish(self, timeout: float = 900) -> tuple[int, str, str]:
        import shutil
        import signal

        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            for pid in pids_mentioning(self.temp):
                os.kill(pid, signal.SIGKILL)
            shutil.rmtree(self.temp, ignore_errors=True)
        return self.proc.returncode, out, err
