"""`dr4sr baseline melt` end to end on the tiny fixture, and its row in a grid's Table 3."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dr4sr.cli import main
from dr4sr.eval.ranking import metrics_from_ranks
from dr4sr.report import load_run

METRIC_KEYS = {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}


def test_smoke_run_writes_a_training_runs_files(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "melt"
    assert main(["baseline", "melt", "--dataset", str(tiny_dataset), "--out", str(out), "--smoke-test",
                 "--seed", "3", "--store", str(tmp_path / "store")]) == 0
    run = tmp_path / "melt-smoke"
    metrics = json.loads((run / "metrics.json").read_text())
    ranks = pq.read_table(run / "user_metrics.parquet")["rank"].to_numpy()
    assert len(ranks) == 60 and ranks.min() >= 1 and ranks.max() <= 41
    assert metrics["test"] == pytest.approx(metrics_from_ranks(ranks), abs=0)
    assert set(metrics["valid"]) == METRIC_KEYS and metrics["epochs"] == 2 and len(metrics["history"]) == 2
    assert {"melt_user_loss", "melt_item_loss"} <= set(metrics["history"][0])
    cfg = metrics["config"]
    assert cfg["backbone"] == "sasrec" and cfg["melt"]["enabled"] and cfg["train"]["seed"] == 3
    assert cfg["melt"]["lambda_user"] == 0.1 and cfg["melt"]["lambda_item"] == 0.4  # configs/melt.yaml
    assert cfg["train"]["batch_size"] == 128 and cfg["train"]["max_epochs"] == 2  # smoke budget over melt.yaml
    m = metrics["melt"]
    assert m["head_users"] + m["tail_users"] == 60 and m["head_items"] > 0
    assert metrics["variant"] == "melt" and metrics["dataset"] == "tiny" and "smoke test" in metrics["smoke_test"]
    assert (run / "melt.pt").is_file() and (run / "model.pt").is_file()
    assert len(load_run(run)[1]) == 60
    assert "head / " in capsys.readouterr().out


# the SASRec backbone run of the tiny dataset at smoke size, seed 0 (tests/stages/test_golden_ids.py)
BACKBONE_SEED0 = "df01dbf2356d33ce"


def test_melt_starts_from_the_backbone_run_in_the_store_and_reuses_it(tiny_dataset, tmp_path, capsys):
    store = tmp_path / "store"
    args = ["baseline", "melt", "--dataset", str(tiny_dataset), "--smoke-test", "--seed", "0", "--store", str(store)]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    init = store / "train" / BACKBONE_SEED0 / "model.pt"
    assert init.is_file()
    assert json.loads((tmp_path / "a-smoke" / "metrics.json").read_text())["config"]["melt"]["init_from"] == str(init)
    capsys.readouterr()
    assert main(args + ["--out", str(tmp_path / "b")]) == 0  # a second MELT run trains no second SASRec
    assert f"reusing train sasrec: {store / 'train' / BACKBONE_SEED0}" in capsys.readouterr().out
    assert len(list((store / "train").iterdir())) == 1


@pytest.mark.parametrize("value, message", [
    ("/no/such/model.pt", "melt.init_from /no/such/model.pt: no such file"),
    ("backbone", "melt.init_from=backbone needs the artifact store")])
def test_init_from_errors_name_the_key(tiny_dataset, tmp_path, value, message):
    from dr4sr.baselines.melt_run import run_melt
    from dr4sr.errors import ConfigError

    with pytest.raises(ConfigError, match=message):  # no backbone_weights provider: an API caller's mistake
        run_melt(str(tiny_dataset), tmp_path / "o", overrides={"melt": {"init_from": value}}, smoke_test=True)


def test_bad_setting_is_one_error_line(tiny_dataset, tmp_path, capsys):
    assert main(["baseline", "melt", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "o"),
                 "--set", "melt.pareto=1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "melt.pareto" in err[0]


def _fake_run(d, ndcg20: float, users: np.ndarray, ranks: np.ndarray) -> None:
    d.mkdir(parents=True)
    test = {"recall@10": 0.05, "recall@20": 0.08, "ndcg@10": 0.03, "ndcg@20": ndcg20}
    (d / "metrics.json").write_text(json.dumps({"test": test, "valid": test}))
    pq.write_table(pa.table({"user": users, "rank": ranks}), d / "user_metrics.parquet")


def test_grid_table_puts_melt_above_the_models_with_the_papers_value(tmp_path):
    from dr4sr.search.grid import write_grid_table

    users = np.arange(50)
    ranks = np.random.default_rng(0).integers(1, 100, 50)
    for model, variant, value in (("melt", "baseline", 0.04), ("infae", "baseline", 0.03),
                                  ("sasrec", "backbone", 0.036)):
        _fake_run(tmp_path / "beauty" / model / f"{variant}-seed0", value, users, ranks)
    meta = {"datasets": ["beauty"], "backbones": ["sasrec"], "variants": ["backbone"], "seeds": [0],
            "baselines": ["infae", "melt"], "smoke_test": False}
    write_grid_table(tmp_path, meta)
    table = (tmp_path / "table3.md").read_text()
    assert "| MELT | MELT | " in table and table.index("| MELT | MELT | ") < table.index("| SASRec | SASRec | ")
    rows = [r for r in (tmp_path / "table3.csv").read_text().splitlines() if r.startswith("beauty,melt,")]
    assert len(rows) == 1 and rows[0].endswith(",0.04,0.0,,,0.0379")  # ours, then the paper's Beauty N@20
    melt_diff = next(line for line in table.split("### Ours minus")[1].splitlines() if line.startswith("| MELT"))
    assert melt_diff.endswith("| +0.0021 (0.0379) |")  # 0.04 - 0.0379


def test_the_grid_resumes_an_interrupted_melt_run_from_its_checkpoint(tiny_dataset, tmp_path, capsys):
    from dr4sr.baselines.melt_run import run_melt
    from dr4sr.search.grid import _run_in

    run_dir = tmp_path / "grid" / "tiny" / "melt" / "baseline-seed0"
    scratch = {"melt": {"init_from": ""}}
    # a first process got through epoch 0 of the smoke budget's 2 (as if killed after it)
    run_melt(str(tiny_dataset), run_dir, 0, {**scratch, "train": {"max_epochs": 1}}, smoke_test=True)
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    capsys.readouterr()
    fields = {"variant": "baseline", "backbone": "melt", "dataset": str(tiny_dataset), "overrides": scratch,
              "data_dir": None, "smoke_test": True, "store_root": str(tmp_path / "store")}
    assert _run_in(fields, str(run_dir), 0)["epochs"] == 2
    assert "resumed from epoch 0" in capsys.readouterr().out
    assert [h["epoch"] for h in json.loads((run_dir / "metrics.json").read_text())["history"]] == [0, 1]
