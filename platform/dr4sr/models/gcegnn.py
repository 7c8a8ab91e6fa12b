""""GCE-GNN" as the paper ran it: LightGCN propagation over an item-item transition graph + SASRec.

The graph (dr4sr.data.graph) comes in through `BuildContext.item_graph`: the model never builds or caches
it. By default it links items of the original training sequences (`graph_source: original`; `training`
uses the rows the model trains on, e.g. a regenerated dataset) with weights `graph_weights` per distance,
normalised "symmetric" (LightGCN, what the paper names). The authors' code differs (see docs/RECIPE_FACTS.md):
`graph_norm: authors` + `graph_self_loops: true` + `graph_layers: 2` reproduces it.

Item table = mean of layer outputs E_0..E_K (E_0 = the item embedding). It is used both as the
SASRec encoder's item inputs and as the output item embeddings (scores), as in LightGCN: one table,
so every gradient reaches the graph.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from dr4sr.data.graph import GRAPH_NORMS, GRAPH_SOURCES, GraphSpec
from dr4sr.errors import ConfigError
from dr4sr.models.base import Backbone, BuildContext, init_weights
from dr4sr.models.sasrec import SASRecConfig, SASRecEncoder


@dataclasses.dataclass
class GCEGNNConfig(SASRecConfig):
    graph_layers: int = 3
    graph_window: int = 2  # link each item to its next `window` items
    graph_weights: list[float] = dataclasses.field(default_factory=lambda: [1.0, 0.5])  # weight per distance
    graph_norm: str = "symmetric"
    graph_self_loops: bool = False
    graph_source: str = "original"  # sequences the graph is built from: "original" or "training" rows

    def validate(self) -> None:
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


def graph_spec(cfg: GCEGNNConfig) -> GraphSpec:
    """The item graph this configuration propagates over (the registry's `item_graph` entry)."""
    return GraphSpec(cfg.graph_source, cfg.graph_window, tuple(float(w) for w in cfg.graph_weights),
                     cfg.graph_norm, cfg.graph_self_loops)


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
        graph = ctx.item_graph
        if graph is None:
            raise ConfigError("backbone gcegnn needs its item graph (BuildContext.item_graph): build it with "
                              "dr4sr.data.graph.build_item_graph, or build the model with "
                              "dr4sr.models.registry.build_backbone")
        rows, cols, vals = graph.rows, graph.cols, graph.values
        n = ctx.num_items + 1
        if len(rows) and max(int(rows.max()), int(cols.max())) >= n:
            raise ConfigError(f"the item graph has item ids above num_items={ctx.num_items}")
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
