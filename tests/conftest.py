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

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ["DR4SR_DATA_DIR"])


def make_chain_sequences(num_users: int = 60, num_items: int = 40, min_len: int = 5, max_len: int = 12,
                         seed: int = 0) -> list[list[int]]:
    """Each user walks item chains i -> i+1 -> ... (mod num_items): next-item structure a model can learn."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(num_users):
        start = int(rng.integers(0, num_items))
        n = int(rng.integers(min_len, max_len + 1))
        seqs.append([(start + j) % num_items + 1 for j in range(n)])
    return seqs


def write_text_dataset(path: Path, seqs: list[list[int]]) -> Path:
    path.write_text("".join(f"{u} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(seqs, start=1)))
    return path


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return write_text_dataset(tmp_path / "tiny.txt", make_chain_sequences())


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray
