"""`dr4sr run --smoke-test --store s3://...` end to end on the tiny dataset: every stage's artifact lands in
the bucket, and another node (an empty cache) reuses all of them."""
from __future__ import annotations

import json

import pytest

from dr4sr.cli import main


@pytest.mark.slow
def test_run_smoke_through_s3_and_reuse_from_a_fresh_node(tiny_dataset, bucket, s3, tmp_path, monkeypatch, capsys):
    common = ["--dataset", str(tiny_dataset), "--store", bucket, "--smoke-test", "--variant", "dr4sr",
              "--set", "regen.k=2"]
    assert main(["run", "--out", str(tmp_path / "first"), *common]) == 0
    first = json.loads((tmp_path / "first-smoke" / "metrics.json").read_text())
    assert "0 cached" in capsys.readouterr().out
    b, _, prefix = bucket[len("s3://"):].partition("/")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b, Prefix=prefix + "/")
            for o in page.get("Contents", [])]
    stages = {k.split("/")[1] for k in keys if k.endswith("/manifest.json")}
    assert {"mine", "pretrain", "regenerate", "compose", "train"} <= stages
    assert not [k for k in keys if "/.claims/" in k]  # every claim released
    assert not [k for k in keys if "/.staging-" in k]  # the checkpoints saved to the bucket went at commit

    monkeypatch.setenv("DR4SR_CACHE", str(tmp_path / "node2"))
    assert main(["run", "--out", str(tmp_path / "again"), *common]) == 0
    again = json.loads((tmp_path / "again-smoke" / "metrics.json").read_text())
    assert "6 stage(s), 6 cached" in capsys.readouterr().out
    assert again["test"] == first["test"] and again["train_artifact"] == first["train_artifact"]
    assert main(["store", "verify", "--store", bucket]) == 0
