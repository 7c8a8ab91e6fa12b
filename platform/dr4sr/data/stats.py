"""Dataset statistics in the form of the paper's Table 1 / Table 2."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def sequence_stats(sequences: Sequence[np.ndarray], num_users: int | None = None,
                   num_items: int | None = None) -> dict:
    """#users (or #sequences), #items, #interactions, average/min/max length, sparsity."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    items = np.unique(np.concatenate(sequences)) if len(sequences) else np.zeros(0, dtype=np.int64)
    n_items = int(num_items if num_items is not None else len(items))
    n_rows = int(num_users if num_users is not None else len(sequences))
    inter = int(lengths.sum())
    return {
        "sequences": len(sequences),
        "users": n_rows,
        "items": n_items,
        "items_used": int(len(items)),
        "interactions": inter,
        "avg_length": float(lengths.mean()) if len(lengths) else 0.0,
        "min_length": int(lengths.min()) if len(lengths) else 0,
        "max_length": int(lengths.max()) if len(lengths) else 0,
        "sparsity": 1.0 - inter / (n_rows * n_items) if n_rows and n_items else 1.0,
    }


def format_stats(name: str, stats: dict) -> str:
    rows = [
        ("#users", f"{stats['users']:,}"),
        ("#items", f"{stats['items']:,}"),
        ("#interactions", f"{stats['interactions']:,}"),
        ("avg length", f"{stats['avg_length']:.2f}"),
        ("min / max length", f"{stats['min_length']} / {stats['max_length']}"),
        ("sparsity", f"{100 * stats['sparsity']:.2f}%"),
    ]
    if stats.get("dropped_users"):
        rows.append(("users dropped by filtering", f"{stats['dropped_users']:,}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join([name] + [f"  {k:<{width}}  {v}" for k, v in rows])
