"""The item-item transition graph a graph backbone (GCE-GNN) propagates over, built from item sequences
outside the model: the caller builds it (dr4sr.train.graph caches it as a "graph" artifact) and hands it
to the model's constructor.

In every sequence, item s[i] is linked to s[i+1], ..., s[i+window] with one weight per distance (default
1 and 1/2); edges are symmetric and repeated transitions add up. Normalisation (D = weighted degree):
"symmetric" = D^-1/2 A D^-1/2 (LightGCN, what the paper names); "authors" = D^-1 A + A D^-1 with D the
number of neighbours, optionally with self-loops (the authors' code, see docs/RECIPE_FACTS.md).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from dr4sr.errors import ConfigError

GRAPH_NORMS = ("symmetric", "authors")
GRAPH_SOURCES = ("original", "training")


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    """The graph a backbone asks for: which sequences it is built from and how."""
    source: str = "original"  # the users' "original" training sequences, or the "training" rows
    window: int = 2
    weights: tuple[float, ...] = (1.0, 0.5)  # one per distance 1..window
    norm: str = "symmetric"
    self_loops: bool = False

    def key(self, num_items: int) -> dict:
        """The graph artifact's config (the source enters its inputs)."""
        return {"window": self.window, "weights": list(self.weights), "norm": self.norm,
                "self_loops": self.self_loops, "num_items": num_items}


@dataclasses.dataclass
class ItemGraph:
    """Normalised adjacency over item ids 0..num_items (0 = padding, isolated), row-major sorted."""
    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(len(self.values))


def graph_sequences(spec: GraphSpec, original: Sequence[np.ndarray] | None,
                    training: Sequence[np.ndarray] | None) -> Sequence[np.ndarray]:
    seqs = original if spec.source == "original" else training
    if seqs is None:
        what = "original training sequences" if spec.source == "original" else "training rows"
        raise ConfigError(f"an item graph with model.graph_source={spec.source} needs the {what}")
    return seqs


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


def build_item_graph(spec: GraphSpec, sequences: Sequence[np.ndarray], num_items: int) -> ItemGraph:
    r, c, v = transition_edges(sequences, num_items, spec.weights)
    return ItemGraph(*normalize_edges(r, c, v, num_items, spec.norm, spec.self_loops))
