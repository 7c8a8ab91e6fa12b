"""BERT4Rec (Sun et al., CIKM'19): a bidirectional transformer trained on the Cloze task.

Model: item + learned position embeddings -> LayerNorm -> dropout -> post-LN transformer layers with no
causal mask (only padding keys are blocked) -> output head (Linear, GELU, LayerNorm) whose states are
scored against the same item embeddings. The original also adds a per-item output bias; the backbone
contract scores by a dot product with the item embeddings, so it is left out.

[MASK] = num_items + 1 is an input row of the embedding table and never a candidate: `item_weights`
stops at num_items, so it is neither scored nor recommended (padding, row 0, is masked at ranking).

Training: `training_mode` is a dr4sr.data.batching.Cloze built from this config. Each item is masked
with probability `mask_prob` (at least one per row); with probability `last_prob` a row masks only its
last item instead, as the original code adds one "mask last" copy of every sequence to its ten randomly
masked ones (about 1 in 11 instances). The masked items are the targets of the training loop's loss
(train.loss: CE over all items in configs/bert4rec.yaml), so DR4SR+'s per-target weights fall on them.

Scoring: `last_hidden` appends [MASK] after the history (a row already at max_len drops its oldest
item) and returns the state at that position; evaluation ranks every item from it.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from dr4sr.data.batching import Cloze
from dr4sr.models.base import Backbone, BuildContext, init_weights
from dr4sr.models.sasrec import SASRecConfig, SASRecEncoder


@dataclasses.dataclass
class BERT4RecConfig(SASRecConfig):
    # hidden_size, num_layers, num_heads, activation, layer_norm_eps as SASRec; these differ:
    inner_size: int = 256  # FFN width 4d, as BERT
    dropout: float = 0.2
    mask_prob: float = 0.2  # chance each item is masked (a row with none drawn masks one)
    last_prob: float = 0.1  # chance a row masks only its last item (the next-item task)

    def validate(self) -> None:
        from dr4sr.errors import ConfigError

        super().validate()
        if not 0.0 < self.mask_prob <= 1.0:
            raise ConfigError(f"model.mask_prob must be in (0, 1], got {self.mask_prob}")
        if not 0.0 <= self.last_prob <= 1.0:
            raise ConfigError(f"model.last_prob must be in [0, 1], got {self.last_prob}")

def append_mask(seqs: torch.Tensor, lengths: torch.Tensor | None, mask_token: int,
                max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded rows (B, W), W <= max_len -> [MASK] after each row's last item; a row already at
    max_len drops its oldest item. Returns (rows padded to their own longest, lengths)."""
    if lengths is None:
        lengths = (seqs > 0).sum(1)
    rows = torch.arange(seqs.size(0), device=seqs.device)
    out = F.pad(seqs, (0, 1))
    out[rows, lengths] = mask_token
    lengths = lengths + 1
    full = lengths > max_len
    if bool(full.any()):
        out[full] = F.pad(out[full][:, 1:], (0, 1))
        lengths = lengths.clamp(max=max_len)
    return out[:, : int(lengths.max())], lengths

class BERT4Rec(Backbone):
    padding = "right"

    def __init__(self, cfg: BERT4RecConfig, ctx: BuildContext):
        super().__init__(ctx.num_items, cfg.hidden_size)
        self.max_len = ctx.max_len
        # rows: 0 padding, 1..num_items items, num_items + 1 [MASK]
        self.item_embedding = nn.Embedding(ctx.num_items + 2, cfg.hidden_size, padding_idx=0)
        self.encoder = SASRecEncoder(cfg, ctx.max_len, causal=False)
        self.head = nn.Sequential(nn.Linear(cfg.hidden_size, cfg.hidden_size), nn.GELU(),
                                  nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps))
        init_weights(self)
        self.training_mode = Cloze(self.mask_token, cfg.mask_prob, cfg.last_prob)

    @property
    def mask_token(self) -> int:
        return self.num_items + 1

    def item_weights(self) -> torch.Tensor:
        return self.item_embedding.weight[: self.num_items + 1]

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """seqs: (B, L) right-padded, L <= max_len, [MASK] where an item is hidden. Returns (B, L, d)."""
        length = seqs.size(1)
        if length > self.max_len:
            raise ValueError(f"BERT4Rec got sequences of length {length} > max_len {self.max_len}")
        return self.head(self.encoder(self.item_embedding(seqs), padding=seqs == 0))

    def last_hidden(self, seqs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The state at a [MASK] appended after each history: the user representation."""
        seqs, lengths = append_mask(seqs, lengths, self.mask_token, self.max_len)
        h = self.forward(seqs, lengths)
        return h[torch.arange(h.size(0), device=h.device), lengths - 1]
