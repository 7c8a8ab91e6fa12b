"""SASRec (Kang & McAuley, ICDM'18) as the paper ran it: post-LN transformer, learned positions."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from dr4sr.models.base import Backbone, BuildContext, causal_mask, init_weights
from dr4sr.models.layers import Dropout, encoder_forward


@dataclasses.dataclass
class SASRecConfig:
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    inner_size: int = 128
    dropout: float = 0.5
    activation: str = "gelu"
    layer_norm_eps: float = 1e-12

    def validate(self) -> None:
        from dr4sr.errors import ConfigError

        if self.hidden_size % self.num_heads:
            raise ConfigError(f"model.hidden_size ({self.hidden_size}) must be divisible by "
                              f"model.num_heads ({self.num_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ("gelu", "relu"):
            raise ConfigError(f"model.activation must be 'gelu' or 'relu', got {self.activation!r}")


class SASRecEncoder(nn.Module):
    """Item + position embeddings -> causal transformer; reused by GCE-GNN and CL4SRec, and bidirectional
    (`causal=False`, padding keys blocked) by BERT4Rec."""

    def __init__(self, cfg, max_len: int, causal: bool = True):
        super().__init__()
        self.causal = causal
        self.position_embedding = nn.Embedding(max_len, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.hidden_size, cfg.num_heads, cfg.inner_size, cfg.dropout, activation=cfg.activation,
            layer_norm_eps=cfg.layer_norm_eps, batch_first=True, norm_first=False)
        self.layers = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)

    def forward(self, item_emb: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
        length = item_emb.size(1)
        pos = torch.arange(length, device=item_emb.device)
        x = self.dropout(self.norm(item_emb + self.position_embedding(pos)[None]))
        if not self.causal:  # every position attends to every real one, before and after it
            return encoder_forward(self.layers, x, key_padding_mask=padding)
        # right padding + causal mask: real positions never see padding, so no key-padding mask
        return encoder_forward(self.layers, x, causal_mask(length, x.device), is_causal=True)


class SASRec(Backbone):
    def __init__(self, cfg: SASRecConfig, ctx: BuildContext):
        super().__init__(ctx.num_items, cfg.hidden_size)
        self.encoder = SASRecEncoder(cfg, ctx.max_len)
        init_weights(self)

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.item_embedding(seqs))
