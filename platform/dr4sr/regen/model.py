"""The diversity-promoted regenerator: transformer encoder-decoder with K memories (paper §4.2.2).

Tokens: PAD=0, items 1..N, BOS=N+1, EOS=N+2; item embeddings are tied between input and output.
The source encoder is bidirectional with a key-padding mask, in training AND inference (the
authors' code was causal in training only). The decoder is written by hand (post-LN, like
nn.TransformerDecoderLayer) so inference can cache each layer's self-attention keys/values and
compute only the newest position.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dr4sr.errors import DR4SRError
from dr4sr.models.base import init_weights
from dr4sr.models.layers import Dropout, attention, encoder_forward
from dr4sr.regen.config import RegeneratorConfig

PAD = 0
MIX_MATERIALISE_MAX_LEN = 20  # see Regenerator.mixed_memory


def bos_id(num_items: int) -> int:
    return num_items + 1


def eos_id(num_items: int) -> int:
    return num_items + 2


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v entry points so keys/values can be cached."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.dropout = dropout

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, length, _ = x.shape
        k, v = self.kv(x).view(b, length, 2, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        return k, v  # each (B, H, L, dh)

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, T, d) queries; mask broadcastable to (B, H, T, S), True = may attend."""
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        if t == 1 and not self.training:
            # one query (incremental decoding): plain matmuls beat the fused CPU kernel ~3x here
            w = (q @ k.transpose(-1, -2)) * self.dh ** -0.5
            if mask is not None:
                w = w.masked_fill(~mask, float("-inf"))
            o = w.softmax(-1) @ v
        elif self.training and self.dropout > 0:
            o = attention(q, k, v, None if mask is None else ~mask, self.dropout, True)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(o.transpose(1, 2).reshape(b, t, d))


class DecoderLayer(nn.Module):
    """Post-LN: x = LN(x + SelfAttn(x)); x = LN(x + CrossAttn(x, memory)); x = LN(x + FFN(x))."""

    def __init__(self, cfg: RegeneratorConfig):
        super().__init__()
        d = cfg.hidden_size
        self.self_attn = Attention(d, cfg.num_heads, cfg.dropout)
        self.cross_attn = Attention(d, cfg.num_heads, cfg.dropout)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.inner_size), nn.GELU() if cfg.activation == "gelu" else nn.ReLU(),
                                 Dropout(cfg.dropout), nn.Linear(cfg.inner_size, d))
        self.norms = nn.ModuleList(nn.LayerNorm(d, eps=cfg.layer_norm_eps) for _ in range(3))
        self.drop = Dropout(cfg.dropout)

    def forward(self, x, self_k, self_v, self_mask, mem_k, mem_v, mem_mask):
        x = self.norms[0](x + self.drop(self.self_attn.attend(x, self_k, self_v, self_mask)))
        x = self.norms[1](x + self.drop(self.cross_attn.attend(x, mem_k, mem_v, mem_mask)))
        return self.norms[2](x + self.drop(self.ffn(x)))


def _encoder(cfg: RegeneratorConfig, layers: int) -> nn.TransformerEncoder:
    # nn.TransformerEncoderLayer with SASRec's layout, so SASRec's attention/norm weights copy over
    layer = nn.TransformerEncoderLayer(cfg.hidden_size, cfg.num_heads, cfg.inner_size, cfg.dropout,
                                       activation=cfg.activation, layer_norm_eps=cfg.layer_norm_eps,
                                       batch_first=True, norm_first=False)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class Regenerator(nn.Module):
    def __init__(self, cfg: RegeneratorConfig, num_items: int):
        super().__init__()
        self.cfg, self.num_items = cfg, num_items
        self.bos, self.eos = bos_id(num_items), eos_id(num_items)
        self.vocab = num_items + 3
        d, k = cfg.hidden_size, cfg.k
        self.item_embedding = nn.Embedding(self.vocab, d, padding_idx=PAD)
        # encoder: same names as SASRecEncoder (position_embedding, norm, layers) for the init copy
        self.encoder = nn.ModuleDict({
            "position_embedding": nn.Embedding(cfg.max_positions, d),
            "norm": nn.LayerNorm(d, eps=cfg.layer_norm_eps),
            "layers": _encoder(cfg, cfg.encoder_layers)})
        self.dec_position = nn.Embedding(cfg.max_positions + 1, d)  # BOS + up to max_positions items
        self.dec_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.decoder = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.drop = Dropout(cfg.dropout)
        if cfg.diversity:
            act = nn.GELU() if cfg.activation == "gelu" else nn.ReLU()
            self.memory_mlp = nn.Sequential(nn.Linear(d, k * d), act, nn.Linear(k * d, k * d))
            self.pattern_position = nn.Embedding(cfg.max_positions + 1, d)
            self.pattern_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
            self.pattern_encoder = _encoder(cfg, cfg.pattern_layers)
            self.pi_mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, k))
        init_weights(self)

    @property
    def num_memories(self) -> int:
        return self.cfg.k if self.cfg.diversity else 1

    # ---- encoder and memories -------------------------------------------------------------
    def encode(self, src: torch.Tensor, causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, L) right-padded -> memory m (B, L, d) and key mask (B, L), True = real item.

        `causal` (pretrain.causal_encoder, the authors' training-time encoder) lets position i see 0..i only."""
        if src.size(1) > self.cfg.max_positions:
            raise DR4SRError(f"source length {src.size(1)} exceeds regen.max_positions={self.cfg.max_positions}")
        pos = torch.arange(src.size(1), device=src.device)
        enc = self.encoder
        x = self.drop(enc["norm"](self.item_embedding(src) + enc["position_embedding"](pos)[None]))
        keep = src != PAD
        if causal:
            mask = torch.ones(src.size(1), src.size(1), dtype=torch.bool, device=src.device).triu(1)
            return encoder_forward(enc["layers"], x, mask, ~keep), keep
        return encoder_forward(enc["layers"], x, key_padding_mask=~keep), keep

    def memories(self, m: torch.Tensor) -> torch.Tensor:
        """K memories m'_k: (B, K, L, d); the vanilla model has one (m itself)."""
        if not self.cfg.diversity:
            return m[:, None]
        b, length, d = m.shape
        return self.memory_mlp(m).view(b, length, self.cfg.k, d).transpose(1, 2)

    def mixed_memory(self, m: torch.Tensor, pi: torch.Tensor) -> torch.Tensor:
        """sum_k pi_k m'_k (B, L, d), = (pi[:, :, None, None] * memories(m)).sum(1).

        Short sources (L <= MIX_MATERIALISE_MAX_LEN) run the memory MLP's last projection as one big
        matmul and mix after it. Longer ones move the mixing before that projection: per row
        (sum_k pi_k W2_k) h costs d x Kd per position instead of Kd x Kd, plus a fixed cost of building
        the (B, Kd, d) weights that only pays off from ~20 positions (forward + backward, 2 threads:
        L=8 14.6 vs 31.2 ms, L=32 63.8 vs 40.5 ms)."""
        first, act, last = self.memory_mlp
        k, d = self.cfg.k, m.size(-1)
        h = act(first(m))  # (B, L, K d)
        if m.size(1) <= MIX_MATERIALISE_MAX_LEN:
            z = last(h).view(m.size(0), m.size(1), k, d)
            return (z * pi[:, None, :, None]).sum(2)
        # sum_k pi_k W2_k^T per row, as (K d, d): the weight laid out (K, K d d) so the product's inner
        # dimension is K and the batched product needs no transpose copy
        w2 = last.weight.view(k, d, k * d).transpose(1, 2).reshape(k, k * d * d)
        weight = (pi @ w2).view(-1, k * d, d)  # (B, K d, d)
        bias = pi @ last.bias.view(k, d)  # (B, d)
        return torch.baddbmm(bias[:, None, :], h, weight)

    def pattern_pi(self, pattern: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft Gumbel-softmax choice of memory from the target pattern: (pi (B, K), logits (B, K))."""
        keep = pattern != PAD
        pos = torch.arange(pattern.size(1), device=pattern.device)
        x = self.drop(self.pattern_norm(self.item_embedding(pattern) + self.pattern_position(pos)[None]))
        h = encoder_forward(self.pattern_encoder, x, key_padding_mask=~keep)
        pooled = (h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        logits = self.pi_mlp(pooled)
        pi = F.gumbel_softmax(logits, tau=tau, hard=False) if self.training else F.softmax(logits / tau, -1)
        return pi, logits

    # ---- decoder ------------------------------------------------------------------------------
    def embed_targets(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        pos = torch.arange(start, start + tokens.size(1), device=tokens.device)
        return self.drop(self.dec_norm(self.item_embedding(tokens) + self.dec_position(pos)[None]))

    def memory_kv(self, memory: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [layer.cross_attn.keys_values(memory) for layer in self.decoder]

    def decode(self, dec_in: torch.Tensor, memory: torch.Tensor, mem_keep: torch.Tensor) -> torch.Tensor:
        """Full (non-incremental) decoder pass: dec_in (B, T) starting with BOS -> hidden (B, T, d)."""
        t = dec_in.size(1)
        causal = torch.ones(t, t, dtype=torch.bool, device=dec_in.device).tril()
        mem_mask = mem_keep[:, None, None, :]
        x = self.embed_targets(dec_in)
        for layer in self.decoder:
            k, v = layer.self_attn.keys_values(x)
            mk, mv = layer.cross_attn.keys_values(memory)
            x = layer(x, k, v, causal, mk, mv, mem_mask)
        return x

    def decode_step(self, token: torch.Tensor, step: int, cache: list[list[torch.Tensor]],
                    mem_kv: list[tuple[torch.Tensor, torch.Tensor]], mem_mask: torch.Tensor) -> torch.Tensor:
        """Incremental pass for one new position: token (R,), cache[l] = [K (R,H,S,dh), V] grown in place.

        Returns hidden (R, d). The result equals `decode(...)[:, step]` on the full prefix.
        """
        x = self.embed_targets(token[:, None], start=step)
        for layer, c, (mk, mv) in zip(self.decoder, cache, mem_kv):
            k, v = layer.self_attn.keys_values(x)
            c[0] = k if c[0] is None else torch.cat([c[0], k], dim=2)
            c[1] = v if c[1] is None else torch.cat([c[1], v], dim=2)
            x = layer(x, c[0], c[1], None, mk, mv, mem_mask)
        return x[:, 0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_embedding.weight.t()

    def score_items(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of given tokens only: hidden (R, d), items (R, L) -> (R, L); = logits(hidden).gather(1, items)."""
        return torch.bmm(self.item_embedding(items), hidden[:, :, None])[:, :, 0]

    # ---- training forward ---------------------------------------------------------------------
    def forward(self, src: torch.Tensor, dec_in: torch.Tensor, pattern: torch.Tensor, tau: float = 1.0,
                select: torch.Tensor | None = None, candidates: torch.Tensor | None = None,
                causal: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher-forced logits and pi (B, K) (None for the vanilla model).

        Logits are (B, T, V), or (n, V) for the n positions where `select` (B, T) is True: scoring
        only the target positions keeps the (B, T, V) tensor out of memory on large catalogues.
        With `candidates` (B, C) token ids (needs `select`), the scores are (n, C): each selected
        position is scored against its row's candidates only (the restricted training softmax).
        """
        m, keep = self.encode(src, causal)
        pi = None
        if self.cfg.diversity:
            pi, _ = self.pattern_pi(pattern, tau)
            memory = self.mixed_memory(m, pi)
        else:
            memory = m
        hidden = self.decode(dec_in, memory, keep)
        if candidates is not None:
            # each row's candidate embeddings gathered once and scored against all its positions:
            # ~T times fewer embedding rows (and backward scatter-adds) than one gather per target token
            scores = torch.bmm(hidden, self.item_embedding(candidates).transpose(1, 2))  # (B, T, C)
            return scores[select], pi
        return self.logits(hidden if select is None else hidden[select]), pi


def init_from_sasrec(model: Regenerator, state: dict[str, torch.Tensor], encoder: bool = True) -> list[str]:
    """Copy a trained SASRec's item embeddings (rows 0..N) and, with `encoder`, encoder tensors whose shapes match.

    `state` is the `model.pt` written by dr4sr.train.runner.train_stage. Returns the copied keys.
    """
    emb = state.get("item_embedding.weight")
    if emb is None:
        raise DR4SRError("SASRec state dict has no 'item_embedding.weight'; is it a SASRec model.pt?")
    if emb.shape[0] != model.num_items + 1 or emb.shape[1] != model.cfg.hidden_size:
        raise DR4SRError(f"SASRec item embeddings are {tuple(emb.shape)}, expected "
                         f"({model.num_items + 1}, {model.cfg.hidden_size}) for this dataset and regen.hidden_size")
    copied = ["item_embedding.weight"]
    with torch.no_grad():
        model.item_embedding.weight[: emb.shape[0]].copy_(emb)
        if not encoder:
            return copied
        own = model.state_dict()
        for key, value in state.items():
            if not key.startswith("encoder."):
                continue
            target = own.get(key)
            if target is None:
                continue
            if target.shape == value.shape:
                target.copy_(value)
                copied.append(key)
            elif key == "encoder.position_embedding.weight" and target.shape[1] == value.shape[1]:
                n = min(target.shape[0], value.shape[0])
                target[:n].copy_(value[:n])
                copied.append(key)
    return copied


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
