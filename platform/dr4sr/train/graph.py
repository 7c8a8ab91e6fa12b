"""The item graph a backbone asks for (dr4sr.data.graph), built once per dataset and cached in the artifact
store as a "graph" artifact keyed by what it was built from; the worker passes it to the model."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from dr4sr.artifacts import ArtifactStore, artifact_id
from dr4sr.data.graph import GraphSpec, ItemGraph, build_item_graph, graph_sequences
from dr4sr.data.sequences import rows_fingerprint


def graph_inputs(spec: GraphSpec, fingerprint: str, sequences: Sequence[np.ndarray]) -> dict:
    inputs = {"splits": fingerprint}
    if spec.source == "training":  # the rows trained on: regenerated data makes another graph
        inputs["rows"] = rows_fingerprint(sequences)
    return inputs


def cached_item_graph(spec: GraphSpec, num_items: int, original: Sequence[np.ndarray] | None,
                      training: Sequence[np.ndarray] | None, store_root: str | None = None,
                      fingerprint: str = "") -> ItemGraph:
    """The graph from the store when one was built from the same sequences, else built (and stored when
    there is a store)."""
    seqs = graph_sequences(spec, original, training)
    if not store_root or not fingerprint:
        return build_item_graph(spec, seqs, num_items)
    store = ArtifactStore(store_root)
    key, inputs = spec.key(num_items), graph_inputs(spec, fingerprint, seqs)
    found = store.get("graph", artifact_id("graph", key, inputs))
    if found is None:
        def build(w) -> None:
            graph = build_item_graph(spec, seqs, num_items)
            np.savez(w.dir / "graph.npz", rows=graph.rows, cols=graph.cols, values=graph.values)
            w.info.update({"rows": {"edges": len(graph), "items": num_items}})

        found = store.get_or_create("graph", key, inputs, build)
    with np.load(found.path / "graph.npz") as data:
        return ItemGraph(data["rows"], data["cols"], data["values"])
