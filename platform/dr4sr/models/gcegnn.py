""""GCE-GNN" as the paper ran it: LightGCN propagation over an item-item transition graph + SASRec.

Graph: in every original training sequence (`graph_source: original`, the default; `training`
builds it from the rows the model trains on, e.g. a regenerated dataset), item s[i] is linked to
s[i+1], ..., s[i+window] with weights `graph_weights` (default 1 and 1/2); edges are symmetric and
repeated transitions add up.
Normalisation (D = weighted degree): "symmetric" = D^-1/2 A D^-1/2 (LightGCN, what the paper names).
The authors' code differs (see REFERENCE_NOTES): self-loops added, binary degree, D^-1 A + A D^-1,
and 2 propagation steps; `graph_norm: authors` + `graph_self_loops: true` + `graph_layers: 2`
reproduces that.

Item table = mean of layer outputs E_0..E_K (E_0 = the item embedding). It is used both as the
SASRec encoder's item inputs and as the output item embeddings (scores), as in LightGCN: one table,
so every gradient reaches the graph. Built once per dataset; cached as a "graph" artifact when the
run has an artifact store.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Sequence

import numpy as np
import torch

from dr4sr.models.base import Backbone, BuildContext, init_weights
from dr4sr.models.sasrec import SASRecConfig, SASRecEncoder

GRAPH_NORMS = ("symmetric", "authors")
GRAPH_SOURCES = ("original", "training")


@dataclasses.dataclass
class GCEGNNConfig(SASRecConfig):
    graph_layers: int = 3
    graph_window: int = 2  # link each item to its next `window` items
    graph_weights: list[float] = dataclasses.field(default_factory=lambda: [1.0, 0.5])  # weight per distance
    graph_norm: str = "symmetric"
    graph_self_loops: bool = False
    graph_source: str = "original"  # sequences the graph is built from: "original" or "training" rows

    def validate(self) -> None:
        from dr4sr.errors import ConfigError

        super().validate()
        if self.graph_layers < 0:
            raise ConfigError(f"model.graph_layers must be >= 0, got {self.graph_layers}")
        if self.graph_window < 1:
            raise ConfigError(f"model.graph_window must be >= 1, got {self.graph_window}")
        if len(self.graph_weights) != self.graph_window:
            raise ConfigError(f"model.graph_weights needs one weight per distance 1..graph_window "
                              f"({self.graph_window}), got {self.graph_weights}")
        if any(w <= 0 for w in self.graph_weights):
            raise ConfigError(f"model.graph_weights must be positive, got {self.graph_weights}")
        if self.graph_norm not in GRAPH_NORMS:
            raise ConfigError(f"model.graph_norm must be one of {GRAPH_NORMS}, got {self.graph_norm!r}")
        if self.graph_source not in GRAPH_SOURCES:
            raise ConfigError(f"model.graph_source must be one of {GRAPH_SOURCES}, got {self.graph_source!r}")


def transition_edges(sequences: Sequence[np.ndarray], num_items: int,
                     weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric weighted adjacency (rows, cols, values) over ids 0..num_items, duplicates summed."""
    rows, cols, vals = [], [], []
    for k, w in enumerate(weights, start=1):
        for s in sequences:
            s = np.asarray(s, dtype=np.int64)
            if len(s) > k:
                src, dst = s[:-k], s[k:]
                keep = src != dst  # a repeated item is not a transition to another item
                rows.append(src[keep])
                cols.append(dst[keep])
                vals.append(np.full(int(keep.sum()), w, dtype=np.float64))
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float64)
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    r, c, v = np.concatenate([r, c]), np.concatenate([c, r]), np.concatenate([v, v])
    n = num_items + 1
    key = r * n + c
    uniq, inv = np.unique(key, return_inverse=True)
    summed = np.bincount(inv, weights=v, minlength=len(uniq))
    return uniq // n, uniq % n, summed


def normalize_edges(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, num_items: int,
                    norm: str = "symmetric", self_loops: bool = False):
    """Normalised adjacency as (rows, cols, values), row-major sorted (ready for CSR)."""
    n = num_items + 1
    if self_loops:
        diag = np.arange(1, n, dtype=np.int64)  # not for padding (id 0)
        rows, cols = np.concatenate([rows, diag]), np.concatenate([cols, diag])
        vals = np.concatenate([vals, np.ones(len(diag))])
        key = rows * n + cols
        uniq, inv = np.unique(key, return_inverse=True)
        vals = np.bincount(inv, weights=vals, minlength=len(uniq))
        rows, cols = uniq // n, uniq % n
    if norm == "symmetric":
        deg = np.bincount(rows, weights=vals, minlength=n)
        inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-30)), 0.0)
        out = vals * inv_sqrt[rows] * inv_sqrt[cols]
    else:  # authors: D^-1 A + A D^-1 with D = number of neighbours
        deg = np.bincount(rows, minlength=n).astype(np.float64)
        inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1.0), 0.0)
        out = vals * (inv[rows] + inv[cols])
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], out[order].astype(np.float32)


def build_graph(cfg: GCEGNNConfig, ctx: BuildContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised graph from the original training sequences or the training rows (cfg.graph_source);
    read from / written to the artifact store if any, keyed by what it was built from."""
    from dr4sr.errors import ConfigError

    seqs = ctx.original_train if cfg.graph_source == "original" else ctx.training_rows
    if seqs is None:
        what = "original training sequences" if cfg.graph_source == "original" else "training rows"
        raise ConfigError(f"backbone gcegnn with model.graph_source={cfg.graph_source} needs the {what}")
    graph_cfg = {"window": cfg.graph_window, "weights": list(cfg.graph_weights), "norm": cfg.graph_norm,
                 "self_loops": cfg.graph_self_loops, "num_items": ctx.num_items}

    def compute():
        r, c, v = transition_edges(seqs, ctx.num_items, cfg.graph_weights)
        return normalize_edges(r, c, v, ctx.num_items, cfg.graph_norm, cfg.graph_self_loops)

    if not ctx.store_root or not ctx.dataset_fingerprint:
        return compute()
    from dr4sr.artifacts import ArtifactStore, artifact_id

    store = ArtifactStore(ctx.store_root)
    inputs = {"splits": ctx.dataset_fingerprint}
    if cfg.graph_source == "training":
        from dr4sr.data.sequences import rows_fingerprint

        inputs["rows"] = rows_fingerprint(seqs)
    found = store.get("graph", artifact_id("graph", graph_cfg, inputs))
    if found is not None:
        data = np.load(found.path / "graph.npz")
        return data["rows"], data["cols"], data["values"]
    def build(w) -> None:
        r, c, v = compute()
        np.savez(w.dir / "graph.npz", rows=r, cols=c, values=v)
        w.info.update({"rows": {"edges": int(len(v)), "items": ctx.num_items}})

    data = np.load(store.get_or_create("graph", graph_cfg, inputs, build).path / "graph.npz")
    return data["rows"], data["cols"], data["values"]


class _SymmetricSpMM(torch.autograd.Function):
    """y = A x for a symmetric sparse A: the backward is A g again. Torch's generic sparse backward
    builds a transposed copy of A every step and was ~10x slower on CPU."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj = adj
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, ctx.adj @ grad


class GCEGNN(Backbone):
    def __init__(self, cfg: GCEGNNConfig, ctx: BuildContext):
        super().__init__(ctx.num_items, cfg.hidden_size)
        self.graph_layers = cfg.graph_layers
        self.encoder = SASRecEncoder(cfg, ctx.max_len)
        init_weights(self)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        rows, cols, vals = build_graph(cfg, ctx)
        n = ctx.num_items + 1
        crow = np.zeros(n + 1, dtype=np.int64)
        np.add.at(crow, rows + 1, 1)
        # CSR parts as plain tensors, not buffers: never checkpointed, and DDP (which re-broadcasts
        # buffers before every forward) leaves them alone; `_apply` moves them with the module
        self.adj_crow = torch.from_numpy(np.cumsum(crow))
        self.adj_col = torch.from_numpy(cols.astype(np.int64))
        self.adj_val = torch.from_numpy(vals.astype(np.float32))
        self._table_cache: tuple | None = None

    @property
    def num_edges(self) -> int:
        return int(self.adj_val.numel())

    def adjacency(self) -> torch.Tensor:
        n = self.num_items + 1
        with warnings.catch_warnings():  # "sparse CSR support is in beta": matmul is all we use
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.adj_crow, self.adj_col, self.adj_val, (n, n),
                                           check_invariants=False)

    def propagate(self) -> torch.Tensor:
        """Mean of E_0..E_K with E_{k+1} = Â E_k: (num_items + 1, d)."""
        emb = self.item_embedding.weight
        if self.graph_layers == 0:
            return emb
        adj = self.adjacency()
        total, cur = emb, emb
        for _ in range(self.graph_layers):
            cur = _SymmetricSpMM.apply(adj, cur)
            total = total + cur
        return total / (self.graph_layers + 1)

    def item_table(self) -> torch.Tensor:
        # One propagation per optimizer step: forward() and the loss's item_weights() share it.
        # The key is the embedding's version counter (bumped by every in-place update/load) and the
        # grad mode, so a stale or graph-less table is never reused.
        w = self.item_embedding.weight
        key = (w._version, w.data_ptr(), torch.is_grad_enabled(), self.training)
        if self._table_cache is not None and self._table_cache[0] == key:
            return self._table_cache[1]
        table = self.propagate()
        self._table_cache = (key, table)
        return table

    def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self._table_cache = None  # a new forward with grad builds a fresh autograd graph
        return self.encoder(self.item_table()[seqs])

    def item_weights(self) -> torch.Tensor:
        return self.item_table()

    def __getstate__(self):
        state = dict(super().__getstate__())
        state["_table_cache"] = None  # an autograd-graph tensor: never copied or pickled
        return state

    def _apply(self, fn, *args, **kwargs):
        self._table_cache = None  # device/dtype moves invalidate the cached table
        out = super()._apply(fn, *args, **kwargs)
        self.adj_crow, self.adj_col, self.adj_val = (fn(t) for t in (self.adj_crow, self.adj_col, self.adj_val))
        return out
