"""Table 3 from run folders: hand-computed means, stds, gains and the paired-test mark."""
from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dr4sr.search.tables import run_dir, table3_rows, write_table3


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
    assert by["backbone"]["ndcg@20_mean"] == pytest.approx(0.025) and by["backbone"]["ndcg@20_std"] == pytest.approx(0.005)
    assert by["dr4sr"]["gain_ndcg@20"] == pytest.approx(0.035 / 0.025 - 1)
    assert by["dr4sr"]["t_pvalue"] < 1e-10  # 100 users gain a full NDCG point each, the rest are tied
    assert by["backbone"]["paper_ndcg@20"] == 0.0448 and by["dr4sr"]["paper_ndcg@20"] == 0.0504
    # pattern finished seed 0 only: compared with the backbone's seed 0 alone, and no per-user difference
    assert by["pattern"]["seeds"] == 1 and by["pattern"]["gain_ndcg@20"] == pytest.approx(0.021 / 0.020 - 1)
    assert by["pattern"]["t_pvalue"] == 1.0


def test_written_formats(grid):
    rows = table3_rows(grid, ["toys"], ["sasrec"], ["backbone", "dr4sr"], [0, 1], paper=False)
    md, tex, csv_path = write_table3(rows, grid)
    text = md.read_text()
    assert "| toys | sasrec | dr4sr | 2 | 0.1000 ± 0.0000 | 0.2000 ± 0.0000 | 0.0175 ± 0.0025 | 0.0350 ± 0.0050 | +40.0%** |  |" in text
    assert r"0.0350$\pm$0.0050 & +40.0\%$^*$$^*$ \\" in tex.read_text()
    with open(csv_path) as f:
        parsed = list(csv.DictReader(f))
    assert [r["variant"] for r in parsed] == ["backbone", "dr4sr"]
    assert float(parsed[1]["gain_ndcg@20"]) == pytest.approx(0.4) and parsed[0]["gain_ndcg@20"] == ""
