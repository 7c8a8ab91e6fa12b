"""Test NDCG@20 and Recall@20 of finished runs per head/tail group, the groups MELT is built for: users split
by training length, test targets by their item's training frequency (the split of configs/melt.yaml:
`melt.pareto`, `melt.item_pareto_offset`). Reads each run's user_metrics.parquet (every user's test rank).

    python benchmarks/longtail_breakdown.py --dataset beauty \
        sasrec=/work/grid-out/beauty/sasrec/backbone-seed0 melt=/work/grid-out/beauty/melt/baseline-seed0

A label given twice (label=a label=b) averages the runs per user, as the Table-3 paired tests do; the last
column pairs each run with the first label's over the group's users (paired t-test on NDCG@20).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy import stats

from dr4sr.baselines.longtail import split_head_tail
from dr4sr.config import CONFIG_DIR, load_yaml
from dr4sr.data.datasets import load_dataset
from dr4sr.data.splits import leave_one_out
from dr4sr.search.tables import user_metric


def per_user(folder: Path, users: np.ndarray, metric: str) -> np.ndarray:
    """`metric` per user in the order of `users` (a run that ranked other users stops with its folder)."""
    table = pq.read_table(folder / "user_metrics.parquet").to_pydict()
    by_user = dict(zip(table["user"], table["rank"]))
    if len(by_user) != len(users) or any(u not in by_user for u in users):
        sys.exit(f"{folder}: its user_metrics.parquet ranks {len(by_user):,} users, the dataset has {len(users):,}")
    return user_metric(np.array([by_user[u] for u in users]), metric)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--data-dir")
    ap.add_argument("runs", nargs="+", metavar="LABEL=FOLDER")
    args = ap.parse_args(argv)
    melt = load_yaml(CONFIG_DIR / "melt.yaml")["melt"]
    splits = leave_one_out(load_dataset(args.dataset, args.data_dir))
    split = split_head_tail(splits.train, splits.num_items, melt["pareto"], melt["item_pareto_offset"])
    groups = {"all": np.ones(splits.num_users, bool), "head users": ~split.tail_user, "tail users": split.tail_user,
              "head-item targets": ~split.tail_item[splits.test_target],
              "tail-item targets": split.tail_item[splits.test_target]}
    runs: dict[str, list[Path]] = {}
    for spec in args.runs:
        label, sep, folder = spec.partition("=")
        if not sep or not Path(folder, "user_metrics.parquet").is_file():
            sys.exit(f"{spec}: expected LABEL=FOLDER with FOLDER/user_metrics.parquet")
        runs.setdefault(label, []).append(Path(folder))
    values = {label: {m: np.mean([per_user(f, splits.users, m) for f in folders], axis=0)
                      for m in ("ndcg@20", "recall@20")} for label, folders in runs.items()}
    first = next(iter(values))
    print(f"{args.dataset}: {split.summary()}; test N@20 / R@20 per group (runs averaged per user)")
    print(f"{'group':<20}{'users':>8}  " + "".join(f"{label + ' N@20':>18}{'R@20':>8}" for label in values)
          + f"  vs {first} (N@20, paired t p)")
    for name, mask in groups.items():
        cells = "".join(f"{v['ndcg@20'][mask].mean():>18.4f}{v['recall@20'][mask].mean():>8.4f}"
                        for v in values.values())
        duels = []
        for label, v in list(values.items())[1:]:
            a, b = values[first]["ndcg@20"][mask], v["ndcg@20"][mask]
            gain = b.mean() / a.mean() - 1 if a.mean() > 0 else float("nan")
            p = stats.ttest_rel(b, a).pvalue if np.any(a != b) else 1.0
            duels.append(f"{label} {100 * gain:+.1f}% (p {p:.2g})")
        print(f"{name:<20}{int(mask.sum()):>8}  {cells}  " + "; ".join(duels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
