"""Shared fixtures: one Ray instance per test session, tiny datasets with learnable structure."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # Ray must never contact an outside host
# Ray workers run beside the test process on 2 cores: with 2 OpenMP threads each, spin-waiting made
# torch steps ~10x slower under that contention; one thread per process is stable.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DR4SR_DATA_DIR", str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

import pytest  # noqa: E402
from tiny_data import make_chain_sequences, write_text_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ["DR4SR_DATA_DIR"])




@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return write_text_dataset(tmp_path / "tiny.txt", make_chain_sequences())


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray
