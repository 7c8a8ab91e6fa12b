"""Fast CPU forms of the layers every transformer backbone shares: dropout and the post-LN encoder layer.

On the CPU, torch's dropout draws its mask with `bernoulli_`, one generator call per element: in a
SASRec Beauty epoch that was 22% of all time (profile in benchmarks/results/epoch_profile.txt).
`dropout` draws 64 random bits per generator call instead and cuts them into four 16-bit uniforms,
about 3x faster. On CUDA torch's own kernel is used.

`encoder_forward` runs an `nn.TransformerEncoder` of post-LN `nn.TransformerEncoderLayer`s: in training
layer by layer over the same parameters (so state dicts, initialisation and the regenerator's SASRec
init copy are unchanged) with that dropout, including on the attention weights as torch applies it;
in eval through torch's module itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_BITS = 16  # bits of each uniform: the drop probability is rounded to a multiple of 2^-16


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout: zero each element with probability p (rounded to 2^-16), scale the rest by 1/(1-p).

    The scale uses the rounded p, so the output's expectation is exactly x. Draws from the global CPU
    generator, like torch.nn.functional.dropout, so torch.manual_seed makes it reproducible."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    threshold = round(p * (1 << _BITS))
    if threshold >= 1 << _BITS:
        return torch.zeros_like(x)
    n = x.numel()
    # 64 random bits per generator call (from/to over the whole int64 range), read as four uniform
    # int16 lanes: P(lane < threshold - 2^15) = threshold / 2^16
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1)
    keep = words.view(torch.int16)[:n].view(x.shape) >= threshold - (1 << (_BITS - 1))
    return x * keep.to(x.dtype).mul_((1 << _BITS) / ((1 << _BITS) - threshold))


class Dropout(nn.Dropout):
    """nn.Dropout with the fast CPU mask; a drop-in replacement (no parameters, same `p`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: torch.Tensor | None, p: float,
              training: bool) -> torch.Tensor:
    """softmax(q k^T / sqrt(d_h), blocked = -inf) with dropout on the weights, then @ v: SDPA's math,
    by hand because SDPA's CPU dropout draws with the slow bernoulli_. q (B, H, T, d_h), k/v (B, H, S, d_h)."""
    w = (q * q.size(-1) ** -0.5) @ k.transpose(-1, -2)
    if blocked is not None:
        w = w.masked_fill(blocked, float("-inf"))
    return dropout(w.softmax(-1), p, training) @ v


def _self_attention(attn: nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor | None,
                    training: bool) -> torch.Tensor:
    """nn.MultiheadAttention(x, x, x) with batch_first; `mask` True = may NOT attend, broadcast to (B, H, L, L)."""
    b, length, d = x.shape
    heads = attn.num_heads
    q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(b, length, 3, heads, d // heads).permute(
        2, 0, 3, 1, 4)
    o = attention(q, k, v, mask, attn.dropout, training).transpose(1, 2).reshape(b, length, d)
    return F.linear(o, attn.out_proj.weight, attn.out_proj.bias)


def encoder_layer_forward(layer: nn.TransformerEncoderLayer, x: torch.Tensor,
                          mask: torch.Tensor | None) -> torch.Tensor:
    """One post-LN layer: x = LN1(x + Drop(SelfAttn(x))); x = LN2(x + Drop(W2 Drop(act(W1 x))))."""
    if layer.norm_first:
        raise ValueError("encoder_layer_forward implements post-LN layers only (norm_first=False)")
    training = layer.training
    x = layer.norm1(x + dropout(_self_attention(layer.self_attn, x, mask, training), layer.dropout1.p, training))
    h = dropout(layer.activation(layer.linear1(x)), layer.dropout.p, training)
    return layer.norm2(x + dropout(layer.linear2(h), layer.dropout2.p, training))


def encoder_forward(stack: nn.TransformerEncoder, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                    key_padding_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
    """`stack(x, mask=attn_mask, src_key_padding_mask=key_padding_mask)`, both masks True = blocked.

    attn_mask (L, L); key_padding_mask (B, L) True at padding. In training the layers run through
    `functional_encoder_forward` (the fast dropout); in eval torch's own fused inference path runs,
    so evaluation and regeneration compute exactly what they did before."""
    if not stack.training:
        return stack(x, mask=attn_mask, src_key_padding_mask=key_padding_mask, is_causal=is_causal)
    return functional_encoder_forward(stack, x, attn_mask, key_padding_mask)


def functional_encoder_forward(stack: nn.TransformerEncoder, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                               key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The stack's layers one by one with `encoder_layer_forward` (same parameters, fast dropout)."""
    mask = None
    if attn_mask is not None:
        mask = attn_mask[None, None]
    if key_padding_mask is not None:
        pad = key_padding_mask[:, None, None, :]
        mask = pad if mask is None else mask | pad
    for layer in stack.layers:
        x = encoder_layer_forward(layer, x, mask)
    return x if stack.norm is None else stack.norm(x)
