"""The paper's Table 3 from a grid folder: means over seeds, gains over the backbone, paired tests.

Run folders are `<grid>/<dataset>/<model>/<variant>-seed<S>`. Each (dataset, model, variant) becomes
one long-format row with, per metric, the mean and std over the seeds that finished, the relative gain
over the backbone (seed means over the seeds both rows finished), a paired t-test over users (each
user's metric averaged over those seeds; `*` p < 0.05, `**` p < 0.01) and the paper's value. Rows fill
in as runs finish. `table3_format` renders them in the paper's layout; `write_table3` writes all files.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dr4sr.baselines import SINGLE_FIT
from dr4sr.paths import atomic_write, atomic_write_text
from dr4sr.report import METRICS, load_run
from dr4sr.search.paper import paper_value

SHORT = {"recall@10": "R@10", "recall@20": "R@20", "ndcg@10": "N@10", "ndcg@20": "N@20"}
BASELINE = "backbone"


def run_dir(grid: Path, dataset: str, backbone: str, variant: str, seed: int) -> Path:
    return Path(grid) / dataset / backbone / f"{variant}-seed{seed}"


def _load(grid, dataset, backbone, variant, seeds) -> dict[int, tuple]:
    out = {}
    for s in seeds:
        d = run_dir(grid, dataset, backbone, variant, s)
        if (d / "metrics.json").is_file() and (d / "user_metrics.parquet").is_file():
            try:
                out[s] = load_run(d)
            except Exception:  # a half-written folder of a run in progress: not a result yet
                continue
    return out


def user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
    """Each user's value of `metric` from the 1-based rank of their target (closed forms)."""
    kind, k = metric.split("@")
    ranks = np.asarray(ranks, dtype=np.float64)
    hit = ranks <= int(k)
    return np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0) if kind == "ndcg" else hit.astype(np.float64)


def paired_pvalue(base: list, new: list, metric: str) -> float:
    """Paired t-test over users; per user the metric is averaged over the given seeds' runs."""
    from scipy import stats

    users = base[0][1]
    if any(len(r[1]) != len(users) or not np.array_equal(r[1], users) for r in base + new):
        raise ValueError("the runs rank different users: not the same dataset split")
    a = np.mean([user_metric(r[2], metric) for r in base], axis=0)
    b = np.mean([user_metric(r[2], metric) for r in new], axis=0)
    return float(stats.ttest_rel(b, a).pvalue) if np.any(b != a) else 1.0


def table3_rows(grid: str | Path, datasets, backbones, variants, seeds, baseline: str = BASELINE,
                paper: bool = True) -> list[dict]:
    """One row per (dataset, model, variant) with finished runs; `paper=False` for user samples."""
    rows = []
    for dataset in datasets:
        for backbone in backbones:
            base = _load(grid, dataset, backbone, baseline, seeds)
            for variant in variants:
                runs = base if variant == baseline else _load(grid, dataset, backbone, variant, seeds)
                if not runs:
                    continue
                row = {"dataset": dataset, "backbone": backbone, "variant": variant, "seeds": len(runs),
                       "seed_list": " ".join(map(str, sorted(runs))),
                       "single_fit": variant == baseline and backbone in SINGLE_FIT}
                shared = sorted(set(base) & set(runs)) if variant != baseline else []
                for m in METRICS:
                    vals = [r[0]["test"][m] for r in runs.values()]
                    row[f"{m}_mean"], row[f"{m}_std"] = float(np.mean(vals)), float(np.std(vals))
                    row[f"{m}_paper"] = paper_value(dataset, backbone, variant, m) if paper else None
                    if shared:
                        b_mean = float(np.mean([base[s][0]["test"][m] for s in shared]))
                        v_mean = float(np.mean([runs[s][0]["test"][m] for s in shared]))
                        row[f"{m}_gain"] = v_mean / b_mean - 1 if b_mean > 0 else float("nan")
                        row[f"{m}_pvalue"] = paired_pvalue([base[s] for s in shared], [runs[s] for s in shared], m)
                if shared:
                    row["paired_seeds"] = len(shared)
                rows.append(row)
    return rows


# the questions a grid answers per (dataset, model): (variant, against), both on test NDCG@20
QUESTIONS = (("dr4sr", "backbone"), ("pattern", "dr4sr"), ("dr4sr+", "dr4sr"), ("dr4sr+", "constant"),
             ("pattern", "backbone"))


def head_to_head(grid: str | Path, datasets, backbones, seeds, questions=QUESTIONS,
                 metric: str = "ndcg@20") -> list[dict]:
    """Per (dataset, model, question) with both variants finished on some seed: the relative gain of the
    seed means and the paired t-test over users (seeds both finished)."""
    out = []
    for dataset in datasets:
        for backbone in backbones:
            cache = {}
            for new, old in questions:
                for v in (new, old):
                    if v not in cache:
                        cache[v] = _load(grid, dataset, backbone, v, seeds)
                shared = sorted(set(cache[new]) & set(cache[old]))
                if not shared:
                    continue
                a = float(np.mean([cache[old][s][0]["test"][metric] for s in shared]))
                b = float(np.mean([cache[new][s][0]["test"][metric] for s in shared]))
                out.append({"dataset": dataset, "backbone": backbone, "variant": new, "against": old,
                            "seeds": len(shared), "gain": b / a - 1 if a > 0 else float("nan"),
                            "pvalue": paired_pvalue([cache[old][s] for s in shared], [cache[new][s] for s in shared],
                                                    metric)})
    return out


def mark(row: dict, metric: str = "ndcg@20") -> str:
    p = row.get(f"{metric}_pvalue")
    return "" if p is None else "**" if p < 0.01 else "*" if p < 0.05 else ""


def csv_fields() -> list[str]:
    per_metric = [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "gain", "pvalue", "paper")]
    return ["dataset", "backbone", "variant", "seeds", "seed_list", "paired_seeds"] + per_metric


def write_table3(rows: list[dict], out_dir: str | Path, name: str = "table3", title: str | None = None,
                 figures: bool = False, duels: list[dict] | None = None) -> list[Path]:
    """`<name>.md`, `.tex`, `.csv` in `out_dir` (each written atomically: readers never see half a table);
    `title` is the first line of each (e.g. the smoke-test label). With `figures`, one PNG per dataset."""
    from dr4sr.search.table3_format import to_latex, to_markdown

    out_dir = Path(out_dir)
    paths = []
    for ext, text in (("md", to_markdown(rows, title, duels)), ("tex", to_latex(rows, title))):
        paths.append(atomic_write_text(out_dir / f"{name}.{ext}", text))
    def write_csv(tmp) -> None:
        with open(tmp, "w", newline="") as f:
            if title:
                f.write(f"# {title}\n")
            w = csv.DictWriter(f, fieldnames=csv_fields(), extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    paths.append(atomic_write(out_dir / f"{name}.csv", write_csv))
    if figures:
        from dr4sr.search.table3_plot import plot_datasets

        paths += plot_datasets(rows, out_dir, name, title)
    return paths
