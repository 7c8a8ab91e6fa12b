"""A regenerator pre-trained once per session on the planted-pattern fixture (about 10-20 s)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from planted import FAST, NUM_ITEMS, SMALL, planted_data, planted_pairs, planted_splits  # noqa: E402,F401

from dr4sr.regen.pretrain import PretrainInput, load_regenerator, pretrain_local  # noqa: E402


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
