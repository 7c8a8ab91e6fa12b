"""`dr4sr run` SIGKILLed inside each stage, then rerun: no trusted partial artifact, finished stages
reused, only the killed stage recomputed, interrupted trainings resumed from their checkpoint, and the
final result equal to an uninterrupted run's."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dr4sr.cli import main

REPO = Path(__file__).resolve().parents[1]

# Runs `dr4sr ...` and SIGKILLs itself at KILL_AT: "<stage>" just before that stage's artifact would be
# committed (all its files written), or "<train|pretrain>:<n>" at the n-th checkpoint save, i.e. in the
# middle of a training after n-1 epochs were checkpointed. Prints whether Ray was started.
KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {platform!r})
    import dr4sr.artifacts, dr4sr.regen.pretrain, dr4sr.train.runner
    from dr4sr.cli import main

    stage, _, n = os.environ.get("KILL_AT", "").partition(":")
    sig = getattr(signal, "SIG" + os.environ.get("KILL_SIG", "KILL"))
    commit = dr4sr.artifacts.ArtifactStore._commit

    def killing_commit(self, writer, manifest, final, *args, **kwargs):
        if writer.stage == stage and not n:
            os.kill(os.getpid(), sig)
        return commit(self, writer, manifest, final, *args, **kwargs)

    dr4sr.artifacts.ArtifactStore._commit = killing_commit
    if n:
        module = dr4sr.train.runner if stage == "train" else dr4sr.regen.pretrain
        save, calls = module.save_checkpoint, []

        def killing_save(directory, state):
            calls.append(1)
            if len(calls) == int(n):
                os.kill(os.getpid(), sig)
            return save(directory, state)

        module.save_checkpoint = killing_save
    rc = main(sys.argv[1:])
    ray = sys.modules.get("ray")
    print("RAY_STARTED", bool(ray is not None and ray.is_initialized()))
    sys.exit(rc)
""").format(platform=str(REPO / "platform"))


def _manifests(store: Path) -> dict[tuple[str, str], int]:
    return {(m.parent.parent.name, m.parent.name): m.stat().st_mtime_ns for m in store.glob("*/*/manifest.json")}


def _stage_counts(keys) -> dict[str, int]:
    out: dict[str, int] = {}
    for stage, _ in keys:
        out[stage] = out.get(stage, 0) + 1
    return out


@pytest.mark.slow
def test_sigkill_in_each_stage_then_rerun(tiny_dataset, tmp_path):
    store, script = tmp_path / "store", tmp_path / "killer.py"
    script.write_text(KILLER)
    argv = ["run", "--dataset", str(tiny_dataset), "--variant", "dr4sr", "--out", str(tmp_path / "run"),
            "--store", str(store), "--smoke-test", "--set", "regen.k=2"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform"), "RAY_USAGE_STATS_ENABLED": "0"}
    # (kill point, the one stage this rerun must compute and commit, what its output must say)
    steps = [("mine", {}, None),
             ("train:2", {"mine": 1}, None),  # the regenerator's SASRec init, killed in its 2nd epoch
             ("pretrain:2", {"train": 1}, "resumed from epoch 0"),
             ("regenerate", {"pretrain": 1}, "pre-training resumed from epoch 0"),
             ("compose", {"regenerate": 1}, None),
             ("train:2", {"compose": 1}, None),  # the target model, killed in its 2nd epoch
             ("", {"train": 1}, "resumed from epoch 0")]
    before: dict = {}
    for kill_at, computed, said in steps:
        proc = subprocess.run([sys.executable, str(script), *argv], env={**env, "KILL_AT": kill_at},
                              capture_output=True, text=True, timeout=600)
        out = proc.stdout + proc.stderr
        assert proc.returncode == (0 if not kill_at else -signal.SIGKILL), out
        after = _manifests(store)
        assert all(after[k] == t for k, t in before.items()), f"{kill_at}: a finished artifact was rewritten"
        assert _stage_counts(set(after) - set(before)) == computed, (kill_at, out)
        if said:
            assert said in out, (kill_at, out)
        before = after
    assert "plan: dr4sr" in out and "6 stage(s), 5 cached" in out
    assert "RAY_STARTED False" in out  # --workers 1: every stage ran in this process
    # nothing left to pile up: no staging or temp folder beside the six artifacts
    assert sorted(p.name for p in store.glob("*/.*") if p.parent.name != ".locks") == []
    assert _stage_counts(before) == {"mine": 1, "train": 2, "pretrain": 1, "regenerate": 1, "compose": 1}
    # the resumed chain ends where an uninterrupted run ends (each resume restores the RNG state)
    clean_argv = argv[:6] + [str(tmp_path / "clean"), "--store", str(tmp_path / "clean-store")] + argv[9:]
    assert main(clean_argv) == 0
    resumed = json.loads((tmp_path / "run-smoke" / "metrics.json").read_text())
    clean = json.loads((tmp_path / "clean-smoke" / "metrics.json").read_text())
    assert resumed["test"] == clean["test"] and resumed["train_artifact"] == clean["train_artifact"]
    assert [h["epoch"] for h in resumed["history"]] == [0, 1]
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in clean["history"]]


@pytest.mark.slow
@pytest.mark.parametrize("sig, rc, said", [("TERM", 143, "terminated (SIGTERM)"), ("INT", 130, "interrupted")])
def test_sigterm_and_ctrl_c_stop_with_one_line_and_the_rerun_resumes(tiny_dataset, tmp_path, sig, rc, said):
    store, script = tmp_path / "store", tmp_path / "killer.py"
    script.write_text(KILLER)
    argv = [sys.executable, str(script), "run", "--dataset", str(tiny_dataset), "--variant", "backbone",
            "--out", str(tmp_path / "run"), "--store", str(store), "--smoke-test"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform"), "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(argv, env={**env, "KILL_AT": "train:2", "KILL_SIG": sig}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == rc, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"dr4sr: {said}; rerun the same command to continue: finished "
                                                    "stages are reused and an interrupted training resumes from "
                                                    "its last checkpoint")
    assert _manifests(store) == {}  # nothing trusted; the staging folder keeps the epoch-0 checkpoint
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resumed from epoch 0" in again.stdout + again.stderr and "resumes its killed run" in again.stdout
