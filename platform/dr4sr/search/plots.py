"""Sweep figures in the form of the paper's Figures 6-7: metric against the swept value (K or gamma),
one line per dataset / backbone / variant, error bars = std over seeds (train.seed)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

LINE_KEYS = ("dataset", "backbone", "variant")
SEED_KEY = "train.seed"
AXIS_NAMES = {  # the paper's symbols, in words
    "regenerate.gamma": "γ (share of generative decoding steps)", "regen.k": "K (memories, rows per sequence)",
    "mine.alpha": "α (maximum pattern span)", "mine.beta": "β (minimum pattern support)",
    "personalizer.t_lower": "T_lower (lower steps per upper step)",
}


def axis_name(key: str) -> str:
    return AXIS_NAMES.get(key, key)


def reference_line(ax, value: float | None, label: str) -> None:
    if value is not None:
        ax.axhline(value, color="grey", linestyle="--", linewidth=1, label=label)


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
                note: str = "", reference: dict | None = None) -> list[Path]:
    """One figure per swept key; `note` (a smoke test, an interrupted study) heads every title;
    `reference` ({"label", "valid", "test"}: the backbone's metric) is drawn as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for x_key in swept_keys(rows, dims):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        seeds = 1
        for ax, split in zip(axes, ("valid", "test")):
            for label, pts in sweep_series(rows, x_key, dims, split, metric).items():
                xs, means, stds, counts = zip(*pts)
                seeds = max(seeds, *counts)
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=label)
            if reference:
                reference_line(ax, reference[split], reference["label"])
            ax.set_xlabel(axis_name(x_key))
            ax.set_ylabel(f"{split} {metric.upper().replace('NDCG', 'NDCG')}")
            ax.set_title(f"{split}" + (" (smoke test)" if "smoke" in note else ""))
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle((f"{note.upper()}\n" if note else "")
                     + f"{title}: {metric} vs {axis_name(x_key).split(' (')[0]} "
                     + (f"(mean ± std over {seeds} seeds)" if seeds > 1 else "(one seed)"),
                     color="tab:red" if note else "black")
        fig.tight_layout()
        path = out_dir / f"sweep_{x_key.replace('.', '_')}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def slice_plot(rows: list[dict], dims: list[str], objective: str, path: Path, title: str, note: str = "",
               reference: dict | None = None) -> Path | None:
    """The study's objective against each dimension, one panel per dimension: finished trials in colour
    (by trial order), ASHA-stopped ones hollow at their best validation; categorical values at even steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if r["status"] in ("finished", "stopped by ASHA") and r.get(objective) not in ("", None)]
    keys = [k for k in dims if len({str(r.get(k)) for r in shown}) > 1]
    if not shown or not keys:
        return None
    cols = min(3, len(keys))
    nrows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    order = {r["trial_id"]: i for i, r in enumerate(shown)}
    for ax, key in zip(axes.flat, keys):
        values = [r[key] for r in shown]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        levels = sorted({str(v) for v in values})
        for r in shown:
            x = r[key] if numeric else levels.index(str(r[key]))
            done = r["status"] == "finished"
            ax.scatter(x, float(r[objective]), c=[order[r["trial_id"]]], cmap="viridis", vmin=0, vmax=len(shown),
                       s=28, marker="o" if done else "s", alpha=0.9 if done else 0.5,
                       edgecolors="black" if done else "grey", linewidths=0.5)
        if not numeric:
            ax.set_xticks(range(len(levels)), levels, rotation=20, fontsize=8)
        if reference:
            reference_line(ax, reference["valid"], reference["label"])
            ax.legend(fontsize=7)
        ax.set_xlabel(axis_name(key), fontsize=9)
        ax.set_ylabel(objective.replace("_", " "))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle((f"{note.upper()}\n" if note else "") + f"{title}: {objective} per trial (colour: trial order; "
                 "squares: stopped by ASHA)", color="tab:red" if note else "black", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def importance_plot(scores: dict[str, float], evaluator: str, trials: int, path: Path, title: str,
                    note: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(scores)[::-1]  # largest on top
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.4))
    ax.barh([axis_name(n) for n in names], [scores[n] for n in names], color="tab:blue")
    ax.set_xlabel(f"importance ({evaluator}, {trials} completed trials)")
    ax.set_title((f"{note.upper()}\n" if note else "") + f"{title}: what the validation metric depends on",
                 color="tab:red" if note else "black", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
