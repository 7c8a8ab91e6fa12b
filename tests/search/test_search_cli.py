"""`dr4sr tune` / `dr4sr grid` / `dr4sr report` command lines: listings and one-line errors (exit 2)."""
from __future__ import annotations

from pathlib import Path

import pytest
from tiny_data import make_chain_sequences, write_text_dataset

from dr4sr.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def toys(tmp_path, monkeypatch) -> str:
    """A data folder whose toys.txt is a small file: these commands only read and check the dataset, so the
    real benchmark files need not be present."""
    (tmp_path / "data").mkdir()
    write_text_dataset(tmp_path / "data" / "toys.txt", make_chain_sequences())
    monkeypatch.setenv("DR4SR_DATA_DIR", str(tmp_path / "data"))
    return "toys"


def test_tune_dry_run_lists_the_grid(tmp_path, toys, capsys):
    assert main(["tune", "--space", str(REPO / "search_spaces/gamma_sweep.yaml"), "--out", str(tmp_path / "s"),
                 "--dataset", toys, "--dry-run"]) == 0
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


def test_plus_space_lists_its_nine_points(tmp_path, toys, capsys):
    plus = str(REPO / "search_spaces/plus_upper_grid.yaml")
    assert main(["tune", "--space", plus, "--out", str(tmp_path / "p"), "--dataset", toys, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "9 trials:" in out and "personalizer.lr" in out


def test_grid_dry_run_and_bad_variant(tmp_path, capsys):
    assert main(["grid", "--out", str(tmp_path / "g"), "--datasets", "toys", "--backbones", "sasrec", "gru4rec",
                 "--variants", "backbone", "pattern", "--seeds", "0", "1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "todo  toys/gru4rec/pattern/seed 1" in out and out.strip().endswith("8 runs")
    assert "/pattern-seed1  [mine > compose > train]" in out  # each run's stages, read from its graph
    assert main(["grid", "--out", str(tmp_path / "g"), "--variants", "dr4sr", "--dry-run"]) == 2
    assert "--variants must include 'backbone'" in capsys.readouterr().err
    assert main(["grid", "--out", str(tmp_path / "g"), "--variants", "backbone", "dr5sr", "--dry-run"]) == 2
    assert "unknown 'dr5sr'" in capsys.readouterr().err


def test_report_on_a_folder_that_is_neither(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a study folder (study.json) nor a grid folder (grid.json)" in capsys.readouterr().err


GAMMA = str(REPO / "search_spaces/gamma_sweep.yaml")


def test_tune_smoke_help_says_what_a_smoke_study_runs(tmp_path, capsys):
    """The help's trial counts are the ones smoke_space produces (gamma_sweep: 6, not '<= 4')."""
    from dr4sr.cli import build_parser
    from dr4sr.search.space import load_space
    from dr4sr.search.study import SMOKE_GRID_VALUES, SMOKE_TRIALS, smoke_space

    with pytest.raises(SystemExit):
        build_parser().parse_args(["tune", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"first {SMOKE_GRID_VALUES} values of each key (gamma_sweep.yaml: 3 x 2 = 6 trials)" in help_text
    assert f"at most {SMOKE_TRIALS} trials" in help_text and "<= 4 trials" not in help_text
    assert len(smoke_space(load_space(GAMMA), "beauty").grid_points()) == 6
    tpe = smoke_space(load_space(REPO / "search_spaces/tpe_regen.yaml"), "beauty")
    assert tpe.search.num_trials == SMOKE_TRIALS


def test_tune_smoke_dry_run_is_labelled_and_writes_nothing(tmp_path, toys, capsys):
    assert main(["tune", "--space", GAMMA, "--out", str(tmp_path / "s"), "--dataset", toys, "--smoke-test",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("smoke test (4 epochs): not a result\n") and "6 trials:" in out
    assert '"personalizer": {"warmup_epochs": 1' in out  # DR4SR+ spaces take upper steps at smoke size
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_tune_resume_without_a_study_stops_first(tmp_path, toys, capsys, dry_run):
    folder = tmp_path / "nothing-here"
    assert main(["tune", "--space", GAMMA, "--out", str(folder), "--dataset", toys, "--resume", *dry_run]) == 2
    err = capsys.readouterr().err
    assert err == f"dr4sr: error: {folder}: no study to resume (no study.json); run without --resume to start one\n"
    assert not folder.exists()


def test_tune_folder_checks_match_the_study(tmp_path, toys, capsys):
    out = tmp_path / "s"
    (out / "tune").mkdir(parents=True)
    (out / "tune" / "experiment_state-x.json").write_text("{}")
    (out / "study.json").write_text('{"name": "gamma-sweep", "smoke_test": true}')
    args = ["tune", "--space", GAMMA, "--out", str(out), "--dataset", toys, "--dry-run"]
    assert main(args) == 2  # a new study would overwrite it
    assert "already holds a study; pass --resume to continue it" in capsys.readouterr().err
    assert main(args + ["--resume"]) == 2  # it is a smoke-test study
    assert "holds the smoke-test study 'gamma-sweep'; resume it with the same --space and with --smoke-test" in \
        capsys.readouterr().err
    assert main(args + ["--resume", "--smoke-test"]) == 0


@pytest.mark.parametrize("argv, needle", [
    (["--max-concurrent", "0"], "must be >= 1"),
    (["--gpus-per-trial", "-0.5"], "must be >= 0"),
])
def test_tune_bad_numbers_are_usage_errors(tmp_path, capsys, argv, needle):
    with pytest.raises(SystemExit) as exc:
        main(["tune", "--space", GAMMA, "--out", str(tmp_path / "s"), "--dry-run", *argv])
    assert exc.value.code == 2 and needle in capsys.readouterr().err


def test_tune_missing_dataset_stops_before_anything(tmp_path, capsys):
    missing = tmp_path / "nope.txt"
    for extra in ([], ["--dry-run"], ["--smoke-test"]):
        assert main(["tune", "--space", GAMMA, "--out", str(tmp_path / "s"), "--dataset", str(missing), *extra]) == 2
        assert capsys.readouterr().err.startswith(f"dr4sr: error: --dataset: unknown dataset '{missing}'")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", [
    ["tune", "--space", GAMMA, "--dataset", "toys"],
    ["tune", "--space", GAMMA, "--dataset", "toys", "--smoke-test"],
    ["tune", "--space", GAMMA, "--dataset", "toys", "--dry-run"],
    ["grid", "--datasets", "toys", "--backbones", "sasrec", "--variants", "backbone"],
    ["grid", "--datasets", "toys", "--backbones", "sasrec", "--variants", "backbone", "--dry-run"],
])
@pytest.mark.parametrize("flag", ["--out", "--store"])
def test_a_file_as_out_or_store_is_one_line(tmp_path, capsys, command, flag):
    a_file = tmp_path / "README.md"
    a_file.write_text("not a folder\n")
    paths = {"--out": str(tmp_path / "o"), "--store": str(tmp_path / "st"), flag: str(a_file)}
    assert main(command + [x for kv in paths.items() for x in kv]) == 2
    err = capsys.readouterr().err
    assert err == f"dr4sr: error: {flag} {a_file} is a file, not a folder; give a folder\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # nothing written beside it


def test_report_path_arguments_are_checked_first(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("")
    assert main(["report", str(a_file)]) == 2
    assert f"{a_file} is a file; give a `dr4sr tune` or `dr4sr grid` output folder" in capsys.readouterr().err
    assert main(["report", "--baseline", "x", "--run", "a=y", "--json", str(tmp_path)]) == 2
    assert f"--json {tmp_path} is a folder; give a file name" in capsys.readouterr().err
    assert main(["report", "--run", "a=y", "--personalizer-figure", str(a_file / "fig.png")]) == 2
    assert f"its folder {a_file} is a file, not a folder" in capsys.readouterr().err


def test_verbose_is_taken_before_or_after_tune():
    from dr4sr.cli import build_parser

    base = ["--space", GAMMA, "--out", "x"]
    assert build_parser().parse_args(["tune", *base, "--verbose"]).verbose is True
    assert build_parser().parse_args(["--verbose", "tune", *base]).verbose is True
    assert build_parser().parse_args(["tune", *base]).verbose is False
