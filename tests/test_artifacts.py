"""The artifact store under faults: concurrent builders of one id, killed builds, failed builds, leftovers."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dr4sr.artifacts import ArtifactStore, artifact_id

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"alpha": 5}

# a builder that writes its file in two halves with a pause between: a reader of the staging
# folder (or of a half-renamed artifact) would see only the first half
BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {platform!r})
    from dr4sr.artifacts import ArtifactStore

    root, name, started = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def build(w):
        with open(Path(root) / "builds.log", "a") as f:
            f.write(name + "\\n")
        started.touch()
        (w.dir / "data.txt").write_text("first half,")
        time.sleep(float(sys.argv[4]))
        with open(w.dir / "data.txt", "a") as f:
            f.write("second half")

    art = ArtifactStore(root).get_or_create("mine", {{"alpha": 5}}, {{"splits": "abc"}}, build, log=print)
    print("READ", (art.path / "data.txt").read_text(), flush=True)
""").format(platform=str(REPO / "platform"))


def _start(tmp_path: Path, root: Path, name: str, pause: float) -> subprocess.Popen:
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    return subprocess.Popen([sys.executable, str(script), str(root), name, str(tmp_path / f"{name}.started"),
                             str(pause)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_processes_one_builds_the_other_waits_and_reuses(tmp_path):
    root = tmp_path / "store"
    first = _start(tmp_path, root, "first", pause=2.0)
    _wait_for(tmp_path / "first.started", first)  # the first one holds the lock and is mid-build
    second = _start(tmp_path, root, "second", pause=0.0)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (err1, err2)
    assert (root / "builds.log").read_text() == "first\n"  # built once
    assert "READ first half,second half" in out1 and "READ first half,second half" in out2
    assert "waiting for mine" in out2 and "another process is computing it" in out2
    aid = artifact_id("mine", CONFIG, {"splits": "abc"})
    assert sorted(p.name for p in (root / "mine").iterdir()) == [aid]  # no staging or temp folder left


def test_sigkilled_build_leaves_no_trusted_artifact_and_is_redone(tmp_path):
    root = tmp_path / "store"
    proc = _start(tmp_path, root, "killed", pause=60.0)
    _wait_for(tmp_path / "killed.started", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = ArtifactStore(root)
    aid = artifact_id("mine", CONFIG, {"splits": "abc"})
    assert store.get("mine", aid) is None
    assert (store.staging_path("mine", aid) / "data.txt").read_text() == "first half,"  # never trusted
    # the kernel released the dead process's lock: the next builder does not wait, and starts clean
    seen = []

    def build(w):
        seen.append(sorted(p.name for p in w.dir.iterdir()))
        (w.dir / "data.txt").write_text("whole")

    logs = []
    art = store.get_or_create("mine", CONFIG, {"splits": "abc"}, build, log=logs.append)
    assert seen == [[]] and logs == [] and (art.path / "data.txt").read_text() == "whole"
    assert not store.staging_path("mine", aid).exists()


def test_resumable_stage_keeps_its_staging_folder_after_a_failure(tmp_path):
    store = ArtifactStore(tmp_path)
    aid = artifact_id("train", CONFIG, None)

    def interrupted(w):
        (w.dir / "checkpoints").mkdir()
        (w.dir / "checkpoints" / "last.pt").write_text("epoch 3")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.get_or_create("train", CONFIG, None, interrupted, resumable=True)
    assert store.get("train", aid) is None
    resumed = []

    def finish(w):
        resumed.append((w.resumed, (w.dir / "checkpoints" / "last.pt").read_text()))
        (w.dir / "model.pt").write_text("weights")

    art = store.get_or_create("train", CONFIG, None, finish, resumable=True)
    assert resumed == [(True, "epoch 3")]
    assert json.loads((art.path / "manifest.json").read_text())["id"] == aid
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [aid]


def test_failed_plain_stage_removes_its_staging_folder(tmp_path):
    store = ArtifactStore(tmp_path)

    def broken(w):
        (w.dir / "part.parquet").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        store.get_or_create("regenerate", CONFIG, None, broken)
    assert list((tmp_path / "regenerate").iterdir()) == []


def test_leftovers_of_older_builds_are_removed_and_never_trusted(tmp_path):
    store = ArtifactStore(tmp_path)
    aid = artifact_id("train", CONFIG, None)
    legacy = tmp_path / "train" / f".tmp-{aid}-x1y2"  # a SIGTERMed build of the previous store version
    legacy.mkdir(parents=True)
    (legacy / "last.pt").write_text("13 MB once")
    half = store.path("train", aid)  # a directory at the final name without a manifest
    half.mkdir()
    (half / "model.pt").write_text("half")
    assert store.get("train", aid) is None
    art = store.get_or_create("train", CONFIG, None, lambda w: (w.dir / "model.pt").write_text("whole"))
    assert (art.path / "model.pt").read_text() == "whole"
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [aid]


def test_existing_artifact_is_returned_without_building(tmp_path):
    store = ArtifactStore(tmp_path)
    calls = []
    first = store.get_or_create("mine", CONFIG, None, lambda w: calls.append(1))
    again = store.get_or_create("mine", CONFIG, None, lambda w: calls.append(2))
    assert calls == [1] and first.path == again.path
    assert os.path.exists(first.path / "manifest.json")
