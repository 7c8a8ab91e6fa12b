"""The artifact store on S3 (a local moto server): round trip through a fresh node's empty cache, one
download per node, damage in the bucket found and rebuilt, `dr4sr store verify --store s3://...`."""
from __future__ import annotations

import hashlib
import json

import pytest
from builders import PAYLOAD, build_counter

from dr4sr.artifacts import ArtifactStore
from dr4sr.cli import main


def make(uri, calls):
    return ArtifactStore(uri).get_or_create("mine", {"alpha": 5}, {"splits": "x"}, build_counter(calls))


def key_of(uri: str, rel: str) -> tuple[str, str]:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    return bucket, f"{prefix}/{rel}"


def test_round_trip_same_id_as_local_and_a_fresh_node_downloads_it_once(bucket, s3, tmp_path, monkeypatch):
    calls = []
    art = make(bucket, calls)
    assert art.id == make(tmp_path / "local", []).id  # the id does not depend on where the store is
    assert str(art.path).startswith(str(tmp_path / "cache")) and (art.path / "data.bin").read_bytes() == PAYLOAD
    b, prefix = key_of(bucket, f"mine/{art.id}")
    keys = {o["Key"][len(prefix) + 1:] for o in s3.list_objects_v2(Bucket=b, Prefix=prefix)["Contents"]}
    assert keys == {"data.bin", "sub/rows.txt", "manifest.json"}
    manifest = json.loads(s3.get_object(Bucket=b, Key=f"{prefix}/manifest.json")["Body"].read())
    assert manifest["files"]["data.bin"] == {"size": 10_000, "sha256": hashlib.sha256(PAYLOAD).hexdigest()}
    assert "testing" not in json.dumps(manifest)  # no credential ever lands in a manifest

    monkeypatch.setenv("DR4SR_CACHE", str(tmp_path / "node2"))  # another node: empty cache
    other = ArtifactStore(bucket)
    found = other.get("mine", art.id)
    assert found is not None and str(found.path).startswith(str(tmp_path / "node2"))
    assert (found.path / "sub" / "rows.txt").read_text() == "a b c\n" and found.manifest["id"] == art.id
    assert make(bucket, calls).path == found.path and len(calls) == 1  # reused, not rebuilt

    from dr4sr.storage.s3 import S3Root

    def offline(*_a, **_k):
        raise AssertionError("a cached artifact must not be read from the bucket again")

    monkeypatch.setattr(S3Root, "read_bytes", offline)
    monkeypatch.setattr(S3Root, "download", offline)
    again = ArtifactStore(bucket)  # a new process on the same node: the cache answers
    for _ in range(3):  # e.g. once per epoch
        assert again.get("mine", art.id).path == found.path
    assert again.path("mine", art.id) == found.path


def test_a_truncated_file_in_the_bucket_is_detected_and_rebuilt(bucket, s3, tmp_path, monkeypatch, capsys):
    calls = []
    art = make(bucket, calls)
    b, key = key_of(bucket, f"mine/{art.id}/data.bin")
    s3.put_object(Bucket=b, Key=key, Body=PAYLOAD[:5000])
    monkeypatch.setenv("DR4SR_CACHE", str(tmp_path / "node2"))
    assert main(["store", "verify", "--store", bucket]) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED mine {art.id}: data.bin has 5,000 bytes, the manifest says 10,000" in out
    again = make(bucket, calls)  # a fresh node: the download is checked, found damaged, rebuilt
    err = capsys.readouterr().err
    assert f"artifact mine {art.id}" in err and "data.bin has 5,000 bytes" in err and "rebuilt" in err
    assert len(calls) == 2 and (again.path / "data.bin").read_bytes() == PAYLOAD
    assert s3.get_object(Bucket=b, Key=key)["ContentLength"] == 10_000  # the bucket holds the good copy again
    assert main(["store", "verify", "--store", bucket]) == 0
    assert "1 artifacts, 0 damaged" in capsys.readouterr().out


def test_store_verify_finds_same_size_damage_and_repairs(bucket, s3, capsys):
    calls = []
    art = make(bucket, calls)
    b, key = key_of(bucket, f"mine/{art.id}/sub/rows.txt")
    s3.put_object(Bucket=b, Key=key, Body=b"x y z\n")  # same size, other bytes
    assert main(["store", "verify", "--store", bucket]) == 1
    assert f"DAMAGED mine {art.id}: sub/rows.txt does not match its SHA-256" in capsys.readouterr().out
    assert main(["store", "verify", "--store", bucket, "--repair"]) == 0
    _, prefix = key_of(bucket, f"mine/{art.id}")
    assert s3.list_objects_v2(Bucket=b, Prefix=prefix)["KeyCount"] == 0
    assert main(["store", "verify", "--store", bucket]) == 0
    assert "0 artifacts, 0 damaged" in capsys.readouterr().out


def test_a_manifest_without_its_files_is_never_trusted(bucket, s3, tmp_path, monkeypatch):
    """An upload cut off before its manifest leaves files only: readers treat the id as absent."""
    calls = []
    art = make(bucket, calls)
    b, key = key_of(bucket, f"mine/{art.id}/manifest.json")
    s3.delete_object(Bucket=b, Key=key)
    monkeypatch.setenv("DR4SR_CACHE", str(tmp_path / "node2"))
    assert ArtifactStore(bucket).get("mine", art.id) is None
    make(bucket, calls)
    assert len(calls) == 2


def test_an_unreachable_store_is_one_line(s3_env, capsys):
    assert main(["store", "verify", "--store", "s3://no-such-bucket-dr4sr/x"]) == 2
    assert "cannot list it" in capsys.readouterr().err


def test_bad_uri_is_a_config_error():
    from dr4sr.errors import ConfigError

    with pytest.raises(ConfigError, match="expected s3://bucket/prefix"):
        ArtifactStore("gs://bucket/x")


def test_resolve_store_keeps_uris_and_absolutizes_folders(tmp_path, monkeypatch):
    from dr4sr.storage import resolve_store

    monkeypatch.chdir(tmp_path)
    assert resolve_store("s3://b/p") == "s3://b/p"
    assert resolve_store("artifacts") == str(tmp_path / "artifacts")
    assert resolve_store(None) is None
