"""Table 3 from run folders: hand-computed means, stds, gains, per-metric paired tests, and the paper's layout."""
from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from dr4sr.search.tables import paired_pvalue, run_dir, table3_rows, user_metric, write_table3


def fake_run(path, ranks, test):
    path.mkdir(parents=True)
    pq.write_table(pa.table({"user": np.arange(len(ranks), dtype=np.int64),
                             "rank": np.asarray(ranks, dtype=np.int64)}), path / "user_metrics.parquet")
    (path / "metrics.json").write_text(json.dumps({"test": test, "valid": test}))


def metrics(n20):
    return {"recall@10": 0.1, "recall@20": 0.2, "ndcg@10": n20 / 2, "ndcg@20": n20}


@pytest.fixture
def grid(tmp_path):
    users = 200
    base = np.full(users, 500)  # every user far outside the top 20
    better = base.copy()
    better[:100] = 1  # half the users now rank their target first: a large paired difference
    for seed, (b, v) in enumerate([(0.020, 0.030), (0.030, 0.040)]):
        fake_run(run_dir(tmp_path, "toys", "sasrec", "backbone", seed), base, metrics(b))
        fake_run(run_dir(tmp_path, "toys", "sasrec", "dr4sr", seed), better, metrics(v))
    fake_run(run_dir(tmp_path, "toys", "sasrec", "pattern", 0), base, metrics(0.021))  # seed 1 missing
    return tmp_path


def test_means_stds_gains_and_marks(grid):
    rows = table3_rows(grid, ["toys"], ["sasrec"], ["backbone", "dr4sr", "pattern"], [0, 1])
    by = {r["variant"]: r for r in rows}
    assert (by["backbone"]["ndcg@20_mean"] == pytest.approx(0.025)
            and by["backbone"]["ndcg@20_std"] == pytest.approx(0.005))
    assert by["dr4sr"]["ndcg@20_gain"] == pytest.approx(0.035 / 0.025 - 1)
    assert by["dr4sr"]["recall@10_gain"] == pytest.approx(0.0)  # 0.1 on both rows
    assert by["dr4sr"]["ndcg@20_pvalue"] < 1e-10  # 100 users gain a full NDCG point each, the rest are tied
    assert by["backbone"]["ndcg@20_paper"] == 0.0448 and by["dr4sr"]["ndcg@20_paper"] == 0.0504
    assert by["dr4sr"]["recall@10_paper"] == 0.0762 and by["pattern"]["ndcg@20_paper"] is None
    # pattern finished seed 0 only: compared with the backbone's seed 0 alone, and no per-user difference
    assert by["pattern"]["seeds"] == 1 and by["pattern"]["ndcg@20_gain"] == pytest.approx(0.021 / 0.020 - 1)
    assert by["pattern"]["ndcg@20_pvalue"] == 1.0 and by["pattern"]["paired_seeds"] == 1


def test_user_metrics_and_paired_pvalue_by_hand():
    ranks = np.array([1, 3, 11, 30])
    # NDCG@20: 1/log2(rank+1) inside the top 20; Recall@10: a hit inside the top 10
    assert user_metric(ranks, "ndcg@20") == pytest.approx([1.0, 0.5, 1 / np.log2(12), 0.0])
    assert list(user_metric(ranks, "recall@10")) == [1.0, 1.0, 0.0, 0.0]
    users = np.arange(4)
    base = [({}, users, np.array([1, 3, 30, 2])), ({}, users, np.array([1, 3, 30, 2]))]
    new = [({}, users, np.array([1, 1, 1, 3])), ({}, users, np.array([1, 1, 1, 7]))]
    # per-user NDCG@20 averaged over the two seeds, then the t statistic from its textbook formula
    a = np.array([1.0, 0.5, 0.0, 1 / np.log2(3)])
    b = np.array([1.0, 1.0, 1.0, (0.5 + 1 / np.log2(8)) / 2])
    d = b - a
    t = d.mean() / (d.std(ddof=1) / np.sqrt(4))
    assert paired_pvalue(base, new, "ndcg@20") == pytest.approx(2 * stats.t.sf(abs(t), df=3))
    with pytest.raises(ValueError, match="different users"):
        paired_pvalue(base, [({}, np.arange(1, 5), np.ones(4))], "ndcg@20")


def test_paper_layout_markdown_latex_csv(grid):
    rows = table3_rows(grid, ["toys"], ["sasrec"], ["backbone", "dr4sr", "pattern"], [0, 1])
    md, tex, csv_path = write_table3(rows, grid, title="SMOKE TEST: not a result")
    text = md.read_text()
    assert text.splitlines()[0] == "**SMOKE TEST: not a result**"
    assert "| model | row | toys R@10 | toys R@20 | toys N@10 | toys N@20 |" in text
    assert "| SASRec | SASRec | 0.1000 | 0.2000 | 0.0125 | 0.0250 |" in text
    # DR4SR: R@10 is tied per user on the fake runs (both 0.1), N@20 gains 40% with p < 0.01
    assert "| SASRec | DR4SR | 0.1000** | 0.2000** | 0.0175** | 0.0350** |" in text
    assert "| SASRec | Improv. | +0.0% | +0.0% | +40.0% | +40.0% |" in text
    assert "| SASRec | pattern + original | 0.1000† | 0.2000† | 0.0105† | 0.0210† |" in text
    assert "| SASRec | SASRec | +0.0318 (0.0682) | +0.1049 (0.0951) | -0.0256 (0.0381) | -0.0198 (0.0448) |" in text
    assert "± 0.0000" not in text
    latex = tex.read_text()
    assert r"\begin{tabular}{llrrrr}" in latex and r"\toprule" in latex and r"\bottomrule" in latex
    body = [line for line in latex.splitlines() if line.endswith(r"\\") and "multicolumn" not in line]
    assert body and all(line.count("&") == 5 for line in body)  # model, row, 4 metrics
    assert r"0.0350$^{**}$" in latex and r"0.0210$^{\dagger}$" in latex and r"+40.0\%" in latex
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "# SMOKE TEST: not a result"
    parsed = list(csv.DictReader(lines[1:]))
    assert [r["variant"] for r in parsed] == ["backbone", "dr4sr", "pattern"]
    assert float(parsed[1]["ndcg@20_gain"]) == pytest.approx(0.4) and parsed[0]["ndcg@20_gain"] == ""


def test_figures_one_png_per_dataset(grid):
    rows = table3_rows(grid, ["toys"], ["sasrec"], ["backbone", "dr4sr"], [0, 1])
    paths = write_table3(rows, grid, figures=True)
    png = [p for p in paths if p.suffix == ".png"]
    assert [p.name for p in png] == ["table3_toys.png"] and png[0].read_bytes()[:4] == b"\x89PNG"


def test_head_to_head_answers_each_question_with_a_paired_test(grid):
    from dr4sr.search.table3_format import to_markdown
    from dr4sr.search.tables import head_to_head

    duels = head_to_head(grid, ["toys"], ["sasrec"], [0, 1])
    by = {(d["variant"], d["against"]): d for d in duels}
    # dr4sr vs backbone over both seeds: N@20 0.035 vs 0.025; pattern vs backbone on seed 0 only: 0.021 vs 0.020;
    # pattern vs dr4sr on seed 0: 0.021 vs 0.030; no dr4sr+ / constant runs: those questions stay open
    assert set(by) == {("dr4sr", "backbone"), ("pattern", "dr4sr"), ("pattern", "backbone")}
    assert by["dr4sr", "backbone"]["gain"] == pytest.approx(0.4) and by["dr4sr", "backbone"]["seeds"] == 2
    assert by["pattern", "dr4sr"]["gain"] == pytest.approx(0.021 / 0.030 - 1) and by["pattern", "dr4sr"]["seeds"] == 1
    assert by["pattern", "dr4sr"]["pvalue"] < 1e-10  # the fake dr4sr ranks 100 users first, pattern none
    text = to_markdown(table3_rows(grid, ["toys"], ["sasrec"], ["backbone", "dr4sr"], [0, 1]), None, duels)
    assert "| toys | SASRec | +40.0% (p " in text and "pattern + original vs DR4SR" in text


def test_a_deterministic_baseline_is_one_fit_not_one_seed(grid):
    from dr4sr.search.table3_format import to_markdown

    # ∞-AE (closed form, no seed) ran once; MELT (trained from a seed) finished seed 0 only
    fake_run(run_dir(grid, "toys", "infae", "baseline", 0), np.full(200, 500), metrics(0.024))
    fake_run(run_dir(grid, "toys", "melt", "baseline", 0), np.full(200, 500), metrics(0.022))
    rows = table3_rows(grid, ["toys"], ["infae", "melt"], ["baseline"], [0, 1], baseline="baseline")
    rows += table3_rows(grid, ["toys"], ["sasrec"], ["backbone", "dr4sr"], [0, 1])
    text = to_markdown(rows)
    assert "| ∞-AE | ∞-AE | 0.1000 | 0.2000 | 0.0120 | 0.0240 |" in text  # no † on a single fit
    assert "| MELT | MELT | 0.1000† | 0.2000† | 0.0110† | 0.0220† |" in text
    assert "mean over 2 seeds unless marked †" in text
    assert "∞-AE: deterministic (a closed-form fit, no seed), run once." in text
    assert "MELT: deterministic" not in text
