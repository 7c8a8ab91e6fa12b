"""The grid: its plan (leads first), smoke samples, and a tiny grid run that resumes without retraining."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dr4sr.data.datasets import load_dataset
from dr4sr.search.grid import GridOptions, GridRun, default_variants, finished, leads, plan, run_grid
from dr4sr.search.sample import sample_dataset


def test_plan_and_leads():
    opts = GridOptions(Path("/g"), ["gru4rec", "sasrec"], ["toys"], ["backbone", "dr4sr", "pattern"], [0, 1],
                       smoke_test=True)
    runs = plan(opts, {"toys": "/data/toys.txt"})
    assert len(runs) == 6 and {r.seed for r in runs} == {0}  # a smoke test runs one seed
    lead = leads(runs)["toys"]
    # the lead regenerates, and is SASRec's: its init is the sasrec backbone run, trained inside the lead
    assert (lead.backbone, lead.variant) == ("sasrec", "dr4sr")
    assert runs[0].dir(Path("/g")) == Path("/g/toys/gru4rec/backbone-seed0")
    assert default_variants().index("dr4sr+") == 2


def test_plan_runs_every_cell_of_the_first_seed_before_any_second_seed():
    opts = GridOptions(Path("/g"), ["sasrec"], ["beauty", "toys"], ["backbone", "constant"], [0, 1])
    labels = [(r.seed, r.dataset, r.variant) for r in plan(opts, {"beauty": "beauty", "toys": "toys"})]
    assert labels == [(0, "beauty", "backbone"), (0, "beauty", "constant"), (0, "toys", "backbone"),
                      (0, "toys", "constant"), (1, "beauty", "backbone"), (1, "beauty", "constant"),
                      (1, "toys", "backbone"), (1, "toys", "constant")]
    # the constant-weight control regenerates: it may lead its dataset when it is the only such variant
    assert leads(plan(opts, {"beauty": "beauty", "toys": "toys"}))["toys"].variant == "constant"


def test_smoke_sample_is_dense_and_renumbered(tmp_path, tiny_dataset):
    path = sample_dataset(str(tiny_dataset), tmp_path, users=30, items=20)
    assert path == tmp_path / "30u" / "tiny.txt"
    data = load_dataset(str(path))
    items = np.concatenate(data.sequences)
    assert data.num_users == 30 and set(items) == set(range(1, data.num_items + 1)) and data.num_items <= 20
    assert min(len(s) for s in data.sequences) >= 5
    assert sample_dataset(str(tiny_dataset), tmp_path, users=30, items=20).read_text() == path.read_text()


def test_tiny_grid_writes_table3_and_resumes(ray_session, tiny_dataset, tmp_path, capsys):
    opts = GridOptions(tmp_path / "grid", ["sasrec"], [str(tiny_dataset)], ["backbone", "pattern", "dr4sr"], [0],
                       store=str(tmp_path / "store"), smoke_test=True, overrides={"regen": {"k": 2}},
                       baselines=["infae", "melt"])
    summary = run_grid(opts)
    assert summary["failed"] == []
    runs = [GridRun("tiny", "sasrec", v, 0, "") for v in ("backbone", "pattern", "dr4sr")]
    assert all(finished(r.dir(opts.out)) for r in runs)
    table = (opts.out / "table3.md").read_text()
    assert table.startswith("**SMOKE TEST (300-user samples, 2 epochs): not a result**")
    assert ("| SASRec | SASRec | " in table and "| SASRec | DR4SR | " in table
            and "| SASRec | pattern + original | " in table)
    # the data-centric baselines run once per dataset and sit above the models, as in the paper
    assert finished(opts.out / "tiny" / "infae" / "baseline-seed0")
    assert finished(opts.out / "tiny" / "melt" / "baseline-seed0")
    # MELT fine-tunes the grid's own SASRec backbone run (no SASRec of its own: see the 3 train artifacts below)
    backbone_id = json.loads((runs[0].dir(opts.out) / "metrics.json").read_text())["train_artifact"]
    melt_cfg = json.loads((opts.out / "tiny" / "melt" / "baseline-seed0" / "metrics.json").read_text())["config"]
    assert melt_cfg["melt"]["init_from"] == str(tmp_path / "store" / "train" / backbone_id / "model.pt")
    assert table.index("| ∞-AE | ∞-AE | ") < table.index("| MELT | MELT | ") < table.index("| SASRec | SASRec | ")
    assert (opts.out / "table3_tiny.png").is_file()
    assert json.loads((opts.out / "grid.json").read_text())["datasets"] == ["tiny"]
    from dr4sr.search.grid import planned_runs
    from dr4sr.search.grid_status import format_status

    status = format_status(opts.out, planned_runs(opts.out))
    assert status.splitlines()[0].endswith("5 finished of 5; driver not running")
    # the export holds what the table needs and nothing heavy; as a grid folder it counts the runs as done
    from dr4sr.cli import main

    assert main(["grid", "--out", str(opts.out), "--export", str(tmp_path / "records")]) == 0
    files = sorted(p.relative_to(tmp_path / "records").as_posix() for p in (tmp_path / "records").rglob("*")
                   if p.is_file())
    assert "tiny/sasrec/dr4sr-seed0/metrics.json" in files and not any(f.endswith(".pt") for f in files)
    assert (tmp_path / "records" / "table3.md").read_text() == (opts.out / "table3.md").read_text()
    assert all(finished(r.dir(tmp_path / "records")) for r in runs)
    # the SASRec init of dr4sr is the backbone run itself: 3 train artifacts for 3 runs
    assert len(list((tmp_path / "store" / "train").glob("[!.]*"))) == 3
    before = (opts.out / "tiny" / "sasrec" / "dr4sr-seed0" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert run_grid(opts)["failed"] == []
    assert "5 of 5 runs already finished (kept); 0 to run" in capsys.readouterr().out
    assert (opts.out / "tiny" / "sasrec" / "dr4sr-seed0" / "metrics.json").stat().st_mtime_ns == before


def test_a_resumed_runs_wall_time_counts_the_epochs_of_its_earlier_processes():
    from dr4sr.search.grid_status import run_wall_seconds

    history = [{"epoch": e, "seconds": 10.0} for e in range(12)]  # 120 s of epochs in all
    # killed after epoch 9 and resumed: the last process trained epochs 10-11 (20 s) in 25 s, 26 s end to end
    resumed = {"history": history, "wall_seconds": 25.0, "run_wall_seconds": 26.0, "data_seconds": 1.0}
    assert run_wall_seconds(resumed) == 26.0 + (120.0 - 25.0)
    # one process, 120 s of epochs in 125 s of training: nothing added; a run that reused that model: ~0 s
    assert run_wall_seconds({**resumed, "wall_seconds": 125.0, "run_wall_seconds": 130.0}) == 130.0
    assert run_wall_seconds({**resumed, "wall_seconds": 125.0, "run_wall_seconds": 0.4}) == 0.4
    # older runs without run_wall_seconds: data stages + training, plus the earlier processes' epochs
    assert run_wall_seconds({"history": history, "wall_seconds": 25.0, "data_seconds": 5.0}) == 5.0 + 120.0
    assert run_wall_seconds({"history": history}) is None


def test_the_eta_counts_a_datasets_data_stages_once():
    from dr4sr.search.grid_status import estimate

    # Sports dr4sr seed 0: 4,000 s, of which 1,000 s before its training started (mining, pre-training, ...)
    walls = {GridRun("sports", "sasrec", "dr4sr", 0, ""): (4000.0, 1000.0),
             GridRun("sports", "sasrec", "backbone", 0, ""): (600.0, 0.0)}
    assert estimate(GridRun("sports", "sasrec", "dr4sr", 1, ""), walls) == 3000.0  # its data is built
    # no dr4sr+ run yet: every run's training, (3,000 + 600) / 2, and no data part (dr4sr+ re-weights dr4sr's)
    assert estimate(GridRun("sports", "sasrec", "dr4sr+", 0, ""), walls) == 1800.0
    assert estimate(GridRun("toys", "sasrec", "dr4sr", 0, ""), walls) == 4000.0  # by variant, data to build
    assert estimate(GridRun("toys", "sasrec", "pattern", 0, ""), walls) == (4000.0 + 600.0) / 2  # any run
    assert estimate(GridRun("toys", "sasrec", "pattern", 0, ""), {}) is None


def test_baselines_run_after_each_seeds_models_and_melt_at_every_seed():
    opts = GridOptions(Path("/g"), ["sasrec"], ["beauty"], ["backbone"], [0, 1], baselines=["infae", "melt"])
    labels = [(r.seed, r.backbone, r.variant) for r in plan(opts, {"beauty": "beauty"})]
    # ∞-AE's fit is deterministic: once; MELT trains from a seed: at each one, after that seed's models
    assert labels == [(0, "sasrec", "backbone"), (0, "infae", "baseline"), (0, "melt", "baseline"),
                      (1, "sasrec", "backbone"), (1, "melt", "baseline")]
