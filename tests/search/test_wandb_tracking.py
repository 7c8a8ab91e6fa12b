"""`dr4sr tune --track wandb`: one offline W&B run per trial, read back from its run file."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from tiny_data import make_chain_sequences, write_text_dataset
from wandb_files import offline_runs

from dr4sr.search.space import load_space
from dr4sr.search.study import StudyOptions, run_study
from dr4sr.search.trial import FINISHED


@pytest.mark.slow  # a study of one tiny trial
def test_tune_logs_each_trial_as_an_offline_wandb_run(ray_session, tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)  # offline by default: no account needed
    data = write_text_dataset(tmp_path / "tiny.txt", make_chain_sequences())
    (tmp_path / "space.yaml").write_text(textwrap.dedent(f"""\
        dataset: {data}
        backbone: sasrec
        variant: backbone
        composition: original
        set:
          train.max_epochs: 2
          train.patience: 2
        search: {{kind: grid, max_concurrent: 1}}
        dimensions:
          train.lr: {{grid: [0.005]}}
        """))
    opts = StudyOptions(tmp_path / "study", str(tmp_path / "store"), track="wandb")
    summary = run_study(load_space(tmp_path / "space.yaml"), opts)
    trial_id = summary["best"]["trial_id"]
    run = offline_runs(Path(opts.out) / "wandb")[trial_id]  # named after the trial
    assert run.run.run_id == trial_id
    m = json.loads((Path(opts.out) / "trials" / trial_id / "run" / "metrics.json").read_text())
    assert run.summary["test_ndcg@20"] == pytest.approx(m["test"]["ndcg@20"])  # the run's own metrics.json
    assert run.config["train.lr"] == 0.005 and run.config["variant"] == "backbone"
    trial_dir = Path(opts.out) / "trials" / trial_id
    progress = [json.loads(x) for x in (trial_dir / "progress.jsonl").read_text().splitlines()]
    epochs = [h for h in run.history if "epoch" in h and FINISHED not in h]  # the final result repeats the best
    assert [(h["epoch"], h["valid_ndcg@20"]) for h in epochs] == \
        [(p["epoch"], pytest.approx(p["valid_ndcg@20"])) for p in progress]
