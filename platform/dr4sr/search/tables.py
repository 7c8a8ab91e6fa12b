"""The paper's Table 3 from a grid folder: mean ± std over seeds, gain over the backbone, significance.

Run folders are `<grid>/<dataset>/<backbone>/<variant>-seed<S>`. A variant's gain is on NDCG@20 of
the seed means; its mark comes from `dr4sr.report.paired_test` (per-user NDCG@20 averaged over the
seeds both rows finished, paired t-test): `*` p < 0.05, `**` p < 0.01. Rows fill in as runs finish.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dr4sr.report import METRICS, load_run, paired_test
from dr4sr.search.paper import paper_ndcg20

SHORT = {"recall@10": "R@10", "recall@20": "R@20", "ndcg@10": "N@10", "ndcg@20": "N@20"}


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


def table3_rows(grid: str | Path, datasets, backbones, variants, seeds, baseline: str = "backbone",
                paper: bool = True) -> list[dict]:
    """One row per (dataset, backbone, variant) with finished runs; `paper=False` for user samples."""
    rows = []
    for dataset in datasets:
        for backbone in backbones:
            base = _load(grid, dataset, backbone, baseline, seeds)
            for variant in variants:
                runs = base if variant == baseline else _load(grid, dataset, backbone, variant, seeds)
                if not runs:
                    continue
                row = {"dataset": dataset, "backbone": backbone, "variant": variant, "seeds": len(runs)}
                for m in METRICS:
                    vals = [r[0]["test"][m] for r in runs.values()]
                    row[f"{m}_mean"], row[f"{m}_std"] = float(np.mean(vals)), float(np.std(vals))
                row["paper_ndcg@20"] = paper_ndcg20(dataset, backbone, variant) if paper else None
                shared = sorted(set(base) & set(runs))
                if variant != baseline and shared:
                    b_mean = float(np.mean([base[s][0]["test"]["ndcg@20"] for s in shared]))
                    v_mean = float(np.mean([runs[s][0]["test"]["ndcg@20"] for s in shared]))
                    row["gain_ndcg@20"] = v_mean / b_mean - 1 if b_mean > 0 else float("nan")
                    sig = paired_test([base[s][2] for s in shared], [runs[s][2] for s in shared])
                    row["t_pvalue"] = sig["t_pvalue"]
                rows.append(row)
    return rows


def mark(row: dict) -> str:
    p = row.get("t_pvalue")
    return "" if p is None else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _cell(row: dict, m: str, pm: str) -> str:
    return f"{row[f'{m}_mean']:.4f}{pm}{row[f'{m}_std']:.4f}"


def to_markdown(rows: list[dict]) -> str:
    head = "| dataset | backbone | variant | seeds | " + " | ".join(SHORT[m] for m in METRICS) + \
           " | gain N@20 | paper N@20 |"
    lines = [head, "|" + "---|" * (len(METRICS) + 6)]
    for r in rows:
        gain = f"{100 * r['gain_ndcg@20']:+.1f}%{mark(r)}" if "gain_ndcg@20" in r else ""
        paper = f"{r['paper_ndcg@20']:.4f}" if r["paper_ndcg@20"] else ""
        lines.append(f"| {r['dataset']} | {r['backbone']} | {r['variant']} | {r['seeds']} | "
                     + " | ".join(_cell(r, m, " ± ") for m in METRICS) + f" | {gain} | {paper} |")
    return "\n".join(lines)


def to_latex(rows: list[dict]) -> str:
    lines = [r"\begin{tabular}{lll" + "r" * (len(METRICS) + 1) + "}", r"\toprule",
             "Dataset & Backbone & Variant & " + " & ".join(SHORT[m] for m in METRICS) + r" & Gain N@20 \\",
             r"\midrule"]
    for r in rows:
        gain = f"{100 * r['gain_ndcg@20']:+.1f}\\%{mark(r).replace('*', '$^*$')}" if "gain_ndcg@20" in r else ""
        cells = " & ".join(_cell(r, m, r"$\pm$") for m in METRICS)
        lines.append(f"{r['dataset']} & {r['backbone']} & {r['variant'].replace('+', '$^+$')} & {cells} & {gain} \\\\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def write_table3(rows: list[dict], out_dir: str | Path, name: str = "table3") -> list[Path]:
    """`<name>.md`, `.tex`, `.csv` in `out_dir`, each written atomically (readers never see half a table)."""
    out_dir = Path(out_dir)
    paths = []
    fields = ["dataset", "backbone", "variant", "seeds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")] + \
             ["gain_ndcg@20", "t_pvalue", "paper_ndcg@20"]
    for ext, text in (("md", to_markdown(rows) + "\n"), ("tex", to_latex(rows) + "\n"), ("csv", None)):
        path = out_dir / f"{name}.{ext}"
        tmp = path.with_name(f".{path.name}.tmp")
        if text is None:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
                w.writeheader()
                w.writerows(rows)
        else:
            tmp.write_text(text)
        tmp.replace(path)
        paths.append(path)
    return paths
