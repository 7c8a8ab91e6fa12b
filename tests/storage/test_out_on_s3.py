"""Studies and the grid with `--out s3://...` and `--store s3://...` (a local moto server): a tiny smoke grid
whose rerun from another node skips its finished runs and whose `--status` reads the bucket, and a smoke
gamma study whose Tune experiment lives in the bucket, interrupted and resumed on another node without
running its finished trial again. No credential lands in any object."""
from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

import pytest
from procs import OwnRayProcess

from dr4sr.cli import main
from dr4sr.storage.workcopy import OutFolder

DR4SR = str(Path(sys.executable).parent / "dr4sr")
SECRET = "dr4sr-test-secret-5f1c9e"  # moto accepts any key; this one must never be written anywhere


def node_env(tmp_path: Path, node: str) -> dict:
    """This process's S3 environment with its own cache folder: one "node"."""
    return {**os.environ, "DR4SR_CACHE": str(tmp_path / f"cache-{node}")}


def no_secret(objects, *uris: str) -> None:
    for uri in uris:
        leaks = [k for k, body in objects(uri).items() if SECRET.encode() in body]
        assert not leaks, leaks


@pytest.fixture
def secret_env(s3_env, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return s3_env


@pytest.mark.slow  # two runs of a tiny grid, each with its own Ray: ~1.5 min on a loaded 2-core machine
def test_grid_on_s3_reruns_nothing_finished_and_reports_status(secret_env, bucket, objects, tiny_dataset, tmp_path,
                                                               monkeypatch, capsys):
    store, out = bucket, bucket.replace("/artifacts", "/grid")
    args = [DR4SR, "grid", "--out", out, "--store", store, "--smoke-test", "--datasets", str(tiny_dataset),
            "--backbones", "sasrec", "--variants", "backbone", "pattern", "--seeds", "0", "--max-concurrent", "1"]
    code, stdout, stderr = OwnRayProcess(args, node_env(tmp_path, "a")).finish(timeout=600)
    assert code == 0, stderr[-3000:]
    assert "0 of 2 runs already finished (kept); 2 to run" in stdout
    found = objects(out)
    for variant in ("backbone", "pattern"):
        metrics = json.loads(found[f"tiny/sasrec/{variant}-seed0/metrics.json"])
        assert "ndcg@20" in metrics["test"]
        assert f"tiny/sasrec/{variant}-seed0/user_metrics.parquet" in found
    status = json.loads(found["status.json"])
    assert {k: v["state"] for k, v in status["runs"].items()} == \
        {"tiny/sasrec/backbone/seed 0": "finished", "tiny/sasrec/pattern/seed 0": "finished"}
    assert status["pid"] is None  # the driver closed it
    assert json.loads(found["grid.json"])["variants"] == ["backbone", "pattern"]
    assert b"pattern" in found["table3.md"] and "table3.csv" in found and "table3.tex" in found
    first = {k: v for k, v in found.items() if k.endswith("metrics.json")}

    # another node, empty working copy and cache: the rerun finds both runs finished in the bucket
    code, stdout, stderr = OwnRayProcess(args, node_env(tmp_path, "b")).finish(timeout=600)
    assert code == 0, stderr[-3000:]
    assert "2 of 2 runs already finished (kept); 0 to run" in stdout
    assert {k: v for k, v in objects(out).items() if k.endswith("metrics.json")} == first

    code, stdout, stderr = OwnRayProcess([DR4SR, "grid", "--out", out, "--status"],
                                         node_env(tmp_path, "c")).finish(timeout=300)
    assert code == 0, stderr[-3000:]
    assert re.search(r"2 finished of 2; driver not running", stdout), stdout
    monkeypatch.setenv("DR4SR_CACHE", str(tmp_path / "cache-c"))
    copy = OutFolder(out).local
    assert (copy / "status.json").is_file() and not list(copy.rglob("*.parquet"))  # --status: JSON records only
    assert main(["report", out]) == 0  # the report reads the runs from the bucket
    assert "pattern" in capsys.readouterr().out
    assert len(list(copy.rglob("user_metrics.parquet"))) == 2 and not list(copy.rglob("*.pt"))
    no_secret(objects, out, store)


SPACE = """\
dataset: beauty
backbone: sasrec
variant: dr4sr
set: {regen.k: 2}
search: {kind: grid, max_concurrent: 1}
dimensions:
  regenerate.gamma: {grid: [0.0, 1.0]}
"""


@pytest.mark.slow  # two smoke studies (2 trials, then 1), each with its own Ray: ~2-3 min on a loaded machine
def test_study_on_s3_is_interrupted_and_resumed_on_another_node(secret_env, bucket, s3, objects, tiny_dataset,
                                                                tmp_path):
    store, out = bucket, bucket.replace("/artifacts", "/study")
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    args = [DR4SR, "tune", "--space", str(space), "--dataset", str(tiny_dataset), "--out", out, "--store", store,
            "--smoke-test"]
    env_a = node_env(tmp_path, "a")
    proc = OwnRayProcess(args, env_a)
    bucket_name, _, prefix = out[len("s3://"):].partition("/")

    def a_trial_ended() -> bool:
        keys = s3.list_objects_v2(Bucket=bucket_name, Prefix=f"{prefix}/trials/").get("Contents", [])
        return any(k["Key"].endswith("/ended.json") for k in keys)

    proc.wait_for(a_trial_ended, timeout=600)  # the driver pushed the first finished trial
    os.killpg(proc.proc.pid, signal.SIGINT)  # Ctrl-C
    code, stdout, stderr = proc.finish(timeout=300)
    assert code == 130, stderr[-3000:]
    done = int(re.search(r"interrupted: (\d) of 2 trials finished", stderr).group(1))
    assert done == 1, stderr
    found = objects(out)
    assert any(k.startswith("tune/experiment_state-") for k in found)  # Tune wrote its state to the bucket
    assert "tune/tuner.pkl" in found and "study.json" in found and "optuna.db" in found
    assert json.loads(found["study.json"])["interrupted"] == "SIGINT"
    finished = {k.split("/")[1]: v for k, v in found.items() if k.endswith("/run/metrics.json")}
    assert len(finished) == 1

    # node b: an empty working copy and artifact cache; everything comes from the bucket
    code, stdout, stderr = OwnRayProcess([*args, "--resume"], node_env(tmp_path, "b")).finish(timeout=600)
    assert code == 0, stderr[-3000:]
    assert "study space: 2 of 2 trials finished" in stdout
    assert f"[study] TensorBoard: tensorboard --logdir {out}/tune" in stdout.splitlines()
    found = objects(out)
    again = {k.split("/")[1]: v for k, v in found.items() if k.endswith("/run/metrics.json")}
    assert len(again) == 2 and {k: again[k] for k in finished} == finished  # the finished trial was kept
    trials = {k.split("/")[1] for k in found if k.startswith("trials/") and k.endswith("/trial.json")}
    assert len(trials) == 2  # no third trial: the interrupted one continued under its own id
    rows = found["results.csv"].decode().splitlines()
    assert len(rows) == 3 and "interrupted" not in json.loads(found["study.json"])
    assert "best.json" in found and "sweep_regenerate_gamma.png" in found
    no_secret(objects, out, store)
