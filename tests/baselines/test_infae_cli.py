"""`dr4sr baseline infae` end to end on the tiny fixture: the files a training run writes, readable by report."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from dr4sr.baselines.run import run_infae
from dr4sr.cli import main
from dr4sr.eval.ranking import metrics_from_ranks
from dr4sr.report import load_run

METRIC_KEYS = {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}


def test_smoke_run_writes_metrics_that_match_the_ranks(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "infae"
    assert main(["baseline", "infae", "--dataset", str(tiny_dataset), "--out", str(out), "--smoke-test"]) == 0
    run = tmp_path / "infae-smoke"  # like `train --smoke-test`: never where a real run's numbers go
    metrics = json.loads((run / "metrics.json").read_text())
    table = pq.read_table(run / "user_metrics.parquet")
    assert table.column_names == ["user", "rank"]
    ranks = table["rank"].to_numpy()
    assert len(ranks) == 60 and ranks.min() >= 1 and ranks.max() <= 41
    assert metrics["test"] == pytest.approx(metrics_from_ranks(ranks), abs=0)
    assert set(metrics["valid"]) == set(metrics["test"]) == METRIC_KEYS
    assert metrics["variant"] == "infae" and metrics["dataset"] == "tiny" and metrics["users"] == 60
    assert metrics["best_lambda"] in metrics["config"]["infae"]["lambdas"]
    assert metrics["config"]["data"]["dataset"] == str(tiny_dataset)
    assert metrics["wall_seconds"] > 0 and metrics["peak_rss_mb"] > 0 and "smoke test" in metrics["smoke_test"]
    _, users, report_ranks = load_run(run)  # the report's reader (paired tests) accepts it
    assert len(users) == 60 and np.array_equal(np.sort(report_ranks), np.sort(ranks))
    printed = capsys.readouterr().out
    assert "best lambda" in printed and "metrics.json" in printed
    assert not list(run.glob(".*"))  # no temp file left behind


def test_run_function_returns_what_it_writes(tiny_dataset, tmp_path):
    out = tmp_path / "grid-cell"
    metrics = run_infae(str(tiny_dataset), out, seed=3, overrides={"infae": {"lambdas": [0.5, 2], "dtype": "float64",
                                                                              "test_query": "train"}},
                        log=lambda m: None)
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    assert metrics["seed"] == 3 and metrics["config"]["infae"]["dtype"] == "float64"
    assert "smoke_test" not in metrics and [e["lambda"] for e in metrics["lambda_search"]] == [0.5, 2.0]
    # the chains are learnable: far better than a random ranking of 40 items
    assert metrics["test"]["recall@10"] > 0.5


@pytest.mark.parametrize("args,needle", [
    (["--set", "infae.lambdas=[0,1]"], "must all be > 0"),
    (["--set", "infae.nope=1"], "unknown config key 'infae.nope'"),
    (["--set", "infae.dtype=half"], "infae.dtype"),
])
def test_bad_settings_are_one_error_line(tiny_dataset, tmp_path, capsys, args, needle):
    assert main(["baseline", "infae", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dr4sr: error:") and needle in err[0]
    assert not (tmp_path / "o").exists()


def test_bad_data_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3 x\n")
    for dataset in (str(bad), str(tmp_path / "missing.txt")):
        assert main(["baseline", "infae", "--dataset", dataset, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("dr4sr: error:")
    assert not (tmp_path / "o" / "metrics.json").exists()
