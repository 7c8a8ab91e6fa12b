"""The item graph a backbone asks for (dr4sr.data.graph) as a stored "graph" artifact: `graph.npz` with the
normalised adjacency. dr4sr.stages builds it once per (spec, sequences) and hands it to the training run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dr4sr.data.graph import ItemGraph


def write_graph(writer, graph: ItemGraph, num_items: int) -> None:
    np.savez(writer.dir / "graph.npz", rows=graph.rows, cols=graph.cols, values=graph.values)
    writer.info.update({"rows": {"edges": len(graph), "items": num_items}})


def read_graph(path: str | Path) -> ItemGraph:
    with np.load(Path(path) / "graph.npz") as data:
        return ItemGraph(data["rows"], data["cols"], data["values"])
