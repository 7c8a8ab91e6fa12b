"""Next-item losses over hidden states, outside the model; each takes an optional weight per position.

- "bce": the paper's loss; one uniformly sampled negative per position (positives not excluded).
- "ce": full-softmax cross-entropy over all items (padding excluded).
Both return (weighted mean loss, per-position loss) so DR4SR+ can reuse the per-position values.

Auxiliary objectives (CL4SRec's contrastive loss) are registered here by the name a backbone's registry
entry gives (`BackboneSpec.auxiliary`): the model module never imports the training code.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from dr4sr.errors import ConfigError
from dr4sr.models.base import Backbone
from dr4sr.train.augment import cl4srec_auxiliary

LOSSES = ("bce", "ce")
# name -> factory(model config, TrainingInput) -> callable(model, batch, hidden, generator) -> loss
AUXILIARY_LOSSES: dict[str, Callable[[Any, Any], Callable]] = {"cl4srec": cl4srec_auxiliary}


def auxiliary_loss(name: str | None, model_cfg: Any, inp: Any) -> Callable | None:
    """The auxiliary objective a backbone names (None for none), built for this run."""
    if name is None:
        return None
    try:
        factory = AUXILIARY_LOSSES[name]
    except KeyError:
        raise ConfigError(f"unknown auxiliary loss {name!r}; registered: {sorted(AUXILIARY_LOSSES)}") from None
    return factory(model_cfg, inp)


def _reduce(per_pos: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    w = mask.float() if weights is None else weights * mask
    return (per_pos * w).sum() / mask.float().sum().clamp(min=1.0)


def next_item_loss(model: Backbone, hidden: torch.Tensor, targets: torch.Tensor, kind: str = "bce",
                   weights: torch.Tensor | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """hidden: (B, T, d) states aligned with targets (B, T); target 0 = no target at that position."""
    mask = targets > 0
    item_w = model.item_weights()
    if kind == "bce":
        # dense over all (B, T) positions, padding multiplied out: batches are length-grouped, so the
        # few padded positions cost less than gathering and scattering the real ones; one embedding
        # lookup for positives and negatives builds one dense (items x d) gradient, not two
        neg_items = torch.randint(1, model.num_items + 1, targets.shape, device=hidden.device, generator=generator)
        both = F.embedding(torch.stack([targets, neg_items]), item_w)  # (2, B, T, d)
        pos_logit, neg_logit = (hidden[None] * both).sum(-1)
        per_pos = (F.softplus(-pos_logit) + F.softplus(neg_logit)) * mask  # -log σ(pos) - log(1 - σ(neg))
        return _reduce(per_pos, mask, weights), per_pos
    if kind != "ce":
        raise ConfigError(f"unknown loss {kind!r}; expected one of {LOSSES}")
    h = hidden[mask]  # only real positions: (P, d)
    logits = h @ item_w.t()
    logits[:, 0] = float("-inf")  # never predict padding
    loss = F.cross_entropy(logits, targets[mask], reduction="none")
    per_pos = torch.zeros(targets.shape, dtype=loss.dtype, device=loss.device)
    per_pos[mask] = loss
    return _reduce(per_pos, mask, weights), per_pos


def hidden_for_targets(model: Backbone, inputs: torch.Tensor, lengths: torch.Tensor,
                       targets: torch.Tensor, net: torch.nn.Module | None = None) -> torch.Tensor:
    """Hidden states aligned with `targets`: all positions (seq2seq, Cloze) or the last one ("last" mode).

    `net` is the module to run forward through (a DDP wrapper of `model`, so gradients synchronise).
    """
    run = net if net is not None else model
    if model.training_mode == "last":  # left-padded prefixes: only the last position has a target
        return run(inputs, lengths, last_only=True)
    return run(inputs, lengths)
