"""Per-run peak memory in a process that runs several runs (a grid's Ray worker, `dr4sr compare`)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from dr4sr.train.worker import peak_memory_mb, reset_peak_memory


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the high-water mark reset is Linux's")
def test_a_run_reports_its_own_peak_not_an_earlier_runs():
    big = np.ones(400 * 2**20 // 8)  # an earlier run's 400 MB, touched, then freed
    earlier = rss_mb()
    del big
    assert peak_memory_mb(None)["peak_rss_mb"] >= earlier - 1  # without a reset the old peak stays
    reset_peak_memory()
    now = rss_mb()
    small = np.ones(50 * 2**20 // 8)  # this run's 50 MB
    peak = peak_memory_mb(None)["peak_rss_mb"]
    assert now + 45 <= peak + 1 and peak < earlier - 300, (now, peak, earlier)
    del small
