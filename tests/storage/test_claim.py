"""One builder per id on S3 without file locks: a conditional claim object with a lease. Two processes
(two "nodes": separate caches) build a missing artifact once; a SIGKILLed builder's claim is taken over
once its lease runs out; a builder that lost its claim does not publish."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dr4sr.artifacts import ArtifactStore

REPO = Path(__file__).resolve().parents[2]

BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {platform!r})
    from dr4sr.artifacts import ArtifactStore

    uri, name, started, pause = sys.argv[1], sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])

    def build(w):
        with open(started.parent / "builds.log", "a") as f:
            f.write(name + "\\n")
        started.touch()
        (w.dir / "data.txt").write_text("first half,")
        time.sleep(pause)
        with open(w.dir / "data.txt", "a") as f:
            f.write("second half")

    art = ArtifactStore(uri).get_or_create("mine", {{"alpha": 5}}, {{"splits": "abc"}}, build, log=print)
    print("READ", (art.path / "data.txt").read_text(), flush=True)
""").format(platform=str(REPO / "platform"))


def start(tmp_path: Path, uri: str, name: str, pause: float, **env) -> subprocess.Popen:
    script = tmp_path / "builder.py"
    script.write_text(BUILDER)
    env = {**os.environ, "DR4SR_CACHE": str(tmp_path / f"cache-{name}"), **env}  # one node each
    return subprocess.Popen([sys.executable, str(script), uri, name, str(tmp_path / f"{name}.started"), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_nodes_build_a_missing_artifact_once(bucket, tmp_path):
    a = start(tmp_path, bucket, "a", 3.0, DR4SR_CLAIM_LEASE_S="2")  # renewed while it builds past its lease
    wait_for(tmp_path / "a.started", a)
    b = start(tmp_path, bucket, "b", 0.0, DR4SR_CLAIM_LEASE_S="2")
    out_a, err_a = a.communicate(timeout=120)
    out_b, err_b = b.communicate(timeout=120)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    assert (tmp_path / "builds.log").read_text() == "a\n"
    assert "waiting for mine" in out_b and "is computing it" in out_b
    assert "READ first half,second half" in out_a and "READ first half,second half" in out_b


def test_a_killed_builders_claim_is_taken_over_after_its_lease(bucket, tmp_path, monkeypatch):
    lease = 3.0
    a = start(tmp_path, bucket, "a", 600.0, DR4SR_CLAIM_LEASE_S=str(lease))
    wait_for(tmp_path / "a.started", a)
    os.kill(a.pid, signal.SIGKILL)  # no release, no cleanup: only the lease ends its claim
    a.wait(timeout=30)
    killed = time.monotonic()
    monkeypatch.setenv("DR4SR_CLAIM_LEASE_S", str(lease))
    lines = []

    def build(w):
        (w.dir / "data.txt").write_text("first half,second half")

    art = ArtifactStore(bucket).get_or_create("mine", {"alpha": 5}, {"splits": "abc"}, build, log=lines.append)
    waited = time.monotonic() - killed
    assert (art.path / "data.txt").read_text() == "first half,second half"
    assert any("taking over mine" in line and "stopped renewing" in line for line in lines), lines
    assert lease - 2.0 <= waited < lease + 20, waited  # not before the lease ran out, not forever


def test_a_claim_lost_to_a_taker_is_not_published(bucket):
    from dr4sr.storage.claim import ClaimLost, S3Claim
    from dr4sr.storage.s3 import S3Root

    root = S3Root(bucket)
    first = S3Claim(root, "mine-x", lease_s=1.0)
    first.acquire()
    first._stop.set()  # a builder stalled past its lease (no renewals)
    first._thread.join()
    second = S3Claim(root, "mine-x", lease_s=1.0)
    lines = []
    second.acquire(lines.append, "mine x")
    assert any("taking over" in line for line in lines)
    first._stop.clear()
    assert not first._put(IfMatch=first.etag)  # its next renewal fails ...
    first.lost.set()
    with pytest.raises(ClaimLost, match="another builder took it over"):
        first.check()  # ... so it never uploads its manifest
    first.release()  # and does not delete the taker's claim
    assert root.client.get_object(Bucket=root.bucket, Key=second.key)["ETag"] == second.etag
    second.release()
    assert root.read_bytes(".claims/mine-x.json") is None


def test_a_held_claim_is_renewed_and_makes_others_wait(bucket):
    from dr4sr.storage.claim import S3Claim
    from dr4sr.storage.s3 import S3Root

    root = S3Root(bucket)
    holder = S3Claim(root, "mine-y", lease_s=1.5)
    holder.acquire()
    first_etag = holder.etag
    time.sleep(1.2)
    assert holder.etag != first_etag  # renewed (each renewal is a new object version)
    assert not S3Claim(root, "mine-y", lease_s=1.5)._put(IfNoneMatch="*")
    holder.release()
    other = S3Claim(root, "mine-y", lease_s=1.5)
    assert other._put(IfNoneMatch="*")
    other.release()
