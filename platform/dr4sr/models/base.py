"""The backbone contract shared by every target model.

A backbone maps a batch of item sequences to one hidden state per position and scores hidden states
against the item embeddings. Losses, per-position weights, augmentations and the train loop live
outside it (dr4sr.train), so new backbones plug into the same loop.
"""
from __future__ import annotations

import dataclasses
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from dr4sr.data.batching import Mode
from dr4sr.data.graph import ItemGraph


@dataclasses.dataclass
class BuildContext:
    """What a backbone may need besides its config: the vocabulary, the data, and what the caller derived
    from the data for it (GCE-GNN's item graph); a backbone never reads files or the artifact store."""
    num_items: int
    max_len: int = 50
    original_train: Sequence[np.ndarray] | None = None  # the users' training sequences
    training_rows: Sequence[np.ndarray] | None = None  # the rows being trained on (regenerated data etc.)
    item_graph: ItemGraph | None = None  # for graph backbones: see BackboneSpec.item_graph


class Backbone(nn.Module):
    # "seq2seq": every position predicts the next item (causal models).
    # "last": only the final position is trained, one sample per prefix (non-causal models, FMLP-Rec);
    # such a model's forward takes `last_only=True` and then returns (B, 1, d) for that position.
    # a dr4sr.data.batching.Cloze: the batcher masks items and they are the targets (BERT4Rec).
    training_mode: Mode = "seq2seq"
    # how sequences are padded in a batch; "left" puts the last real item at position L-1
    padding: Literal["right", "left"] = "right"

    def __init__(self, num_items: int, hidden_size: int):
        super().__init__()
        self.num_items = num_items
        self.hidden_size = hidden_size
        self.item_embedding = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """seqs: (B, L) item ids, 0 = padding; lengths: (B,). Returns hidden states (B, L, d)."""
        raise NotImplementedError

    def item_weights(self) -> torch.Tensor:
        """Output item embeddings (num_items + 1, d); row 0 is padding and is masked at ranking."""
        return self.item_embedding.weight

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_weights().t()

    def last_hidden(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden state at the last real position of each sequence: the user representation."""
        h = self.forward(seqs, lengths)
        if self.padding == "left":
            return h[:, -1]
        idx = (lengths - 1).clamp(min=0)
        return h[torch.arange(h.size(0), device=h.device), idx]


def causal_mask(length: int, device: torch.device) -> torch.Tensor:
    """Boolean (L, L) mask, True where attention is NOT allowed (future positions)."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal-like init used by RecBole/RecStudio transformer recommenders."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
