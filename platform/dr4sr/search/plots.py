"""Sweep figures in the form of the paper's Figures 6-7: metric against the swept value (K or gamma),
one line per dataset / backbone / variant, error bars = std over seeds (train.seed)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

LINE_KEYS = ("dataset", "backbone", "variant")
SEED_KEY = "train.seed"


def swept_keys(rows: list[dict], dims: list[str]) -> list[str]:
    """Numeric dimensions with more than one value, other than the seed and the line keys."""
    out = []
    for key in dims:
        values = {r.get(key) for r in rows}
        if key in LINE_KEYS or key == SEED_KEY or len(values) < 2:
            continue
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out.append(key)
    return out


def sweep_series(rows: list[dict], x_key: str, dims: list[str], split: str, metric: str) -> dict:
    """{line label: [(x, mean, std, n)]} over finished trials; other swept keys split lines too."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    others = [k for k in dims if k not in (x_key, SEED_KEY)]
    for r in rows:
        if r["status"] != "finished":
            continue
        label = ", ".join(f"{r[k]}" if k in LINE_KEYS else f"{k}={r[k]}" for k in others) or metric
        groups[label][r[x_key]].append(r["_metrics"][split][metric])
    return {label: [(x, float(np.mean(v)), float(np.std(v)), len(v)) for x, v in sorted(pts.items())]
            for label, pts in groups.items()}


def sweep_plots(rows: list[dict], dims: list[str], out_dir: Path, title: str, metric: str = "ndcg@20",
                note: str = "") -> list[Path]:
    """One figure per swept key; `note` (a smoke test, an interrupted study) heads every title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for x_key in swept_keys(rows, dims):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, split in zip(axes, ("valid", "test")):
            for label, pts in sweep_series(rows, x_key, dims, split, metric).items():
                xs, means, stds, _ = zip(*pts)
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
            ax.set_xlabel(x_key)
            ax.set_ylabel(f"{split} {metric.upper().replace('NDCG', 'NDCG')}")
            ax.set_title(f"{split}" + (" (smoke test)" if "smoke" in note else ""))
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle((f"{note.upper()}\n" if note else "")
                     + f"{title}: {metric} vs {x_key} (error bars: std over seeds)",
                     color="tab:red" if note else "black")
        fig.tight_layout()
        path = out_dir / f"sweep_{x_key.replace('.', '_')}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
