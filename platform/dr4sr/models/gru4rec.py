"""GRU4Rec (Hidasi et al., ICLR'16) with the paper's settings: emb 64 -> dropout -> 2-layer GRU 256 -> 64."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dr4sr.models.base import Backbone, BuildContext
from dr4sr.models.layers import Dropout


@dataclasses.dataclass
class GRU4RecConfig:
    hidden_size: int = 64  # embedding / output size
    gru_size: int = 256
    num_layers: int = 2
    dropout: float = 0.2

    def validate(self) -> None:
        from dr4sr.errors import ConfigError

        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


class GRU4Rec(Backbone):
    def __init__(self, cfg: GRU4RecConfig, ctx: BuildContext):
        super().__init__(ctx.num_items, cfg.hidden_size)
        self.dropout = Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.hidden_size, cfg.gru_size, cfg.num_layers, batch_first=True, bias=False)
        self.proj = nn.Linear(cfg.gru_size, cfg.hidden_size)
        nn.init.xavier_normal_(self.item_embedding.weight)
        for name, p in self.gru.named_parameters():
            nn.init.xavier_uniform_(p) if "weight_ih" in name else nn.init.orthogonal_(p)

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # right padding: outputs at real positions never depend on the padding after them
        out, _ = self.gru(self.dropout(self.item_embedding(seqs)))
        return self.proj(out)
