"""Compare runs: metric tables with relative gains and paired significance tests over users."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow.parquet as pq

from dr4sr.errors import DR4SRError

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def user_ndcg(ranks: np.ndarray, k: int = 20) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def load_run(run_dir: str | Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """(metrics.json, users, ranks) of one finished run, with errors that name the missing file."""
    run_dir = Path(run_dir)
    metrics_path, ranks_path = run_dir / "metrics.json", run_dir / "user_metrics.parquet"
    for path in (metrics_path, ranks_path):
        if not path.is_file():
            raise DR4SRError(f"{path}: not found (is {run_dir} a finished run directory?)")
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as exc:
        raise DR4SRError(f"{metrics_path}: not valid JSON ({exc})") from None
    if "test" not in metrics:
        raise DR4SRError(f"{metrics_path}: no 'test' metrics (the run did not finish)")
    table = pq.read_table(ranks_path)
    missing = {"user", "rank"} - set(table.column_names)
    if missing:
        raise DR4SRError(f"{ranks_path}: missing column(s) {sorted(missing)}")
    users = table["user"].to_numpy()
    order = np.argsort(users, kind="stable")
    return metrics, users[order], table["rank"].to_numpy()[order]


def paired_test(base_ranks: Sequence[np.ndarray], new_ranks: Sequence[np.ndarray], k: int = 20) -> dict:
    """Per-user NDCG@k averaged over seeds, then a paired t-test and a Wilcoxon signed-rank test."""
    from scipy import stats

    a = np.mean([user_ndcg(r, k) for r in base_ranks], axis=0)
    b = np.mean([user_ndcg(r, k) for r in new_ranks], axis=0)
    diff = b - a
    out = {"users": int(len(a)), "mean_diff": float(diff.mean()),
           "t_pvalue": float(stats.ttest_rel(b, a).pvalue) if diff.any() else 1.0}
    nonzero = diff[diff != 0]
    out["wilcoxon_pvalue"] = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) > 0 else 1.0
    return out


def format_significance(name: str, baseline: str, sig: dict) -> str:
    return (f"{name} vs {baseline}: per-user NDCG@20 diff {sig['mean_diff']:+.5f}, paired t-test "
            f"p={sig['t_pvalue']:.3g}, Wilcoxon p={sig['wilcoxon_pvalue']:.3g} over {sig['users']:,} users")


def mean_metrics(runs: Sequence[dict], split: str = "test") -> dict[str, float]:
    return {m: float(np.mean([r[split][m] for r in runs])) for m in METRICS}


def comparison_table(rows: dict[str, dict[str, float]], baseline: str) -> str:
    """Markdown table of test metrics per variant, with the relative gain over `baseline`."""
    head = "| variant | " + " | ".join(METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 1)]
    base = rows[baseline]
    for name, vals in rows.items():
        cells = []
        for m in METRICS:
            cell = f"{vals[m]:.4f}"
            if name != baseline and base[m] > 0:
                cell += f" ({100 * (vals[m] / base[m] - 1):+.1f}%)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
