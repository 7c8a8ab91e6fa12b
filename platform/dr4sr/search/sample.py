"""Smoke-size datasets: a seeded sample of a dataset's users over its most popular items.

A plain sample of a few hundred users of a 10k-item catalogue shares almost no patterns (mining finds
nothing to pre-train on), so sequences are first cut to the `items` most popular items; users left
with fewer than 5 of them are not drawn. Item ids are renumbered 1..n."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dr4sr.data.datasets import load_dataset


def sample_dataset(dataset: str, dest_dir: str | Path, users: int, data_dir: str | None = None,
                   seed: int = 0, items: int | None = None) -> Path:
    """Write `<dest_dir>/<users>u/<name>.txt` (the file keeps the dataset's name, so per-dataset
    defaults such as mine.alpha still apply) and return it; an existing sample is reused."""
    data = load_dataset(dataset, data_dir)
    name = Path(dataset).stem.lower()
    path = Path(dest_dir) / f"{users}u" / f"{name}.txt"
    if path.is_file():
        return path
    items = items or users
    counts = np.bincount(np.concatenate(data.sequences), minlength=data.num_items + 1)
    keep = np.zeros(data.num_items + 1, dtype=bool)
    keep[np.argsort(-counts[1:], kind="stable")[:items] + 1] = True
    cut = [s[keep[s]] for s in data.sequences]
    eligible = np.flatnonzero([len(s) >= 5 for s in cut])
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(eligible, size=min(users, len(eligible)), replace=False))
    remap: dict[int, int] = {}
    lines = []
    for i in pick:
        seq = [remap.setdefault(int(x), len(remap) + 1) for x in cut[i]]
        lines.append(f"{int(data.users[i])} " + " ".join(map(str, seq)))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path
