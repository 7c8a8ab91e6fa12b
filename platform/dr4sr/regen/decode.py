"""Hybrid greedy decoding (paper §4.2.3): for every source sequence and memory k, one pattern.

Per step, with probability γ the step is generative (any item) and otherwise restrictive (items of
the source sequence only; once all are used, EOS). Items never repeat inside a pattern; PAD and BOS
are never emitted; EOS is masked until `min_length` items exist (unless nothing else is allowed).

`restrict="ordered"` (an option beyond the paper) narrows a restrictive step to source positions
after the last source item taken, and with `span` > 0 to within `span` positions of the first one,
so every restrictive stretch is a gapped subsequence of the source in its own order, the shape of
a mined pattern. The paper's restrictive step (`restrict="source"`) may emit source items in any
order; a reversed pair trains the target model on a transition that never happened.

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


class SourceOrder:
    """Per-row source positions for ordered restriction: the last one taken and the first one."""

    def __init__(self, rows: int, span: int, device: torch.device):
        self.last = torch.full((rows,), -1, dtype=torch.long, device=device)
        self.first = torch.full((rows,), -1, dtype=torch.long, device=device)
        self.span = span

    def allowed(self, rows: torch.Tensor, cand: torch.Tensor, need: int) -> torch.Tensor:
        """(len(rows), L) True where a source position may be taken next, leaving `need` later ones
        (so a pattern is not cut below min_length by starting at the source's end)."""
        pos = torch.arange(cand.size(1), device=self.last.device)[None]
        ok = pos > self.last[rows, None]
        if need > 0:
            ok &= pos + need < (cand != PAD).sum(1, keepdim=True)
        if self.span > 0:
            first = self.first[rows, None]
            ok &= (first < 0) | (pos <= first + self.span - 1)
        return ok

    def take(self, rows: torch.Tensor, pos: torch.Tensor) -> None:
        """Rows `rows` took source position `pos` (-1 = no source position: EOS or generative)."""
        hit = pos >= 0
        rows, pos = rows[hit], pos[hit]
        self.last[rows] = pos
        self.first[rows] = torch.where(self.first[rows] < 0, pos, self.first[rows])

    def keep(self, idx: torch.Tensor) -> None:
        self.last, self.first = self.last[idx], self.first[idx]


def choose_tokens(model: Regenerator, hidden: torch.Tensor, cand: torch.Tensor, emitted: torch.Tensor,
                  generative: torch.Tensor, step: int, min_length: int,
                  order: SourceOrder | None = None) -> torch.Tensor:
    """Greedy token per row at `step` (= items emitted so far).

    hidden (R, d); cand (R, L) source items (0 = padding); emitted (R, step) items so far;
    `order` (ordered restriction) limits restrictive rows to later source positions and is updated.
    Restrictive rows score only their own source items (+ EOS), so 1 - gamma of the rows never
    touch the (R, V) item matrix; generative rows score the whole catalogue. EOS wins only with a
    strictly higher score (a tie goes to the item, as a full-vocabulary argmax would do).
    """
    r_count = hidden.size(0)
    eos = torch.full((1,), model.eos, dtype=torch.long, device=hidden.device)
    out = torch.full((r_count,), model.eos, dtype=torch.long, device=hidden.device)
    eos_allowed_any = step >= min_length
    res = torch.nonzero(~generative).squeeze(1)
    if len(res):
        c, h = cand.index_select(0, res), hidden.index_select(0, res)
        ok = c != PAD
        if emitted.size(1):
            ok &= ~(c[:, :, None] == emitted.index_select(0, res)[:, None, :]).any(-1)
        if order is not None:
            ok &= order.allowed(res, c, max(min_length - step - 1, 0))
        sc = model.score_items(h, c).masked_fill(~ok, float("-inf"))
        best, arg = sc.max(1)
        any_ok = ok.any(1)
        eos_sc = model.score_items(h, eos.expand(len(res), 1))[:, 0]
        take_eos = ~any_ok | (eos_allowed_any & (eos_sc > best))
        out[res] = torch.where(take_eos, eos.expand(len(res)), c.gather(1, arg[:, None])[:, 0])
        if order is not None:
            order.take(res, torch.where(take_eos, torch.full_like(arg, -1), arg))
    gen = torch.nonzero(generative).squeeze(1)
    if len(gen):
        logits = model.logits(hidden.index_select(0, gen))
        eos_sc = logits[:, model.eos].clone()
        if emitted.size(1):
            logits.scatter_(1, emitted.index_select(0, gen), float("-inf"))
        logits[:, [PAD, model.bos, model.eos]] = float("-inf")
        best, arg = logits.max(1)
        any_ok = best > float("-inf")
        take_eos = ~any_ok | (eos_allowed_any & (eos_sc > best))
        out[gen] = torch.where(take_eos, eos.expand(len(gen)), arg)
    return out


def _order(cfg: RegenerateConfig, rows: int, device: torch.device) -> SourceOrder | None:
    return SourceOrder(rows, cfg.span, device) if cfg.restrict == "ordered" else None


def memory_indices(cfg: RegenerateConfig, model: Regenerator) -> list[int]:
    """The memories decoded for every source (regenerate.memories)."""
    return list(range(model.num_memories)) if cfg.memories == "all" else list(cfg.memories)


def eos_from(cfg: RegenerateConfig) -> int:
    """Items before EOS may win: min_length when short rows are forced, 0 when they are dropped after."""
    return cfg.min_length if cfg.short_rows == "force" else 0


def _drop_short(items: np.ndarray, cfg: RegenerateConfig) -> np.ndarray:
    return items[:0] if cfg.short_rows == "drop" and len(items) < cfg.min_length else items


def _clip_sources(sources: Sequence[np.ndarray], model: Regenerator) -> list[np.ndarray]:
    cap = model.cfg.max_positions
    return [np.asarray(s, dtype=np.int64)[-cap:] for s in sources]


@torch.no_grad()
def decode_batch(model: Regenerator, sources: Sequence[np.ndarray], users: np.ndarray,
                 cfg: RegenerateConfig, device: torch.device | str = "cpu") -> list[list[np.ndarray]]:
    """Patterns for every source and decoded memory: out[b][j] for memory memory_indices(cfg)[j]
    (int64 item ids, no BOS/EOS; empty when short_rows=drop removed it)."""
    model.eval()
    device = torch.device(device)
    sources = _clip_sources(sources, model)
    mem_idx = memory_indices(cfg, model)
    b, kk = len(sources), len(mem_idx)
    out: list[list[np.ndarray]] = [[np.zeros(0, dtype=np.int64)] * kk for _ in range(b)]
    nonempty = [i for i, s in enumerate(sources) if len(s)]
    if not nonempty:
        return out
    srcs = [sources[i] for i in nonempty]
    padded = torch.from_numpy(pad_sequences(srcs, "right")[0]).to(device)
    m, keep = model.encode(padded)
    n = len(srcs)
    # row r = source r // kk, memory mem_idx[r % kk]
    memory = model.memories(m)[:, mem_idx].reshape(n * kk, m.size(1), m.size(2))
    row_src = torch.arange(n, device=device).repeat_interleave(kk)
    mem_mask = keep[row_src][:, None, None, :]
    # contiguous (R, H, L, dh): each step's q @ k^T is then a strided view, not a copy of every key
    mem_kv = [(k.contiguous(), v.contiguous()) for k, v in model.memory_kv(memory)]
    cand = padded[row_src]
    row_user = np.repeat(np.asarray(users, dtype=np.int64)[nonempty], kk)
    row_k = np.tile(np.asarray(mem_idx, dtype=np.int64), n)  # coins keyed on the memory index
    active = np.arange(n * kk)  # original row index of each live row
    emitted = torch.zeros(n * kk, 0, dtype=torch.long, device=device)
    lengths = np.zeros(n * kk, dtype=np.int64)
    result = np.zeros((n * kk, cfg.max_length), dtype=np.int64)
    cache: list[list[torch.Tensor | None]] = [[None, None] for _ in model.decoder]
    token = torch.full((n * kk,), model.bos, dtype=torch.long, device=device)
    order = _order(cfg, n * kk, device)
    for step in range(cfg.max_length):
        hidden = model.decode_step(token, step, cache, mem_kv, mem_mask)
        coins = coin_flips(cfg.seed, row_user[active], row_k[active], step)
        generative = torch.from_numpy(coins < cfg.gamma).to(device)
        token = choose_tokens(model, hidden, cand, emitted, generative, step, eos_from(cfg), order)
        tok = token.cpu().numpy()
        live = tok != model.eos
        result[active[live], step] = tok[live]
        lengths[active[live]] += 1
        if step + 1 == cfg.max_length or not live.any():
            break
        if not live.all():  # drop finished rows from every per-row tensor
            idx = torch.from_numpy(np.flatnonzero(live)).to(device)
            # index_select: ~4x faster than x[idx] for the (R, H, L, dh) keys on CPU
            active, token, emitted = active[live], token.index_select(0, idx), emitted.index_select(0, idx)
            mem_kv = [(k.index_select(0, idx), v.index_select(0, idx)) for k, v in mem_kv]
            mem_mask, cand = mem_mask.index_select(0, idx), cand.index_select(0, idx)
            if order is not None:
                order.keep(idx)
            cache = [[c[0].index_select(0, idx), c[1].index_select(0, idx)] for c in cache]
        emitted = torch.cat([emitted, token[:, None]], 1)
    for r in range(n * kk):
        out[nonempty[r // kk]][r % kk] = _drop_short(result[r, : lengths[r]].copy(), cfg)
    return out


@torch.no_grad()
def decode_reference(model: Regenerator, sources: Sequence[np.ndarray], users: np.ndarray,
                     cfg: RegenerateConfig, device: torch.device | str = "cpu") -> list[list[np.ndarray]]:
    """One source and one memory at a time, re-running the whole prefix every step (no cache)."""
    model.eval()
    device = torch.device(device)
    sources = _clip_sources(sources, model)
    mem_idx = memory_indices(cfg, model)
    kk = len(mem_idx)
    out = []
    for s, user in zip(sources, np.asarray(users, dtype=np.int64)):
        if len(s) == 0:
            out.append([np.zeros(0, dtype=np.int64)] * kk)
            continue
        x = torch.from_numpy(s)[None].to(device)
        m, keep = model.encode(x)
        mems = model.memories(m)
        row = []
        for k in mem_idx:
            items: list[int] = []
            order = _order(cfg, 1, device)
            for step in range(cfg.max_length):
                dec_in = torch.tensor([[model.bos] + items], dtype=torch.long, device=device)
                hidden = model.decode(dec_in, mems[:, k], keep)[:, -1]
                coin = coin_flips(cfg.seed, np.array([user]), np.array([k]), step)
                generative = torch.from_numpy(coin < cfg.gamma).to(device)
                emitted = torch.tensor([items], dtype=torch.long, device=device).view(1, len(items))
                tok = int(choose_tokens(model, hidden, x, emitted, generative, step, eos_from(cfg), order)[0])
                if tok == model.eos:
                    break
                items.append(tok)
            row.append(_drop_short(np.asarray(items, dtype=np.int64), cfg))
        out.append(row)
    return out
