"""The paper's Figure 4 view of finished DR4SR+ runs: g_phi's weights over rows x positions for a few
training rows (the same rows in every run when they share the data), and the weight variance per run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dr4sr.errors import DR4SRError

WEIGHTS_FILE = "personalizer_weights.parquet"


def load_weights(run_dir: str | Path):
    import pandas as pd

    path = Path(run_dir) / WEIGHTS_FILE
    if not path.exists():
        raise DR4SRError(f"{run_dir}: no {WEIGHTS_FILE} (not a DR4SR+ run: train with personalizer.enabled=true)")
    table = pd.read_parquet(path)
    missing = {"row", "position", "weight", "fixed"} - set(table.columns)
    if missing:
        raise DR4SRError(f"{path}: missing column(s) {sorted(missing)}")
    return table


def pick_rows(table, n: int, seed: int = 0) -> np.ndarray:
    """n re-weighted rows with at least two targets, drawn with a seeded generator."""
    free = table[~table["fixed"]]
    sizes = free.groupby("row").size()
    candidates = sizes.index[sizes >= 2].to_numpy()
    if len(candidates) == 0:
        candidates = sizes.index.to_numpy()
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))


def weight_grid(table, rows: np.ndarray) -> np.ndarray:
    """(len(rows), max position) weights; NaN where a row has no target."""
    sub = table[table["row"].isin(rows)]
    width = int(sub["position"].max()) if len(sub) else 1
    grid = np.full((len(rows), width), np.nan)
    index = {r: i for i, r in enumerate(rows)}
    grid[sub["row"].map(index).to_numpy(), sub["position"].to_numpy() - 1] = sub["weight"].to_numpy()
    return grid


def draw_figure(runs: list[tuple[str, str]], out_png: str | Path, n_rows: int = 25, seed: int = 0) -> dict:
    """One heatmap per run plus a bar chart of each run's weight variance; returns the variances."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = [(name, load_weights(d)) for name, d in runs]
    rows = pick_rows(tables[0][1], n_rows, seed)
    fig, axes = plt.subplots(1, len(tables) + 1, figsize=(3.2 * (len(tables) + 1), 4.2), squeeze=False)
    variances = {}
    for ax, (name, table) in zip(axes[0], tables):
        own = rows if table["row"].isin(rows).sum() else pick_rows(table, n_rows, seed)
        variances[name] = float(table.loc[~table["fixed"], "weight"].var())
        im = ax.imshow(weight_grid(table, own), aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_title(f"{name}\nvar {variances[name]:.2e}", fontsize=9)
        ax.set_xlabel("position")
        ax.set_ylabel("row")
        fig.colorbar(im, ax=ax, fraction=0.046)
    bar = axes[0][-1]
    bar.bar(list(variances), list(variances.values()), color="tab:blue")
    bar.set_title("weight variance", fontsize=9)
    bar.tick_params(axis="x", rotation=45, labelsize=8)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return variances
