"""`dr4sr tune` / `dr4sr grid` / `dr4sr report` command lines: listings and one-line errors (exit 2)."""
from __future__ import annotations

from pathlib import Path

import pytest

from dr4sr.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_tune_dry_run_lists_the_grid(tmp_path, capsys):
    assert main(["tune", "--space", str(REPO / "search_spaces/gamma_sweep.yaml"), "--out", str(tmp_path / "s"),
                 "--dataset", "toys", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dr4sr / sasrec on toys" in out and "10 trials:" in out
    assert "    9  regenerate.gamma=1.0, train.seed=1" in out
    assert not (tmp_path / "s").exists()  # a dry run writes nothing


def test_tune_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: beauty\ndimensions: {regen.kk: {grid: [1]}}\n")
    assert main(["tune", "--space", str(bad), "--out", str(tmp_path / "s"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dr4sr: error: {bad}: dimensions.regen.kk = 1: unknown config key 'regen.kk'")
    assert main(["tune", "--space", str(REPO / "search_spaces/gamma_sweep.yaml"), "--out", str(tmp_path / "s"),
                 "--set", "train.lrr=0.1", "--dry-run"]) == 2
    assert "unknown config key 'train.lrr'" in capsys.readouterr().err


def test_plus_space_lists_its_nine_points(tmp_path, capsys):
    plus = str(REPO / "search_spaces/plus_upper_grid.yaml")
    assert main(["tune", "--space", plus, "--out", str(tmp_path / "p"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "9 trials:" in out and "personalizer.lr" in out


def test_grid_dry_run_and_bad_variant(tmp_path, capsys):
    assert main(["grid", "--out", str(tmp_path / "g"), "--datasets", "toys", "--backbones", "sasrec", "gru4rec",
                 "--variants", "backbone", "pattern", "--seeds", "0", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "todo  toys/gru4rec/pattern/seed 1" in out and out.strip().endswith("8 runs")
    assert main(["grid", "--out", str(tmp_path / "g"), "--variants", "dr4sr", "--dry-run"]) == 2
    assert "--variants must include 'backbone'" in capsys.readouterr().err
    assert main(["grid", "--out", str(tmp_path / "g"), "--variants", "backbone", "dr5sr", "--dry-run"]) == 2
    assert "unknown 'dr5sr'" in capsys.readouterr().err


def test_report_on_a_folder_that_is_neither(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a study folder (study.json) nor a grid folder (grid.json)" in capsys.readouterr().err
