"""Output folders on s3:// (a local working copy synced with the bucket) and a resumable build's saved
progress in the bucket's staging area, against a local moto server."""
from __future__ import annotations

import hashlib

from dr4sr.artifacts import STAGING_PREFIX, ArtifactStore
from dr4sr.storage.workcopy import OutFolder


def test_a_local_folder_is_used_as_it_is(tmp_path):
    folder = OutFolder(str(tmp_path / "grid"))
    assert folder.local == tmp_path / "grid" and folder.remote is None
    assert folder.pull() == 0 and folder.push() == 0 and folder.sync_note() is None


def test_push_then_a_fresh_node_pulls_the_same_files(bucket, s3, objects, tmp_path, monkeypatch):
    uri = bucket.replace("/artifacts", "/grid")
    a = OutFolder(uri)
    assert str(a.local).startswith(str(tmp_path / "cache"))
    (a.local / "runs" / "x").mkdir(parents=True)
    (a.local / "grid.json").write_text('{"runs": 1}')
    (a.local / "runs" / "x" / "metrics.json").write_text('{"test": {}}')
    (a.local / "runs" / "x" / "model.pt").write_bytes(b"w" * 1000)
    assert a.push() == 3
    assert a.push() == 0  # nothing changed: nothing uploaded
    assert objects(uri) == {"grid.json": b'{"runs": 1}', "runs/x/metrics.json": b'{"test": {}}',
                                "runs/x/model.pt": b"w" * 1000}

    monkeypatch.setenv("DR4SR_CACHE", str(tmp_path / "node2"))
    b = OutFolder(uri)
    assert b.local != a.local
    assert b.pull(skip=lambda rel: rel.endswith(".pt")) == 2
    assert sorted(p.relative_to(b.local).as_posix() for p in b.local.rglob("*") if p.is_file()) == \
        ["grid.json", "runs/x/metrics.json"]
    assert b.pull(skip=lambda rel: rel.endswith(".pt")) == 0  # up to date: nothing downloaded again
    bucket_name, _, prefix = uri[len("s3://"):].partition("/")
    for marker in (f"{prefix}/", f"{prefix}/tune/"):  # folder markers, as pyarrow (Tune) writes them
        s3.put_object(Bucket=bucket_name, Key=marker, Body=b"")
    assert b.pull(skip=lambda rel: rel.endswith(".pt")) == 0

    (a.local / "grid.json").write_text('{"runs": 2}')  # same size, other bytes: the MD5 tells them apart
    assert a.push("grid.json") == 1 and b.pull() == 2  # grid.json changed, model.pt was skipped before
    assert (b.local / "grid.json").read_text() == '{"runs": 2}'
    (b.local / "runs" / "x" / "stale.json").write_text("{}")  # not in the bucket (e.g. deleted there)
    assert b.pull(skip=lambda rel: rel.endswith(".pt")) == 0 and (b.local / "runs" / "x" / "stale.json").exists()
    b.pull(skip=lambda rel: rel.endswith(".pt"), delete=True)
    assert not (b.local / "runs" / "x" / "stale.json").exists() and (b.local / "runs" / "x" / "model.pt").exists()
    md5 = hashlib.md5(b'{"runs": 2}').hexdigest()
    assert s3.head_object(Bucket=bucket_name, Key=f"{prefix}/grid.json")["Metadata"] == {"md5": md5}


def test_push_with_delete_removes_what_the_owner_no_longer_has(bucket, objects, tmp_path):
    uri = bucket.replace("/artifacts", "/study")
    f = OutFolder(uri)
    trial = f.local / "trials" / "t1"
    trial.mkdir(parents=True)
    (trial / "progress.jsonl").write_text("1\n")
    (trial / "ended.json").write_text("{}")
    (f.local / "trials" / "t10").mkdir()
    (f.local / "trials" / "t10" / "trial.json").write_text("{}")
    f.push()
    (trial / "ended.json").unlink()  # a resumed trial runs again
    f.push("trials/t1", delete=True)
    assert sorted(objects(uri)) == ["trials/t1/progress.jsonl", "trials/t10/trial.json"]  # t10 untouched


def test_a_killed_builds_checkpoint_is_resumed_from_the_bucket_on_another_node(bucket, objects, tmp_path,
                                                                                monkeypatch):
    def killed(w):
        (w.dir / "checkpoints").mkdir()
        (w.dir / "checkpoints" / "last.pt").write_bytes(b"epoch 3")
        w.save_progress("checkpoints/last.pt")
        raise KeyboardInterrupt  # the node went away mid-build

    store = ArtifactStore(bucket)
    try:
        store.get_or_create("train", {"lr": 1}, {"splits": "s"}, killed, resumable=True)
    except KeyboardInterrupt:
        pass
    staged = [k for k in objects(bucket) if STAGING_PREFIX in k]
    assert len(staged) == 1 and staged[0].endswith("/checkpoints/last.pt")

    monkeypatch.setenv("DR4SR_CACHE", str(tmp_path / "node2"))  # another node: nothing local
    seen = []

    def resumed(w):
        seen.append((w.resumed, (w.dir / "checkpoints" / "last.pt").read_bytes()))
        (w.dir / "model.pt").write_bytes(b"best")

    art = ArtifactStore(bucket).get_or_create("train", {"lr": 1}, {"splits": "s"}, resumed, resumable=True)
    assert seen == [(True, b"epoch 3")]
    assert (art.path / "model.pt").read_bytes() == b"best"
    assert not [k for k in objects(bucket) if STAGING_PREFIX in k]  # committed: the progress is gone


def test_an_unreachable_bucket_is_one_line(s3_env, capsys):
    from dr4sr.cli import main

    assert main(["grid", "--out", "s3://no-such-bucket-dr4sr/grid", "--status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dr4sr: error: --out s3://no-such-bucket-dr4sr/grid: cannot list it (")
    assert "NoSuchBucket" in err[0]
