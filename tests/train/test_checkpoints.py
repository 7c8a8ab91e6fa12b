"""Checkpoints a user points --resume at, and weights the pipeline loads as an init: from another model,
truncated, tampered or not torch files. Each stops with one line naming the file; no code in a
tampered pickle runs (weights_only=True); nothing the run had written is replaced."""
from __future__ import annotations

import os
import shutil

import pytest
import torch

from dr4sr.cli import main
from dr4sr.train.worker import CheckpointError, load_checkpoint


@pytest.fixture
def trained(tiny_dataset, tmp_path):
    assert main(["train", "--dataset", str(tiny_dataset), "--out", str(tmp_path / "run"), "--smoke-test"]) == 0
    return tmp_path / "run-smoke"


def _resume(tiny_dataset, out, *extra) -> int:
    return main(["train", "--dataset", str(tiny_dataset), "--out", str(out), "--smoke-test", "--resume", *extra])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_resume_from_another_models_checkpoint(trained, tiny_dataset, capsys):
    capsys.readouterr()
    ckpt = trained / "checkpoints" / "last.pt"
    before = (trained / "metrics.json").stat().st_mtime_ns
    assert _resume(tiny_dataset, trained, "--backbone", "gru4rec") == 2
    assert _one_line(capsys) == f"dr4sr: error: {ckpt}: checkpoint of a sasrec model, this run trains gru4rec"
    assert _resume(tiny_dataset, trained, "--set", "model.hidden_size=32") == 2
    assert _one_line(capsys) == (f"dr4sr: error: {ckpt}: checkpoint has model.hidden_size=64, "
                                 f"this run model.hidden_size=32")
    assert (trained / "metrics.json").stat().st_mtime_ns == before


def test_resume_from_a_truncated_checkpoint(trained, tiny_dataset, capsys):
    ckpt = trained / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    capsys.readouterr()
    assert _resume(tiny_dataset, trained) == 2
    assert _one_line(capsys).startswith(f"dr4sr: error: {ckpt}: not a readable checkpoint (truncated, tampered")


class _Payload:
    """What a tampered checkpoint could hold: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_tampered_checkpoint_runs_no_code(trained, tiny_dataset, tmp_path, capsys):
    ckpt, marker = trained / "checkpoints" / "last.pt", tmp_path / "pwned"
    torch.save({"model": _Payload(marker)}, ckpt)
    capsys.readouterr()
    assert _resume(tiny_dataset, trained) == 2
    assert _one_line(capsys).startswith(f"dr4sr: error: {ckpt}: not a readable checkpoint")
    assert not marker.exists()


def test_not_a_torch_file_and_not_a_training_checkpoint(tmp_path, trained, tiny_dataset, capsys):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=f"^{text}: not a readable checkpoint"):
        load_checkpoint(text)
    ckpt = trained / "checkpoints" / "last.pt"
    torch.save({"weights": torch.zeros(2)}, ckpt)  # a torch file, but no training state
    capsys.readouterr()
    assert _resume(tiny_dataset, trained) == 2
    assert "not a dr4sr training checkpoint" in _one_line(capsys)


def test_corrupt_init_weights_are_named_and_rebuilt(tiny_dataset, tmp_path, capsys):
    store = tmp_path / "store"
    base = ["run", "--dataset", str(tiny_dataset), "--store", str(store), "--smoke-test", "--set", "regen.k=2"]
    assert main(base + ["--variant", "backbone", "--out", str(tmp_path / "b")]) == 0
    (init,) = [p for p in (store / "train").iterdir() if not p.name.startswith(".")]  # the regenerator's init
    good = (init / "model.pt").read_bytes()
    (init / "model.pt").write_bytes(b"PK\x03\x04 truncated zip")
    capsys.readouterr()
    # the damaged init is never loaded: its manifest's size check names it, and the stage trains it again
    assert main(base + ["--variant", "dr4sr", "--out", str(tmp_path / "d")]) == 0
    err = capsys.readouterr().err
    assert f"artifact train {init.name}" in err and "model.pt has 18 bytes" in err and "rebuilt" in err
    assert len((init / "model.pt").read_bytes()) == len(good)  # the same config retrained: same-size weights
    shutil.rmtree(store)
