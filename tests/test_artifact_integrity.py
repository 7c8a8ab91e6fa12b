"""Damaged artifacts: a truncated, altered or missing file or an unreadable manifest is named and rebuilt,
never read as good; `dr4sr store verify` finds what a lookup's cheap checks cannot."""
from __future__ import annotations

import hashlib
import json

import pytest
from builders import PAYLOAD, build_counter

from dr4sr.artifacts import ArtifactStore
from dr4sr.cli import main


def make(root, calls):
    return ArtifactStore(root).get_or_create("mine", {"alpha": 5}, {"splits": "x"}, build_counter(calls))


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    art = make(tmp_path, [])
    files = json.loads((art.path / "manifest.json").read_text())["files"]
    assert files == {"data.bin": {"size": 10_000, "sha256": hashlib.sha256(PAYLOAD).hexdigest()},
                     "sub/rows.txt": {"size": 6, "sha256": hashlib.sha256(b"a b c\n").hexdigest()}}


@pytest.mark.parametrize("damage, words", [
    (lambda p: (p / "data.bin").write_bytes(PAYLOAD[:5000]), "data.bin has 5,000 bytes, the manifest says 10,000"),
    (lambda p: (p / "data.bin").write_bytes(PAYLOAD[::-1]), "data.bin does not match its SHA-256"),
    (lambda p: (p / "sub" / "rows.txt").unlink(), "sub/rows.txt is missing"),
    (lambda p: (p / "manifest.json").write_text('{"stage": "mi'), "manifest.json unreadable"),
])
def test_a_damaged_artifact_is_named_and_rebuilt(tmp_path, capsys, damage, words):
    calls = []
    art = make(tmp_path, calls)
    damage(art.path)
    again = make(tmp_path, calls)  # a fresh store object: what the next run sees
    err = capsys.readouterr().err
    assert f"artifact mine {art.id}" in err and words in err and "rebuilt" in err
    assert len(calls) == 2 and (again.path / "data.bin").read_bytes() == PAYLOAD
    assert make(tmp_path, calls).path == again.path and len(calls) == 2  # good again: reused


def test_store_verify_finds_same_size_damage_in_large_files_and_repairs(tmp_path, capsys, monkeypatch):
    import dr4sr.artifacts as artifacts

    monkeypatch.setattr(artifacts, "HASH_ON_LOOKUP", 100)  # data.bin now counts as large: sizes only on lookup
    calls = []
    art = make(tmp_path, calls)
    (art.path / "data.bin").write_bytes(PAYLOAD[::-1])  # same size, other bytes
    assert ArtifactStore(tmp_path).get("mine", art.id) is not None  # the lookup's size check cannot see it
    assert main(["store", "verify", "--store", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"DAMAGED mine {art.id}: data.bin does not match its SHA-256" in out and "1 artifacts, 1 damaged" in out
    assert main(["store", "verify", "--store", str(tmp_path), "--repair"]) == 0
    assert not art.path.exists()
    make(tmp_path, calls)
    assert len(calls) == 2
    assert main(["store", "verify", "--store", str(tmp_path)]) == 0
    assert "1 artifacts, 0 damaged" in capsys.readouterr().out


def test_store_verify_on_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["store", "verify", "--store", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
