"""Hybrid greedy decoding (paper §4.2.3): for every source sequence and memory k, one pattern.

Per step, with probability γ the step is generative (any item) and otherwise restrictive (items of
the source sequence only; once all are used, EOS). Items never repeat inside a pattern; PAD and BOS
are never emitted; EOS is masked until `min_length` items exist (unless nothing else is allowed).

The coin of step s for (user u, memory k) comes from a counter-based hash of (seed, u, k, s), so the
regenerated dataset is the same for any batch size, batch order or number of workers.

`decode_batch` decodes B sources x K memories at once with cached self-attention keys/values and
drops finished rows as it goes; `decode_reference` is the authors' way (one sequence and memory at
a time, the whole prefix re-run every step) and exists for the benchmark and the equality test.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dr4sr.data.batching import pad_sequences
from dr4sr.regen.config import RegenerateConfig
from dr4sr.regen.model import PAD, Regenerator

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def coin_flips(seed: int, users: np.ndarray, ks: np.ndarray, step: int) -> np.ndarray:
    """Uniform [0, 1) draws, one per (user, k), a pure function of (seed, user, k, step)."""
    users = np.asarray(users, dtype=np.int64).astype(np.uint64)
    ks = np.asarray(ks, dtype=np.int64).astype(np.uint64)
    h = _splitmix(np.full(users.shape, seed, dtype=np.int64).astype(np.uint64))
    h = _splitmix(h ^ users)
    h = _splitmix(h ^ ks)
    h = _splitmix(h ^ np.uint64(step))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def source_mask(sources: Sequence[np.ndarray], vocab: int, device) -> torch.Tensor:
    """(B, V) bool: True at the items of each source sequence."""
    mask = torch.zeros(len(sources), vocab, dtype=torch.bool, device=device)
    rows = np.repeat(np.arange(len(sources)), [len(s) for s in sources])
    cols = np.concatenate(sources) if len(sources) else np.zeros(0, dtype=np.int64)
    mask[torch.as_tensor(rows, device=device), torch.as_tensor(cols, dtype=torch.long, device=device)] = True
    mask[:, PAD] = False
    return mask


def allowed_tokens(model: Regenerator, used: torch.Tensor, src: torch.Tensor, generative: torch.Tensor,
                   step: int, min_length: int) -> torch.Tensor:
    """(R, V) bool of tokens that may be emitted at `step` (= items emitted so far)."""
    allowed = ~used
    allowed[:, PAD] = False
    allowed[:, model.bos] = False
    allowed[:, model.eos] = False
    allowed &= src | generative[:, None]
    nothing_else = ~allowed.any(1)
    allowed[:, model.eos] = nothing_else | (step >= min_length)
    return allowed


def _clip_sources(sources: Sequence[np.ndarray], model: Regenerator) -> list[np.ndarray]:
    cap = model.cfg.max_positions
    return [np.asarray(s, dtype=np.int64)[-cap:] for s in sources]


@torch.no_grad()
def decode_batch(model: Regenerator, sources: Sequence[np.ndarray], users: np.ndarray,
                 cfg: RegenerateConfig, device: torch.device | str = "cpu") -> list[list[np.ndarray]]:
    """Patterns for every source and memory: out[b][k] (int64 item ids, no BOS/EOS)."""
    model.eval()
    device = torch.device(device)
    sources = _clip_sources(sources, model)
    b, kk = len(sources), model.num_memories
    out: list[list[np.ndarray]] = [[np.zeros(0, dtype=np.int64)] * kk for _ in range(b)]
    nonempty = [i for i, s in enumerate(sources) if len(s)]
    if not nonempty:
        return out
    srcs = [sources[i] for i in nonempty]
    padded, _ = pad_sequences(srcs, "right")
    m, keep = model.encode(torch.from_numpy(padded).to(device))
    n = len(srcs)
    memory = model.memories(m).reshape(n * kk, m.size(1), m.size(2))  # row r = source r // K, memory r % K
    row_src = torch.arange(n, device=device).repeat_interleave(kk)
    mem_mask = keep[row_src][:, None, None, :]
    mem_kv = model.memory_kv(memory)
    src = source_mask(srcs, model.vocab, device)[row_src]
    used = torch.zeros(n * kk, model.vocab, dtype=torch.bool, device=device)
    row_user = np.repeat(np.asarray(users, dtype=np.int64)[nonempty], kk)
    row_k = np.tile(np.arange(kk, dtype=np.int64), n)
    active = np.arange(n * kk)  # original row index of each live row
    emitted = [[] for _ in range(n * kk)]
    cache: list[list[torch.Tensor | None]] = [[None, None] for _ in model.decoder]
    token = torch.full((n * kk,), model.bos, dtype=torch.long, device=device)
    for step in range(cfg.max_length):
        hidden = model.decode_step(token, step, cache, mem_kv, mem_mask)
        coins = coin_flips(cfg.seed, row_user[active], row_k[active], step)
        generative = torch.from_numpy(coins < cfg.gamma).to(device)
        allowed = allowed_tokens(model, used, src, generative, step, cfg.min_length)
        token = model.logits(hidden).masked_fill(~allowed, float("-inf")).argmax(1)
        tok = token.cpu().numpy()
        live = tok != model.eos
        for r, t in zip(active[live], tok[live]):
            emitted[r].append(int(t))
        if step + 1 == cfg.max_length or not live.any():
            break
        if not live.all():  # drop finished rows from every per-row tensor
            keep_idx = torch.from_numpy(np.flatnonzero(live)).to(device)
            active, token = active[live], token[keep_idx]
            mem_kv = [(k[keep_idx], v[keep_idx]) for k, v in mem_kv]
            mem_mask, src, used = mem_mask[keep_idx], src[keep_idx], used[keep_idx]
            cache = [[c[0][keep_idx], c[1][keep_idx]] for c in cache]
        used[torch.arange(len(token), device=device), token] = True
    for r, items in enumerate(emitted):
        out[nonempty[r // kk]][r % kk] = np.asarray(items, dtype=np.int64)
    return out


@torch.no_grad()
def decode_reference(model: Regenerator, sources: Sequence[np.ndarray], users: np.ndarray,
                     cfg: RegenerateConfig, device: torch.device | str = "cpu") -> list[list[np.ndarray]]:
    """One source and one memory at a time, re-running the whole prefix every step (no cache)."""
    model.eval()
    device = torch.device(device)
    sources = _clip_sources(sources, model)
    kk = model.num_memories
    out = []
    for s, user in zip(sources, np.asarray(users, dtype=np.int64)):
        if len(s) == 0:
            out.append([np.zeros(0, dtype=np.int64)] * kk)
            continue
        x = torch.from_numpy(s)[None].to(device)
        m, keep = model.encode(x)
        mems = model.memories(m)
        src = source_mask([s], model.vocab, device)
        row = []
        for k in range(kk):
            items: list[int] = []
            used = torch.zeros(1, model.vocab, dtype=torch.bool, device=device)
            for step in range(cfg.max_length):
                dec_in = torch.tensor([[model.bos] + items], dtype=torch.long, device=device)
                hidden = model.decode(dec_in, mems[:, k], keep)[:, -1]
                coin = coin_flips(cfg.seed, np.array([user]), np.array([k]), step)
                generative = torch.from_numpy(coin < cfg.gamma).to(device)
                allowed = allowed_tokens(model, used, src, generative, step, cfg.min_length)
                tok = int(model.logits(hidden).masked_fill(~allowed, float("-inf")).argmax(1))
                if tok == model.eos:
                    break
                items.append(tok)
                used[0, tok] = True
            row.append(np.asarray(items, dtype=np.int64))
        out.append(row)
    return out
