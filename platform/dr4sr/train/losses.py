"""Next-item losses over hidden states, outside the model; each takes an optional weight per position.

- "bce": the paper's loss; one uniformly sampled negative per position (positives not excluded).
- "ce": full-softmax cross-entropy over all items (padding excluded).
Both return (weighted mean loss, per-position loss) so DR4SR+ can reuse the per-position values.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from dr4sr.errors import ConfigError
from dr4sr.models.base import Backbone

LOSSES = ("bce", "ce")


def _reduce(per_pos: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    w = mask.float() if weights is None else weights * mask
    return (per_pos * w).sum() / mask.float().sum().clamp(min=1.0)


def next_item_loss(model: Backbone, hidden: torch.Tensor, targets: torch.Tensor, kind: str = "bce",
                   weights: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden: (B, T, d) states aligned with targets (B, T); target 0 = no target at that position."""
    mask = targets > 0
    h = hidden[mask]  # only real positions: (P, d)
    pos_items = targets[mask]
    item_w = model.item_weights()
    if kind == "bce":
        neg_items = torch.randint(1, model.num_items + 1, pos_items.shape, device=h.device, generator=generator)
        # one lookup for both: its backward builds one dense (items x d) gradient, not two to be added
        both = F.embedding(torch.cat([pos_items, neg_items]), item_w).view(2, *h.shape)
        pos_logit, neg_logit = (h[None] * both).sum(-1)
        loss = F.softplus(-pos_logit) + F.softplus(neg_logit)  # -log σ(pos) - log(1 - σ(neg))
    elif kind == "ce":
        logits = h @ item_w.t()
        logits[:, 0] = float("-inf")  # never predict padding
        loss = F.cross_entropy(logits, pos_items, reduction="none")
    else:
        raise ConfigError(f"unknown loss {kind!r}; expected one of {LOSSES}")
    per_pos = torch.zeros(targets.shape, dtype=loss.dtype, device=loss.device)
    per_pos[mask] = loss
    return _reduce(per_pos, mask, weights), per_pos


def hidden_for_targets(model: Backbone, inputs: torch.Tensor, lengths: torch.Tensor,
                       targets: torch.Tensor, net: torch.nn.Module | None = None) -> torch.Tensor:
    """Hidden states aligned with `targets`: all positions (seq2seq) or the last one ("last" mode).

    `net` is the module to run forward through (a DDP wrapper of `model`, so gradients synchronise).
    """
    run = net if net is not None else model
    if model.training_mode == "last":  # left-padded prefixes: only the last position has a target
        return run(inputs, lengths, last_only=True)
    return run(inputs, lengths)
