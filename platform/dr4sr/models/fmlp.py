"""FMLP-Rec (Zhou et al., WWW'22) with the paper's settings: 2 learnable frequency-filter layers.

Each layer: rFFT over the sequence axis, multiply by a learnable complex filter (max_len//2+1, d),
irFFT, dropout, residual + LayerNorm, then a GELU FFN d -> inner -> d with residual + LayerNorm.

The filter is global and non-causal (every output position sees every input position), so the model
is trained on one target per prefix ("last" mode, left-padded, as FMLP-Rec does) and the filter's
meaning depends on the transform length. We therefore always left-pad to `max_len` inside forward:
a batch padded to its own longest row would run a different (resampled) filter than evaluation.
Padding positions are not masked, exactly as in FMLP-Rec: they carry position embeddings and take
part in the filter; train and eval see the same layout, so this is consistent.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from dr4sr.models.base import Backbone, BuildContext, init_weights
from dr4sr.models.layers import Dropout


@dataclasses.dataclass
class FMLPConfig:
    hidden_size: int = 64
    num_layers: int = 2
    inner_size: int = 256  # FFN width (the paper's "hidden layers 256")
    dropout: float = 0.5
    layer_norm_eps: float = 1e-12

    def validate(self) -> None:
        from dr4sr.errors import ConfigError

        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
        for key in ("hidden_size", "num_layers", "inner_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1, got {getattr(self, key)}")


class FilterLayer(nn.Module):
    def __init__(self, cfg: FMLPConfig, max_len: int):
        super().__init__()
        self.max_len = max_len
        # real and imaginary parts; init as FMLP-Rec (N(0, 0.02))
        self.complex_weight = nn.Parameter(torch.randn(max_len // 2 + 1, cfg.hidden_size, 2) * 0.02)
        self.dropout = Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        freq = torch.fft.rfft(x, n=self.max_len, dim=1, norm="ortho")
        freq = freq * torch.view_as_complex(self.complex_weight)
        y = torch.fft.irfft(freq, n=self.max_len, dim=1, norm="ortho")
        return self.norm(self.dropout(y) + x)

    def last(self, x: torch.Tensor) -> torch.Tensor:
        """= forward(x)[:, -1] from the filter's time-domain kernel: (B, L, d) -> (B, d).

        The filter is a circular convolution with kernel g = irfft(W)/sqrt(L) (ortho norms), so the
        last output is sum_j x[j] g[L-1-j]: one weighted sum instead of two FFTs of every position.
        """
        g = torch.fft.irfft(torch.view_as_complex(self.complex_weight), n=self.max_len, dim=0, norm="ortho")
        y = (x * (g.flip(0) * self.max_len ** -0.5)[None]).sum(1)
        return self.norm(self.dropout(y) + x[:, -1])


class FeedForward(nn.Module):
    def __init__(self, cfg: FMLPConfig):
        super().__init__()
        self.up = nn.Linear(cfg.hidden_size, cfg.inner_size)
        self.down = nn.Linear(cfg.inner_size, cfg.hidden_size)
        self.dropout = Dropout(cfg.dropout)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.dropout(self.down(F.gelu(self.up(x)))) + x)


class FMLP(Backbone):
    training_mode = "last"
    padding = "left"

    def __init__(self, cfg: FMLPConfig, ctx: BuildContext):
        super().__init__(ctx.num_items, cfg.hidden_size)
        self.max_len = ctx.max_len
        self.position_embedding = nn.Embedding(ctx.max_len, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            nn.Sequential(FilterLayer(cfg, ctx.max_len), FeedForward(cfg)) for _ in range(cfg.num_layers))
        init_weights(self)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()  # padding row stays 0 (its gradient is masked)

    def _embed(self, seqs: torch.Tensor) -> torch.Tensor:
        length = seqs.size(1)
        if length > self.max_len:
            raise ValueError(f"FMLP got sequences of length {length} > max_len {self.max_len}")
        full = F.pad(seqs, (self.max_len - length, 0))  # left-pad to max_len: the filter's fixed length
        pos = torch.arange(self.max_len, device=seqs.device)
        return self.dropout(self.norm(self.item_embedding(full) + self.position_embedding(pos)[None]))

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """seqs: (B, L) left-padded, L <= max_len. Returns (B, L, d): the last L of max_len positions,
        or (B, 1, d) with `last_only` (training: one target per prefix, at its end)."""
        if last_only:
            return self.last_hidden(seqs, lengths)[:, None]
        x = self._embed(seqs)
        for layer in self.layers:
            x = layer(x)
        return x[:, self.max_len - seqs.size(1):]

    def last_hidden(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """= forward(...)[:, -1], with the last layer (filter and FFN) at the last position only:
        a training step costs ~35% less than running every position through it (backbones.txt)."""
        x = self._embed(seqs)
        for layer in self.layers[:-1]:
            x = layer(x)
        filt, ffn = self.layers[-1]
        return ffn(filt.last(x))
