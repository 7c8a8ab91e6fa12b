"""Run comparison: per-user NDCG, gains table, paired tests and `dr4sr report` over run folders."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dr4sr.cli import main
from dr4sr.errors import ConfigError, DR4SRError
from dr4sr.report import comparison_table, load_run, paired_test, user_ndcg
from dr4sr.report_cli import build_report, parse_group


def write_run(path, users, ranks, ndcg20):
    path.mkdir(parents=True)
    test = {"recall@10": 0.1, "recall@20": 0.2, "ndcg@10": 0.05, "ndcg@20": ndcg20}
    (path / "metrics.json").write_text(json.dumps({"test": test}))
    pq.write_table(pa.table({"user": np.asarray(users, dtype=np.int64), "rank": np.asarray(ranks, dtype=np.int64)}),
                   path / "user_metrics.parquet")
    return str(path)


def test_user_ndcg_by_hand():
    # rank 1 -> 1; rank 3 -> 1/log2(4) = 0.5; rank 21 is past the cut-off
    assert np.allclose(user_ndcg(np.array([1, 3, 21]), k=20), [1.0, 0.5, 0.0])


def test_gain_table_and_paired_test():
    table = comparison_table({"a": {"recall@10": .1, "recall@20": .2, "ndcg@10": .04, "ndcg@20": .05},
                              "b": {"recall@10": .11, "recall@20": .2, "ndcg@10": .05, "ndcg@20": .06}}, "a")
    assert "| b | 0.1100 (+10.0%) | 0.2000 (+0.0%) | 0.0500 (+25.0%) | 0.0600 (+20.0%) |" in table
    base = np.full(200, 30)              # every user misses the top 20
    better = np.r_[np.full(100, 1), np.full(100, 30)]
    sig = paired_test([base], [better])
    assert sig["users"] == 200 and sig["mean_diff"] == pytest.approx(0.5)
    assert sig["t_pvalue"] < 1e-10 and sig["wilcoxon_pvalue"] < 1e-10
    assert paired_test([base], [base])["t_pvalue"] == 1.0


def test_load_run_sorts_by_user_and_names_bad_files(tmp_path):
    d = write_run(tmp_path / "r", [3, 1, 2], [30, 10, 20], 0.01)
    _, users, ranks = load_run(d)
    assert users.tolist() == [1, 2, 3] and ranks.tolist() == [10, 20, 30]
    with pytest.raises(DR4SRError, match="missing/metrics.json: not found"):
        load_run(tmp_path / "missing")
    (tmp_path / "r" / "metrics.json").write_text("{}")
    with pytest.raises(DR4SRError, match="no 'test' metrics"):
        load_run(d)


def test_parse_group():
    assert parse_group("dr4sr=a/x,b/y") == ("dr4sr", ["a/x", "b/y"])
    assert parse_group("runs/dr4sr-seed0,runs/dr4sr-seed1") == ("dr4sr-seed0", ["runs/dr4sr-seed0", "runs/dr4sr-seed1"])
    with pytest.raises(ConfigError, match="NAME=DIR"):
        parse_group("name=")


def test_report_pairs_seeds_and_checks_users(tmp_path, capsys):
    users = np.arange(50)
    b0 = write_run(tmp_path / "b0", users, np.full(50, 40), 0.02)
    b1 = write_run(tmp_path / "b1", users, np.full(50, 40), 0.04)
    n0 = write_run(tmp_path / "n0", users, np.r_[np.full(25, 1), np.full(25, 40)], 0.03)
    n1 = write_run(tmp_path / "n1", users, np.full(50, 40), 0.05)
    report = build_report([b0, b1], [("new", [n0, n1])])
    assert report["test"]["baseline"]["ndcg@20"] == pytest.approx(0.03)
    assert report["test"]["new"]["ndcg@20"] == pytest.approx(0.04)
    # half the users gain NDCG 1 in one of two seeds: mean per-user gain 0.25
    assert report["significance"]["new"]["mean_diff"] == pytest.approx(0.25)
    assert "| new | " in report["table"] and "(+33.3%)" in report["table"]

    named = build_report([b0, b1], [("new", [n0, n1])], baseline_name="backbone")
    assert "| backbone | 0.1000 |" in named["table"] and "(+33.3%)" in named["table"]
    with pytest.raises(ConfigError, match="must be distinct"):
        build_report([b0, b1], [("backbone", [n0, n1])], baseline_name="backbone")

    with pytest.raises(ConfigError, match="1 run\\(s\\) but the baseline has 2"):
        build_report([b0, b1], [("new", [n0])])
    other = write_run(tmp_path / "other", np.arange(49), np.full(49, 40), 0.02)
    with pytest.raises(DR4SRError, match="test users differ"):
        build_report([b0], [("x", [other])])

    out = tmp_path / "report.json"
    assert main(["report", "--baseline", b0, b1, "--run", f"new={n0},{n1}", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "new vs baseline: per-user NDCG@20 diff +0.25000" in printed
    assert json.loads(out.read_text())["significance"]["new"]["users"] == 50
    assert main(["report", "--baseline", b0, "--run", f"x={tmp_path / 'nope'}"]) == 2
    assert "nope/metrics.json: not found" in capsys.readouterr().err
