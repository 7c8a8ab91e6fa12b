"""The printed plan reads the stage graph: ids from configuration, runs merged by id, dry runs."""
from __future__ import annotations

from dr4sr.cli import main
from dr4sr.pipeline import RunRequest, prepare_run
from dr4sr.plan import plan_graphs


def test_compare_merges_graphs_by_id(tiny_dataset, tmp_path):
    runs = [prepare_run(RunRequest(str(tiny_dataset), variant=v, smoke_test=True, store_root=str(tmp_path / "s")),
                        tmp_path / v) for v in ("backbone", "dr4sr", "dr4sr+")]
    plan = plan_graphs([r.graph for r in runs], runs[0].store, runs[0].splits.fingerprint)
    # backbone train (= the regenerator's init), mine, pretrain, regenerate, compose (shared by dr4sr and
    # dr4sr+), and the dr4sr and dr4sr+ targets
    assert [p.stage for p in plan] == ["train", "mine", "pretrain", "regenerate", "compose", "train", "train"]
    assert plan[0].label == "train sasrec" and len(plan[0].nodes) == 3 and len(plan[4].nodes) == 2
    assert all(p.id and p.state == "run" for p in plan)


def test_dry_run_prints_every_id_and_builds_nothing(tiny_dataset, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["run", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "o"), "--store", str(store),
                 "--smoke-test", "--variant", "dr4sr", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "6 stage(s), 0 cached" in out and "(dry run)" in out
    assert "mine/1afcdfa4b27fa7e5" in out and "train/df01dbf2356d33ce" in out  # tests/stages/test_golden_ids.py
    assert not [p for p in store.rglob("*") if p.is_file() and ".locks" not in p.parts]
    assert main(["compare", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "c"), "--store", str(store),
                 "--smoke-test", "--variants", "backbone", "pattern", "dr4sr", "--dry-run"]) == 0
    assert "8 stage(s), 0 cached" in capsys.readouterr().out


def test_stages_whose_id_waits_for_their_rows_merge_too(tiny_dataset, tmp_path):
    runs = [prepare_run(RunRequest(str(tiny_dataset), variant=v, smoke_test=True, store_root=str(tmp_path / "s"),
                                   preset="paper-era"), tmp_path / v) for v in ("pattern", "dr4sr", "constant")]
    plan = plan_graphs([r.graph for r in runs], runs[0].store, runs[0].splits.fingerprint)
    # mine, the pattern rows (pattern's and both inits'), pattern's target, which is also both inits (SASRec
    # on the pattern rows, seed 0); then pretrain, regenerate and the dr4sr rows once for dr4sr and constant
    # (ids unknown until the rows exist), and their two targets
    assert [p.stage for p in plan] == ["mine", "compose", "train", "pretrain", "regenerate", "compose",
                                       "train", "train"]
    assert [p.id is None for p in plan] == [False, False] + [True] * 6
    assert [len(p.nodes) for p in plan] == [3, 3, 3, 2, 2, 2, 1, 1]
