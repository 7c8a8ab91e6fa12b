"""One PNG per dataset: test NDCG@20 by variant for each model, ours (solid, with the seed std) beside
the paper's (hatched) where the paper has the cell."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dr4sr.paths import atomic_write
from dr4sr.search.table3_format import ONE_SEED, VARIANT_NAMES, layout, one_seed, row_name


def plot_datasets(rows: list[dict], out_dir: Path, name: str = "table3", title: str | None = None,
                  metric: str = "ndcg@20") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets, groups, by = layout(rows)
    paths = []
    for dataset in datasets:
        models = [(m, vs) for m, vs in groups if any((dataset, m, v) in by for v in vs)]
        variants = list(dict.fromkeys(v for _, vs in models for v in vs))
        if not models:
            continue
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(models) * max(1, len(variants)) / 2), 4.2))
        width = 0.8 / max(1, len(variants))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for j, v in enumerate(variants):
            xs = np.arange(len(models)) + (j - (len(variants) - 1) / 2) * width
            for i, (model, _) in enumerate(models):
                row = by.get((dataset, model, v))
                color = colors[j % len(colors)]
                if row is not None:
                    ax.bar(xs[i] - width / 4, row[f"{metric}_mean"], width / 2, yerr=row[f"{metric}_std"],
                           color=color, capsize=2, label=VARIANT_NAMES.get(v, v))
                    if one_seed(row):
                        ax.text(xs[i] - width / 4, row[f"{metric}_mean"], ONE_SEED, ha="center", va="bottom")
                    if row.get(f"{metric}_paper") is not None:
                        ax.bar(xs[i] + width / 4, row[f"{metric}_paper"], width / 2, color="white", edgecolor=color,
                               hatch="//")
        ax.set_xticks(np.arange(len(models)))
        ax.set_xticklabels([row_name(m, "backbone") for m, _ in models])
        ax.set_ylabel(f"test {metric.upper().replace('NDCG', 'NDCG')}")
        seeds = max(by[k]["seeds"] for k in by if k[0] == dataset)
        ax.set_title((f"{title}\n" if title else "") + f"{dataset}: ours (solid, mean ± std over {seeds} seed(s); "
                     f"{ONE_SEED} one seed)\nbeside the paper's (hatched)",
                     fontsize=9)
        handles, labels = ax.get_legend_handles_labels()
        by_label = dict(zip(labels, handles))
        ax.legend(by_label.values(), by_label.keys(), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1),
                  ncol=3, frameon=False)
        fig.tight_layout()
        paths.append(atomic_write(Path(out_dir) / f"{name}_{dataset}.png",
                                  lambda tmp: fig.savefig(tmp, dpi=120, format="png")))
        plt.close(fig)
    return paths
