"""`dr4sr mine` resolves the `mine` section as `dr4sr run` does: per-dataset defaults, preset, flags on top."""
import json
import shutil

import pytest

from dr4sr.cli import build_parser, main
from dr4sr.mining.cli import mine_config
from dr4sr.mining.stage import MineConfig
from dr4sr.pipeline import RunRequest, prepare_run, regen_config


@pytest.mark.parametrize("dataset,alpha", [("toys", 10), ("sports", 10), ("yelp", 10), ("beauty", 5),
                                           ("/data/Toys.txt", 10), ("tiny", 5)])
def test_mine_and_run_resolve_the_same_mine_config(dataset, alpha):
    args = build_parser().parse_args(["mine", "--dataset", dataset])
    run = MineConfig.from_dict(dict(regen_config(RunRequest(dataset), {}).mine))
    assert mine_config(args) == run and run.alpha == alpha
    flagged = mine_config(build_parser().parse_args(["mine", "--dataset", dataset, "--alpha", "3", "--max-pairs", "4"]))
    assert (flagged.alpha, flagged.max_pairs_per_sequence, flagged.beta) == (3, 4, 2)


def test_mine_toys_builds_the_artifact_run_reuses(tiny_dataset, tmp_path, capsys):
    data = tmp_path / "toys.txt"  # the tiny data under a benchmark's name: toys' defaults (alpha 10) apply
    shutil.copy(tiny_dataset, data)
    store = tmp_path / "store"
    assert main(["mine", "--dataset", str(data), "--out", str(store), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["alpha"] == 10
    run = prepare_run(RunRequest(str(data), variant="pattern", store_root=str(store)), tmp_path / "out")
    assert run.plan[0].stage == "mine" and run.plan[0].state == "cached"
    assert summary["artifact"].endswith(run.plan[0].id)
