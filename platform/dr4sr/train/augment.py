"""CL4SRec's sequence augmentations and its InfoNCE auxiliary loss.

Augmentations work on a right-padded batch at once, on the batch's device, drawing every random number
from the loop's torch.Generator (so runs are reproducible and need no host round trip):
- crop: a random contiguous window of max(1, floor(eta * n)) items;
- mask: floor(gamma * n) random positions replaced by the [mask] token;
- reorder: a random window of floor(beta * n) items shuffled in place.
Each row of each view picks one of the three uniformly (the authors' "item_random").
Rates are floored in float64, like the authors' Python `int(rate * n)`.

The loss: both views of every row go through the model in one forward pass, are mean-pooled over
their real positions, and compared with NT-Xent: for each of the 2B views the other view of the same
row is the positive and the 2B - 2 views of the other rows are negatives; temperature 1 and an inner
product by default, weight 0.1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dr4sr.data.batching import pad_sequences
from dr4sr.errors import ConfigError

CROP, MASK, REORDER = 0, 1, 2


def _counts(lengths: torch.Tensor, rate: float) -> torch.Tensor:
    return torch.floor(lengths.to(torch.float64) * rate).to(torch.long)


def crop(seqs: torch.Tensor, lengths: torch.Tensor, eta: float, gen: torch.Generator | None = None):
    """Random contiguous window of max(1, floor(eta*n)) items, moved to the front (right padding)."""
    pos = torch.arange(seqs.size(1), device=seqs.device)[None]
    keep = _counts(lengths, eta).clamp(min=1)
    start = torch.floor(torch.rand(lengths.shape, generator=gen, device=seqs.device)
                        * (lengths - keep + 1)).to(torch.long)
    src = (start[:, None] + pos).clamp(max=seqs.size(1) - 1)
    out = torch.where(pos < keep[:, None], seqs.gather(1, src), torch.zeros_like(seqs))
    return out, keep


def mask(seqs: torch.Tensor, lengths: torch.Tensor, gamma: float, mask_token: int,
         gen: torch.Generator | None = None):
    """floor(gamma*n) distinct real positions (uniformly chosen) replaced by `mask_token`."""
    pos = torch.arange(seqs.size(1), device=seqs.device)[None]
    keys = torch.rand(seqs.shape, generator=gen, device=seqs.device).masked_fill(pos >= lengths[:, None], 2.0)
    rank = keys.argsort(1).argsort(1)  # padding ranks last, so only real positions get masked
    hit = rank < _counts(lengths, gamma)[:, None]
    return seqs.masked_fill(hit, mask_token), lengths


def reorder(seqs: torch.Tensor, lengths: torch.Tensor, beta: float, gen: torch.Generator | None = None):
    """Shuffle a random window of floor(beta*n) items; everything outside it stays in place."""
    pos = torch.arange(seqs.size(1), device=seqs.device)[None]
    width = _counts(lengths, beta)
    start = torch.floor(torch.rand(lengths.shape, generator=gen, device=seqs.device)
                        * (lengths - width + 1)).to(torch.long)
    inside = (pos >= start[:, None]) & (pos < (start + width)[:, None])
    # sort keys: positions outside keep their index; inside get random keys within [start, start+width)
    noise = torch.rand(seqs.shape, generator=gen, device=seqs.device, dtype=torch.float64)
    keys = torch.where(inside, start[:, None] + noise * width[:, None], pos.to(torch.float64).expand_as(noise))
    return seqs.gather(1, keys.argsort(1)), lengths


def random_augment(seqs: torch.Tensor, lengths: torch.Tensor, eta: float, gamma: float, beta: float,
                   mask_token: int, gen: torch.Generator | None = None):
    """One view: each row gets crop, mask or reorder, chosen uniformly at random."""
    choice = torch.randint(0, 3, lengths.shape, generator=gen, device=seqs.device)
    c_seq, c_len = crop(seqs, lengths, eta, gen)
    m_seq, _ = mask(seqs, lengths, gamma, mask_token, gen)
    r_seq, _ = reorder(seqs, lengths, beta, gen)
    pick = choice[:, None]
    out = torch.where(pick == CROP, c_seq, torch.where(pick == MASK, m_seq, r_seq))
    return out, torch.where(choice == CROP, c_len, lengths)


def mean_pool(hidden: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states at the real positions of right-padded rows: (B, L, d) -> (B, d)."""
    pos = torch.arange(hidden.size(1), device=hidden.device)[None]
    m = (pos < lengths[:, None]).to(hidden.dtype)
    return (hidden * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 1.0, similarity: str = "dot") -> torch.Tensor:
    """Symmetric NT-Xent over 2B views: positive = the other view of the row, 2B - 2 in-batch negatives."""
    if similarity == "cosine":
        z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    b = z1.size(0)
    z = torch.cat([z1, z2])
    sim = (z @ z.t()) / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def _same_rows(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return a is b or (len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b)))


class CL4SRecLoss:
    """The registry auxiliary: callable(model, batch, hidden, generator) -> weighted InfoNCE loss.

    `source="training"`: views of the batch's own inputs (the right-padded seq2seq inputs).
    `source="original"`: views of the users' original training sequences. When the training rows are
    the original sequences (row i = user i) the batch's users are used; otherwise (regenerated data,
    whose rows do not map to users) as many original sequences are drawn uniformly at random.
    """

    def __init__(self, weight: float, temperature: float, similarity: str, eta: float, gamma: float,
                 beta: float, source: str = "training", original: Sequence[np.ndarray] | None = None,
                 rows_are_users: bool = False, max_len: int = 50):
        if source == "original" and (original is None or len(original) == 0):
            raise ConfigError("model.cl_source=original needs the original training sequences")
        self.weight, self.temperature, self.similarity = weight, temperature, similarity
        self.eta, self.gamma, self.beta = eta, gamma, beta
        self.source, self.rows_are_users = source, rows_are_users
        self._original = None
        self._original_on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if source == "original":
            padded, lengths = pad_sequences([np.asarray(s)[-max_len:] for s in original], "right")
            self._original = (torch.from_numpy(padded), torch.from_numpy(lengths))

    def _views_input(self, batch, gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.source == "training":
            return batch.inputs, batch.lengths
        device = batch.inputs.device
        if str(device) not in self._original_on:
            self._original_on[str(device)] = tuple(t.to(device) for t in self._original)
        seqs, lengths = self._original_on[str(device)]
        if self.rows_are_users and batch.rows is not None:
            users = batch.rows.to(device)
        else:
            users = torch.randint(0, seqs.size(0), (batch.inputs.size(0),), generator=gen, device=device)
        lengths = lengths[users]
        width = max(int(lengths.max()), 1)
        return seqs[users, :width], lengths

    def __call__(self, model, batch, hidden: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        if self.weight == 0:
            return hidden.new_zeros(())
        mask_token = getattr(model, "mask_token", None)
        if mask_token is None or model.padding != "right":
            raise ConfigError(f"the CL4SRec loss needs a right-padded backbone with a [mask] token; "
                              f"got {type(model).__name__}")
        seqs, lengths = self._views_input(batch, gen)
        v1, l1 = random_augment(seqs, lengths, self.eta, self.gamma, self.beta, mask_token, gen)
        v2, l2 = random_augment(seqs, lengths, self.eta, self.gamma, self.beta, mask_token, gen)
        width = int(torch.maximum(l1, l2).max())  # crops shorten rows: trim the shared padding
        views = torch.cat([v1[:, :width], v2[:, :width]])
        lens = torch.cat([l1, l2])
        pooled = mean_pool(model(views, lens), lens)
        b = seqs.size(0)
        return self.weight * info_nce(pooled[:b], pooled[b:], self.temperature, self.similarity)


def cl4srec_auxiliary(model_cfg, inp) -> CL4SRecLoss:
    """BackboneSpec.auxiliary for cl4srec: built from the model config and the TrainingInput."""
    splits = inp.splits
    dataset = inp.cfg.data.dataset if getattr(inp, "cfg", None) is not None else None
    return CL4SRecLoss(
        model_cfg.cl_weight, model_cfg.cl_temperature, model_cfg.cl_similarity, model_cfg.crop_eta,
        model_cfg.mask_rate(dataset), model_cfg.reorder_beta, model_cfg.cl_source,
        original=splits.train if model_cfg.cl_source == "original" else None,
        rows_are_users=model_cfg.cl_source == "original" and _same_rows(inp.sequences, splits.train),
        max_len=splits.max_len)
