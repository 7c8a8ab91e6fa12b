"""The mine stage artifact: files, content-addressed reuse, loader, CLI."""
from __future__ import annotations

import argparse
import json
import random

import numpy as np
import pytest

from dr4sr.artifacts import ArtifactStore
from dr4sr.data.sequences import make_sequence_data
from dr4sr.data.splits import leave_one_out
from dr4sr.errors import DR4SRError
from dr4sr.mining import stage as stage_mod
from dr4sr.mining.cli import register
from dr4sr.mining.engines import mine
from dr4sr.mining.stage import MineConfig, load_mine_artifact
from dr4sr.stages import Runtime, StageGraph, execute, stage_id
from dr4sr.stages.kinds import MineStage


def run_mine_stage(splits, cfg, store, engine="native", workers=1):
    stage = MineStage(splits, cfg if isinstance(cfg, MineConfig) else MineConfig.from_dict(cfg), Runtime(workers),
                      engine)
    return execute(StageGraph(stage), store, log=lambda *_: None)[stage]


def mine_artifact_id(splits, cfg):
    return stage_id(MineStage(splits, cfg, Runtime()))


def make_splits(n=120, seed=0):
    rng = random.Random(seed)
    seqs = [[rng.randint(1, 10) for _ in range(rng.randint(5, 15))] for _ in range(n)]
    return leave_one_out(make_sequence_data(np.arange(1, n + 1), seqs, "synthetic"))


def test_artifact_files_and_loader(tmp_path):
    splits = make_splits()
    cfg = MineConfig(alpha=4, beta=3, max_pairs_per_sequence=3, seed=1)
    art = run_mine_stage(splits, cfg, ArtifactStore(tmp_path))
    assert {p.name for p in art.path.iterdir()} >= {"patterns.parquet", "pairs.parquet", "stats.json", "manifest.json"}
    patterns, supports, pairs = load_mine_artifact(art.path)
    expected = mine(splits.train_full, 4, 3)
    assert patterns == expected.tuples() and np.array_equal(supports, expected.supports)
    assert list(pairs.columns) == ["user", "pattern_id"]
    assert pairs["pattern_id"].between(0, len(patterns) - 1).all()
    assert pairs.groupby("user").size().max() <= 3
    stats = json.loads((art.path / "stats.json").read_text())
    assert stats["num_patterns"] == len(patterns) and stats["num_pairs"] == len(pairs)
    assert stats["users_without_pairs"] == len(splits.users) - pairs["user"].nunique()
    assert sum(stats["length_histogram"].values()) == len(patterns)
    assert {"engine", "alpha", "beta", "seed", "seconds"} <= set(stats)


def test_reuse_and_id_ignores_engine_and_workers(tmp_path, monkeypatch):
    splits = make_splits(seed=1)
    store = ArtifactStore(tmp_path)
    cfg = MineConfig(alpha=3, beta=2)
    first = run_mine_stage(splits, cfg, store, engine="seq2pat")
    assert first.id == mine_artifact_id(splits, cfg)

    def boom(*a, **k):
        raise AssertionError("mining ran again instead of reusing the artifact")

    monkeypatch.setattr(stage_mod, "mine", boom)
    again = run_mine_stage(splits, {"alpha": 3, "beta": 2}, store, engine="native", workers=2)
    assert again.path == first.path
    other = mine_artifact_id(splits, MineConfig(alpha=3, beta=2, seed=1))
    assert other != first.id


def test_config_errors():
    with pytest.raises(DR4SRError, match="unknown config"):
        MineConfig.from_dict({"alpha": 5, "gamma": 1})
    with pytest.raises(DR4SRError, match="alpha"):
        MineConfig(alpha=1)
    with pytest.raises(DR4SRError, match="max_pairs"):
        MineConfig(max_pairs_per_sequence=0)


def test_loader_rejects_other_folders(tmp_path):
    with pytest.raises(DR4SRError, match="not a mine artifact"):
        load_mine_artifact(tmp_path)


def test_cli_mine(tmp_path, capsys):
    data = tmp_path / "tiny.txt"
    rng = random.Random(2)
    data.write_text("".join(f"{u} " + " ".join(str(rng.randint(1, 8)) for _ in range(rng.randint(5, 12))) + "\n"
                            for u in range(1, 61)))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["mine", "--dataset", str(data), "--alpha", "3", "--beta", "2",
                              "--out", str(tmp_path / "store"), "--json"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["patterns"] > 0 and summary["artifact"].startswith(str(tmp_path / "store"))
    args = parser.parse_args(["mine", "--dataset", str(data), "--alpha", "1", "--out", str(tmp_path / "store")])
    with pytest.raises(DR4SRError, match="alpha"):
        args.func(args)


def test_cli_main_reports_user_errors_without_traceback(tmp_path, capsys):
    from dr4sr.mining.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["mine", "--dataset", str(tmp_path / "missing.txt"), "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown dataset" in err and "Traceback" not in err
