"""A regenerator pre-trained once per session on the planted-pattern fixture (about 10-20 s)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from planted import NUM_ITEMS, planted_data, planted_pairs  # noqa: E402

from dr4sr.data.splits import Splits  # noqa: E402
from dr4sr.regen.config import PretrainConfig, RegeneratorConfig  # noqa: E402
from dr4sr.regen.pretrain import PretrainInput, load_regenerator, pretrain_local  # noqa: E402

SMALL = RegeneratorConfig(hidden_size=32, inner_size=64, dropout=0.1, k=3, max_positions=20)
FAST = PretrainConfig(max_epochs=16, batch_size=64, lr=3e-3, patience=50, device="cpu")


def planted_splits(seqs, users) -> Splits:
    n = len(seqs)
    return Splits(users=users, train=seqs, train_full=seqs, valid_target=np.ones(n, dtype=np.int64),
                  test_target=np.ones(n, dtype=np.int64), num_items=NUM_ITEMS, max_len=50,
                  fingerprint=f"planted-{n}")


@pytest.fixture(autouse=True)
def one_thread():
    """Small ops on a shared 2-core machine: 2 intra-op threads were 16x slower than 1 under load."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def planted():
    seqs, users, which = planted_data(400)
    return seqs, users, which


@pytest.fixture(scope="session")
def trained(planted):
    """(model, fit output) of the small regenerator trained on the planted pairs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    seqs, users, which = planted
    train, valid = planted_pairs(seqs, users, which).split(0.05, 0)
    out = pretrain_local(PretrainInput(SMALL, FAST, NUM_ITEMS, train, valid), log=lambda *_: None)
    torch.set_num_threads(before)
    return load_regenerator(out["model_state"], SMALL, NUM_ITEMS), out
