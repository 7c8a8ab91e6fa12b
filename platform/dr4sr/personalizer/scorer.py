"""g_phi, the dataset personalizer (paper Eq. 5): MLP on a hidden state -> 2 logits -> soft Gumbel-softmax.

The weight of a (row, position) is the first component of softmax((z + G) / tau). The Gumbel noise G is
a counter-based hash of (seed, step, row, position), not a generator draw: a row gets the same noise
whichever DDP rank holds it, so N workers and one process see the same weights for the same global batch.
"""
from __future__ import annotations

import torch
from torch import nn

_MASK = (1 << 62) - 1  # keep hash states non-negative (int64 shifts are arithmetic)
_K1, _K2, _K3 = 0x1F3B5D7192A4C6E9, 0x2545F4914F6CDD1D, 0x369DEA0F31A53F85  # odd 62-bit mixing constants


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A splitmix-style finaliser on int64 tensors (multiplication wraps; masked to 62 bits)."""
    x = (x ^ (x >> 31)) & _MASK
    x = (x * _K2) & _MASK
    x = (x ^ (x >> 29)) & _MASK
    x = (x * _K3) & _MASK
    return (x ^ (x >> 32)) & _MASK


def gumbel_noise(rows: torch.Tensor, width: int, step: int, seed: int) -> torch.Tensor:
    """Gumbel(0, 1) noise of shape (len(rows), width, 2), a pure function of (seed, step, row, position)."""
    pos = torch.arange(width, device=rows.device, dtype=torch.int64)
    comp = torch.arange(2, device=rows.device, dtype=torch.int64)
    key = ((rows.to(torch.int64)[:, None, None] * 4096 + pos[None, :, None]) * 2 + comp[None, None, :])
    x = _mix(_mix(key * _K1 + (int(step) * 1_000_003 + int(seed)) & _MASK))
    u = ((x >> 9) & ((1 << 53) - 1)).to(torch.float64) * 2.0 ** -53
    u = u.clamp(1e-12, 1.0 - 1e-12)
    return (-torch.log(-torch.log(u))).to(torch.float32)


class Personalizer(nn.Module):
    """MLP d -> width -> 2; `forward` gives one weight in (0, 1) per hidden state."""

    def __init__(self, hidden_size: int, width: int = 0, temperature: float = 10.0):
        super().__init__()
        width = width or hidden_size
        self.temperature = temperature
        self.mlp = nn.Sequential(nn.Linear(hidden_size, width), nn.ReLU(), nn.Linear(width, 2))

    def forward(self, hidden: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """hidden (B, T, d) -> weights (B, T); without noise: the noise-free softmax (reported weights)."""
        z = self.mlp(hidden)
        if noise is not None:
            z = z + noise.to(z.dtype)
        return torch.softmax(z / self.temperature, dim=-1)[..., 0]
